"""The documented meaning of the service's codes, for reports (a table, no I/O).

Owns :func:`meaning`. The table holds only what KooDrive's error-code pages
say (the 13000xxx business codes of a refused request, see
``/work/shared/API-EXTRA.md`` section E). The ``18xxxxxx`` ``resultCode`` of a
failed task has no published meaning: those get None, and reports say so
rather than guess.

Must never import: ``cli/``, ``rich``, ``argparse``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CODE_MEANINGS", "code_of", "meaning"]

#: Documented business codes and what the pages say they mean.
CODE_MEANINGS: Final[dict[str, str]] = {
    "0": "success",
    "13000101": "Bad Request: request error (fix the input parameters)",
    "13000102": "PARAMETER_INVALID: parameter verification failed",
    "13000201": "INNER_INVOKE_FAILURE: internal calling error (retry; contact support)",
    "13000301": "space not found or abnormal status",
    "13000302": "file is not in the specified space",
    "13000303": "the file is not in the recycle bin",
    "13000304": "target directory is abnormal",
    "13000305": "target directory is in the recycle bin",
    "13000306": "file is in the recycle bin",
    "13000307": "nested directories",
    "13000308": "file metadata error",
    "13000309": "resource not found",
    "13000310": "max. levels exceeded",
    "13000311": "insufficient space",
    "13000312": "file already in the target folder",
    "13000401": "upload task not found",
    "13000402": "file upload incomplete (integrity check failed)",
    "13000403": "change file status failed",
    "13000404": "parent directory is in the recycle bin",
    "13000405": "duplicate file name",
    "13000406": "this operation cannot be performed on the folder",
    "13000407": "download address does not exist",
    "13000408": "file download failed",
    "13000409": "file upload failed",
    "13000410": "the user has no permission on the space",
    "13000411": "file not in this space",
    "13000412": "space not active",
    "13000413": "unsupported search type",
    "13000414": "search type cannot be empty",
    "13000415": "space does not match the team",
    "13000417": "file name: at most 250 characters",
}

_CODE_IN_ERROR_TYPE = re.compile(r"\bcode (\d+)\)")


def meaning(code: str | None) -> str | None:
    """What the docs say ``code`` means, or None (undocumented, e.g. any 18xxxxxx)."""
    return None if code is None else CODE_MEANINGS.get(code.strip())


def code_of(result_code: str | None, error_type: str | None) -> str | None:
    """A line's code: a failed task's resultCode, else a refused create's business code."""
    if result_code:
        return result_code
    found = _CODE_IN_ERROR_TYPE.search(error_type or "")
    return found.group(1) if found else None
