"""Print the first code block of a Markdown page marked ``<!-- example: KIND -->``.

Used by .ci/run to run the documented pytest example in a fresh project that
has only the wheel and its ``testing`` extra. Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(page: str, kind: str) -> int:
    text = Path(page).read_text(encoding="utf-8")
    pattern = rf"<!--\s*example:\s*{re.escape(kind)}\s*-->\s*\n```python\n(.*?)\n```"
    found = re.search(pattern, text, re.DOTALL)
    if found is None:
        print(f"no block marked 'example: {kind}' in {page}", file=sys.stderr)
        return 1
    print(found.group(1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
