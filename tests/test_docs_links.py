"""README.md and docs/*.md: every relative link and anchor resolves; each page is one H1.

Pages in docs/ link only inside docs/, because a later MkDocs build (``--strict``)
refuses links out of its docs directory. Anchors must match the heading slug of
both GitHub and MkDocs, which differ only on punctuation runs, so a link works
in both renderings.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from docs_helpers import DOCS, PAGES, ROOT, read_page

_INLINE_CODE = re.compile(r"(`+).+?\1")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(?P<target>\S+)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^ {0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")

README_LIMIT = 12 * 1024  # issue 11: a landing page of at most ~12 KB


def _github_slug(text: str) -> str:
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _mkdocs_slug(text: str) -> str:
    # Python-Markdown's toc.slugify (unicode=False), which MkDocs uses by default.
    value = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _headings(page: Path) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks, inline code marks removed."""
    found = []
    for _, line in read_page(page).prose:
        match = _HEADING.match(line)
        if match:
            found.append((len(match["hashes"]), match["text"].replace("`", "")))
    return found


@cache
def _anchors(page: Path) -> frozenset[str]:
    """Anchors a heading of this page gets in both renderings (the intersection)."""
    texts = [text for _, text in _headings(page)]
    return frozenset(_github_slug(t) for t in texts) & frozenset(_mkdocs_slug(t) for t in texts)


def _links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and reference definition in the prose."""
    found = []
    for number, line in read_page(page).prose:
        text = _INLINE_CODE.sub("", line)
        found += [(number, m["target"]) for m in _LINK.finditer(text)]
        found += [(number, m["target"]) for m in _REFERENCE.finditer(text)]
    return found


_PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]


def test_the_docs_pages_exist() -> None:
    assert len(PAGES) > 2 and (DOCS / "index.md") in PAGES


@pytest.mark.parametrize("page", PAGES, ids=_PAGE_IDS)
def test_every_relative_link_points_to_an_existing_file_and_anchor(page: Path) -> None:
    problems = []
    for number, target in _links(page):
        if _SCHEME.match(target):
            continue  # https:, mailto: ... are not checked (no network in tests)
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if page.parent == DOCS and not resolved.is_relative_to(DOCS):
            problems.append(f"{where}: a docs/ page may link only inside docs/")
        if anchor:
            if resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not a page")
            elif anchor not in _anchors(resolved):
                problems.append(f"{where}: no heading with this anchor")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_PAGE_IDS)
def test_each_page_has_exactly_one_h1_and_it_comes_first(page: Path) -> None:
    headings = _headings(page)
    assert [level for level, _ in headings].count(1) == 1
    assert headings[0][0] == 1


def test_the_readme_stays_a_landing_page() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= README_LIMIT


def test_the_link_checker_sees_links_and_rejects_a_broken_one(tmp_path: Path) -> None:
    # Guards the checker itself: a regex that matched nothing would pass every page.
    assert ("docs/bulk-runs.md", "the-reconciliation-rule") in {
        (t.partition("#")[0], t.partition("#")[2]) for _, t in _links(ROOT / "README.md")
    }
    assert "the-reconciliation-rule" in _anchors(DOCS / "bulk-runs.md")
    assert "no-such-heading" not in _anchors(DOCS / "bulk-runs.md")
    page = tmp_path / "p.md"
    page.write_text("# P\n\nSee [x](missing.md) and `[y](code.md)`.\n", encoding="utf-8")
    assert _links(page) == [(3, "missing.md")]
