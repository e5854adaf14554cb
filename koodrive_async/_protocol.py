"""TEMPORARY compat shim: re-exports for modules not yet moved to the new wire layer.

``_transport``, ``_auth`` and ``cli/`` still import these names from here;
their owners (and the lead, at merge) switch them to ``_build``, ``_decode``,
``_codec`` and ``bulk._bodies``, then this file is deleted. Nothing new may
import it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._build import MAX_PAGE_SIZE, check_header_value, request_kind
from ._build import build_list_tasks as prepare_list_tasks
from ._call import Call, Response
from ._codec import request_body as build_body
from ._decode import MAX_BODY_CHARS, error_from_response, possibly_created
from ._exceptions import APIError, ResponseValidationError
from .bulk._bodies import plan_body, request_from_body

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_PAGE_SIZE",
    "api_error",
    "build_body",
    "check_header_value",
    "plan_body",
    "possibly_created",
    "prepare_list_tasks",
    "request_from_body",
    "request_kind",
]


def api_error(
    call: Call, status: int, headers: Mapping[str, str], body: bytes, trace_id: str
) -> APIError | ResponseValidationError:
    """The old five-argument form of :func:`~koodrive_async._decode.error_from_response`."""
    return error_from_response(call, Response(status, headers, body, trace_id))
