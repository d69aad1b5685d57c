"""The built HTML as a reader sees it (after `make book`; CI sets MFBOOK_CHECK_BUILD=1): chapter
code shows what teaches, not the bookkeeping; figures are sharp; exercises are numbered per
chapter; no warning is printed into a page."""

from __future__ import annotations

import re
import struct

from bs4 import BeautifulSoup
from test_book import BUILD, needs_build

#: code that is bookkeeping, not teaching: it belongs in hidden cells
BOOKKEEPING = ("glue(", "is_current(")
HIDDEN = {"tag_remove-input", "tag_hide-input", "tag_hide-cell", "tag_remove-cell"}


def _chapters() -> dict[str, BeautifulSoup]:
    pages = sorted(BUILD.glob("book/[0-9][0-9]_*.html")) + [
        BUILD / "book" / "appendix_performance.html"
    ]
    return {p.stem: BeautifulSoup(p.read_text(encoding="utf8"), "html.parser") for p in pages}


def _png_width(path) -> int:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">I", head[16:20])[0]


@needs_build
def test_chapter_code_shows_no_bookkeeping():
    shown = []
    for name, soup in _chapters().items():
        for cell in soup.select("div.cell"):
            if HIDDEN & set(cell.get("class", [])):
                continue
            code = cell.select_one("div.cell_input")
            text = code.get_text() if code else ""
            shown += [f"{name}: {word}" for word in BOOKKEEPING if word in text]
    assert not shown, f"bookkeeping in visible chapter code: {sorted(set(shown))}"


@needs_build
def test_figures_are_sharp():
    """Every PNG figure has at least twice the pixels of its displayed width (sharp on a
    high-density screen), so a figure shown at least 450 px wide has at least 900."""
    soft = []
    for name, soup in _chapters().items():
        for img in soup.select("div.cell_output img"):
            path = (BUILD / "book" / img["src"]).resolve()
            if path.suffix == ".svg":
                continue
            shown = re.search(r"width:\s*(\d+)px", img.get("style", ""))
            width = _png_width(path)
            if not shown or width < 2 * int(shown.group(1)):
                soft.append(f"{name}: {path.name} is {width} px, shown {img.get('style')}")
    assert not soft, f"figures without twice their displayed pixels: {soft}"


@needs_build
def test_exercises_are_numbered_per_chapter():
    for name, soup in _chapters().items():
        if not name[:2].isdigit():
            continue
        titles = [t.get_text(" ", strip=True) for t in soup.select(".exercise .admonition-title")]
        numbers = [re.match(r"Exercise (\d+)\.(\d+)", t) for t in titles]
        assert all(numbers), f"{name}: exercises without a chapter number: {titles}"
        assert {int(m.group(1)) for m in numbers} <= {int(name[:2])}, (name, titles)
        assert [int(m.group(2)) for m in numbers] == list(range(1, len(numbers) + 1)), titles


@needs_build
def test_no_page_prints_a_warning():
    printed = []
    for name, soup in _chapters().items():
        for out in soup.select("div.cell_output .output.stderr, div.cell_output .stderr"):
            if "Warning" in out.get_text():
                printed.append(f"{name}: {out.get_text()[:120]!r}")
    assert not printed, f"warnings printed into the book: {printed}"
