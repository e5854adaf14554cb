"""Fixtures of the client tests (the helpers live in client_helpers.py)."""

from __future__ import annotations

import pytest
from client_helpers import sleeps_fixture

#: Every wait the transport asks for, recorded instead of slept.
sleeps = pytest.fixture(sleeps_fixture, name="sleeps")
