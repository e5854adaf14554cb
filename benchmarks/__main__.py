"""``python -m benchmarks [--quick] [--json] [--only NAMES]``: run every benchmark.

See :mod:`benchmarks._runner` for what runs and how the figures are taken.
"""

from __future__ import annotations

import sys

from benchmarks._runner import main

if __name__ == "__main__":
    sys.exit(main())
