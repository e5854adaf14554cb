"""Reading README.md and docs/*.md for the documentation tests: pages, code blocks, markers.

The conventions are described in docs/development.md ("How the examples are tested").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = (ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md")))

# Markers a reader also sees explained in a sentence; anything else is a typo.
MARKERS = {"fragment": "fragment", "needs-account": "real account", "pytest": None}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<kind>\S+?)\s*-->\s*$")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None  # the kind of a `<!-- example: KIND -->` line just above, if any
    note: str  # the paragraph just above that marker (what the reader is told)

    @property
    def name(self) -> str:
        """``page:line``, for test ids and messages."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Page:
    """A Markdown page split into its prose lines and its code blocks."""

    path: Path
    prose: tuple[tuple[int, str], ...]  # (1-based line, text) outside code blocks
    blocks: tuple[CodeBlock, ...]
    orphan_markers: tuple[int, ...]  # marker lines not directly above a python block


def _dedent(lines: list[str], indent: str) -> str:
    """Remove the opening fence's indentation from each line (as CommonMark does)."""
    width = len(indent)
    out = []
    for line in lines:
        stripped = len(line) - len(line.lstrip(" \t"))
        out.append(line[min(width, stripped) :])
    return "\n".join(out) + "\n"


def _marker_above(lines: list[str], fence_index: int) -> tuple[str | None, int | None, str]:
    """The marker just above a fence (blank lines allowed between), its line, and its note."""
    i = fence_index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i < 0:
        return None, None, ""
    match = _MARKER.match(lines[i])
    if match is None:
        return None, None, ""
    note: list[str] = []
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    while j >= 0 and lines[j].strip():
        note.insert(0, lines[j].strip())
        j -= 1
    return match["kind"], i, " ".join(note)


def read_page(path: Path) -> Page:
    """Split one page into prose, code blocks and any marker that marks nothing."""
    lines = path.read_text(encoding="utf-8").splitlines()
    prose: list[tuple[int, str]] = []
    blocks: list[CodeBlock] = []
    used_markers: set[int] = set()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        info = opening["info"].strip()
        language = info.split()[0] if info else ""
        marker, marker_line, note = _marker_above(lines, i)
        if marker_line is not None and language == "python":
            used_markers.add(marker_line)
        blocks.append(
            CodeBlock(
                page=path,
                line=i + 1,
                language=language,
                code=_dedent(lines[i + 1 : end], opening["indent"]),
                marker=marker if language == "python" else None,
                note=note,
            )
        )
        i = end + 1
    orphans = tuple(
        n + 1
        for n, text in enumerate(lines)
        if _MARKER.match(text) and n not in used_markers and (n + 1, text) in prose
    )
    return Page(path=path, prose=tuple(prose), blocks=tuple(blocks), orphan_markers=orphans)


def python_blocks() -> list[CodeBlock]:
    """Every ```python block of README.md and docs/*.md."""
    return [b for page in PAGES for b in read_page(page).blocks if b.language == "python"]
