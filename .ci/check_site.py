"""Check a built documentation site: every nav page rendered, and the API reference is complete.

Usage: ``python .ci/check_site.py mkdocs.yml SITE_DIR`` (run by ``.ci/docs`` after
``mkdocs build --strict``). A strict build fails on warnings, but a page can still
come out empty (a ``:::`` block that matched nothing, a nav entry rendered from an
empty file); this looks at the HTML:

- every page of the nav exists as HTML, its H1 is the H1 of its Markdown source and
  its main content holds text besides the H1;
- every name of ``koodrive_async.__all__`` and ``koodrive_async.emulator.__all__``,
  every public method of ``KooDriveSession`` and both pytest fixtures have an entry
  (an HTML id) in the API reference.

Exit status 0 when all holds, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_ARTICLE = re.compile(r'<article class="md-content__inner[^"]*">(?P<body>.*?)</article>', re.S)
_H1 = re.compile(r"<h1[^>]*>(?P<text>.*?)</h1>", re.S)
_TAG = re.compile(r"<[^>]+>")
_MD_H1 = re.compile(r"^# +(?P<text>.+?)\s*#*\s*$", re.M)
# Text a page must hold besides its H1 to count as rendered (the shortest page has far more).
MIN_TEXT = 80


def _text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).replace("¶", " ").split())


def _nav_pages(nav: object) -> list[str]:
    """The Markdown paths of a MkDocs nav, in order."""
    if isinstance(nav, str):
        return [] if re.match(r"^[a-z]+://", nav) else [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def _html_path(site: Path, page: str) -> Path:
    # use_directory_urls (the default): a/b.md -> a/b/index.html, a/index.md -> a/index.html
    stem = page[: -len(".md")]
    if stem == "index" or stem.endswith("/index"):
        return site / f"{stem}.html"
    return site / stem / "index.html"


def check_pages(config: dict[str, object], site: Path) -> tuple[list[str], dict[str, str]]:
    """Problems with the nav pages, and the HTML of each page by its Markdown path."""
    docs = ROOT / str(config.get("docs_dir", "docs"))
    problems: list[str] = []
    rendered: dict[str, str] = {}
    pages = _nav_pages(config.get("nav"))
    if not pages:
        problems.append("mkdocs.yml has no nav pages")
    for page in pages:
        target = _html_path(site, page)
        if not target.is_file():
            problems.append(f"{page}: not rendered ({target.relative_to(site)} is missing)")
            continue
        source = _MD_H1.search((docs / page).read_text(encoding="utf-8"))
        expected = source["text"].replace("`", "") if source else None
        page_html = target.read_text(encoding="utf-8")
        rendered[page] = page_html
        article = _ARTICLE.search(page_html)
        if article is None:
            problems.append(f"{page}: no main content (<article>) in {target.relative_to(site)}")
            continue
        body = article["body"]
        h1 = _H1.search(body)
        if h1 is None:
            problems.append(f"{page}: no H1")
            continue
        title = _text(h1["text"])
        if expected is not None and title != expected:
            problems.append(f"{page}: H1 is {title!r}, the source says {expected!r}")
        rest = _text(body[: h1.start()] + body[h1.end() :])
        if len(rest) < MIN_TEXT:
            problems.append(f"{page}: main content is nearly empty ({len(rest)} characters)")
    return problems, rendered


def check_reference(rendered: dict[str, str]) -> list[str]:
    """Problems with the API reference: a public name without an entry."""
    import koodrive_async
    import koodrive_async.emulator

    reference = "".join(text for page, text in rendered.items() if page.startswith("reference/"))
    session = rendered.get("reference/session.md", "")
    wanted = [f"koodrive_async.{n}" for n in koodrive_async.__all__ if n != "__version__"]
    wanted += [f"koodrive_async.emulator.{n}" for n in koodrive_async.emulator.__all__]
    wanted.append("koodrive_async.emulator.pytest_plugin.koodrive_emulator_config")
    problems = [f"API reference: no entry for {n}" for n in wanted if f'id="{n}"' not in reference]
    # koodrive_emulator is described by hand: griffe would document the fallback defined
    # for when pytest-asyncio is missing (the module's last definition of the name).
    plugin = rendered.get("reference/pytest-plugin.md", "")
    if 'id="koodrive_emulator"' not in plugin:
        problems.append("reference/pytest-plugin.md: no section for koodrive_emulator")
    methods = [
        name
        for name in dir(koodrive_async.KooDriveSession)
        if not name.startswith("_") and callable(getattr(koodrive_async.KooDriveSession, name))
    ]
    for name in ["KooDriveSession", "wait_for_task", *methods]:
        if name not in session:
            problems.append(f"reference/session.md: {name} is not on the page")
    return problems


def main(argv: list[str]) -> int:
    """Check the site; print the problems."""
    if len(argv) != 3:
        sys.stderr.write(__doc__.splitlines()[2] + "\n")
        return 2
    config = yaml.safe_load(Path(argv[1]).read_text(encoding="utf-8"))
    site = Path(argv[2])
    problems, rendered = check_pages(config, site)
    problems += check_reference(rendered)
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if problems:
        return 1
    sys.stdout.write(
        f"{len(rendered)} pages rendered, each with its H1 and content; API reference complete\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
