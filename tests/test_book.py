"""Checks of the book's set-up: table of contents, strict configuration, offline HTML.

The first two groups read only the sources and run in the unit run. The last group checks a
built book (``make book``): it runs when ``_build/html/index.html`` exists or when
``MFBOOK_CHECK_BUILD=1`` (then a missing build fails); ``MFBOOK_CHECK_BUILD=0`` skips it. Its
rendering tests need a headless Chromium and are skipped without one.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
BUILD = ROOT / "_build" / "html"
PAGE_SUFFIXES = (".md", ".ipynb", ".rst")
# Folders under book/ whose files are not pages of the book, or not necessarily listed in the toc.
NOT_PAGES = {"_build", "_static", "_tools", ".ipynb_checkpoints", "master", "results"}
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _read_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf8"))


@functools.cache
def _fetch_script():
    """The module book/_tools/fetch_widget_js.py (it is not part of the package)."""
    path = BOOK / "_tools" / "fetch_widget_js.py"
    spec = importlib.util.spec_from_file_location("fetch_widget_js", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _sphinx_config() -> dict:
    """The Sphinx configuration Jupyter Book derives from _config.yml (as `build` does)."""
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(
        user_yaml=ROOT / "_config.yml",
        cli_config={"latex_individualpages": False},
        sourcedir=ROOT,
        raise_on_invalid=True,
    )
    return config


# -- (a) the table of contents -------------------------------------------------------------


def _toc_entries(node) -> list[str]:
    """Every `file:` (and the `root:`) named anywhere in the toc, in order."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(str(node[key]))
        for value in node.values():
            if isinstance(value, dict | list):
                found += _toc_entries(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_entries(item)
    return found


def _resolve(entry: str) -> list[Path]:
    base = ROOT / entry
    if base.suffix in PAGE_SUFFIXES:
        return [base] if base.is_file() else []
    return [p for s in PAGE_SUFFIXES if (p := base.with_name(base.name + s)).is_file()]


def test_toc_lists_only_existing_pages_once():
    entries = _toc_entries(_read_yaml("_toc.yml"))
    assert entries, "_toc.yml names no pages"
    assert "book/intro" in entries
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    assert not duplicates, f"listed more than once in _toc.yml: {duplicates}"
    missing = [e for e in entries if not _resolve(e)]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    ambiguous = [e for e in entries if len(_resolve(e)) > 1]
    assert not ambiguous, f"_toc.yml entries match several files (e.g. .md and .ipynb): {ambiguous}"


def test_every_page_under_book_is_in_the_toc():
    # only_build_toc_files drops a page that is not in the toc without a word: catch it here.
    listed = {p.resolve() for e in _toc_entries(_read_yaml("_toc.yml")) for p in _resolve(e)}
    pages = [
        p
        for p in BOOK.rglob("*")
        if p.suffix in (".ipynb", ".md")
        and not NOT_PAGES.intersection(p.relative_to(BOOK).parts[:-1])
    ]
    orphans = sorted(str(p.relative_to(ROOT)) for p in pages if p.resolve() not in listed)
    assert not orphans, f"pages under book/ that _toc.yml does not list: {orphans}"


def _markdown_sources() -> list[tuple[Path, str]]:
    sources = []
    for entry in _toc_entries(_read_yaml("_toc.yml")):
        for path in _resolve(entry):
            if path.suffix == ".ipynb":
                import nbformat

                nb = nbformat.read(path, as_version=4)
                text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
            else:
                text = path.read_text(encoding="utf8")
            sources.append((path, text))
    return sources


def test_citations_are_in_the_bibliography():
    bib = (ROOT / _read_yaml("_config.yml")["bibtex_bibfiles"][0]).read_text(encoding="utf8")
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, flags=re.M))
    assert "li2020learning" in keys
    cited = {
        (path.relative_to(ROOT).as_posix(), key.strip())
        for path, text in _markdown_sources()
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text)
        for key in group.split(",")
    }
    unknown = sorted(c for c in cited if c[1] not in keys)
    assert not unknown, f"cited keys missing from the .bib file: {unknown}"


# -- (b) the configuration is strict and offline ---------------------------------------------


def test_config_is_strict():
    yml = _read_yaml("_config.yml")
    assert yml["only_build_toc_files"] is True
    execute = yml["execute"]
    assert execute["execute_notebooks"] in ("force", "cache")
    assert execute["raise_on_error"] is True
    assert execute["allow_errors"] is False
    assert execute["timeout"] >= 600, "cell timeout too short for the training chapters"
    config = _sphinx_config()
    assert config["nb_execution_raise_on_error"] is True
    assert config["nb_execution_allow_errors"] is False
    assert config["external_toc_exclude_missing"] is True
    for folder in (".venv", "_build", "tests", "mfbook", "benchmarks"):
        assert folder in config["exclude_patterns"], f"{folder} is not excluded from the book"


def test_config_serves_mathjax_and_widgets_locally():
    config = _sphinx_config()
    extensions = config["extensions"]
    # The PyPI package installs a module whose name has hyphens; that is what Sphinx imports.
    assert "sphinx-mathjax-offline" in extensions
    assert "sphinx_thebe" not in extensions, "sphinx_thebe writes a CDN URL into every page"
    assert "mathjax_path" not in config, "mathjax_path would override the offline MathJax"

    widget_js = config["nb_ipywidgets_js"]
    fetch = _fetch_script()
    dest = fetch.DEFAULT_DEST.relative_to(ROOT).as_posix()
    assert dest in config["html_static_path"], "the widget JS folder is not a static path"
    provided = {f"{fetch.SUBDIR}/{fetch.SETUP_JS.name}"} | {
        f"{fetch.SUBDIR}/{name}" for package in fetch.PACKAGES for name in package["files"].values()
    }
    assert list(widget_js) == [
        f"{fetch.SUBDIR}/require.js",
        f"{fetch.SUBDIR}/{fetch.SETUP_JS.name}",
        f"{fetch.SUBDIR}/embed-amd.js",
    ], "RequireJS, then the set-up script, then the html-manager"
    assert set(widget_js) <= provided, "nb_ipywidgets_js names files the fetch script does not make"
    for path, attributes in widget_js.items():
        assert "://" not in path and not path.startswith("/")
        assert not any("://" in str(v) for v in attributes.values()), attributes
    # Jupyter Book would inject every .js below a root-level _static/ into every page.
    assert not list((ROOT / "_static").rglob("*.js"))
    # book/_static: css, and only the scripts meant for every page (html_js_files)
    scripts = {p.name for p in (BOOK / "_static").rglob("*.js")}
    assert scripts == set(config.get("html_js_files", [])), "book/_static is for css only"
    for css in config["html_css_files"]:
        assert (BOOK / "_static" / css).is_file(), css


def test_fetch_script_pins_versions_and_hashes():
    fetch = _fetch_script()
    names = {p["name"]: p for p in fetch.PACKAGES}
    assert set(names) == {"requirejs", "@jupyter-widgets/html-manager"}
    # ipywidgets 8.1 renders with html-manager 1.0.x.
    assert names["@jupyter-widgets/html-manager"]["version"].startswith("1.0.")
    for package in fetch.PACKAGES:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"]), package["version"]
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package["integrity"])
    assert fetch.SETUP_JS.is_file()


# -- (c) the built book: offline, and it renders ------------------------------------------------


def _build_checks_wanted() -> bool:
    flag = os.environ.get("MFBOOK_CHECK_BUILD", "")
    if flag == "0":
        return False
    return flag == "1" or (BUILD / "index.html").is_file()


needs_build = pytest.mark.skipif(
    not _build_checks_wanted(),
    reason="no built book (run `make book`, or set MFBOOK_CHECK_BUILD=1)",
)

# rel values of <link> that name a related page rather than load something.
NAVIGATION_RELS = {"canonical", "alternate", "author", "license", "me", "index", "search"}
NAVIGATION_RELS |= {"next", "prev", "top", "up", "copyright", "help", "glossary"}


class _Page(HTMLParser):
    """The resources a page loads, and the bodies of its inline scripts and styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loads: list[tuple[str, str]] = []  # (tag, url)
        self.scripts: list[str] = []  # src of <script src=...>, in order
        self.inline: list[tuple[str, str, str]] = []  # (tag, type, body)
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.loads.append((tag, a["src"]))
            self.scripts.append(a["src"])
        elif tag == "script" or tag == "style":
            self._open = (tag, a.get("type") or "")
        elif tag == "link" and a.get("href"):
            rels = set((a.get("rel") or "").lower().split())
            if not rels <= NAVIGATION_RELS:
                self.loads.append((tag, a["href"]))
        elif tag in ("img", "iframe", "source", "audio", "video", "embed", "track"):
            if a.get("src"):
                self.loads.append((tag, a["src"]))
        elif tag == "object" and a.get("data"):
            self.loads.append((tag, a["data"]))

    def handle_data(self, data):
        if self._open:
            self.inline.append((*self._open, data))

    def handle_endtag(self, tag):
        self._open = None


def _pages() -> dict[Path, _Page]:
    pages = {}
    for path in sorted(BUILD.rglob("*.html")):
        if "_static" in path.relative_to(BUILD).parts:
            continue
        parser = _Page()
        parser.feed(path.read_text(encoding="utf8"))
        pages[path] = parser
    return pages


def _is_remote(url: str) -> bool:
    return url.startswith("//") or urlsplit(url).scheme in ("http", "https")


@pytest.fixture(scope="module")
def built_pages() -> dict[Path, _Page]:
    if not (BUILD / "index.html").is_file():
        pytest.fail(f"MFBOOK_CHECK_BUILD=1 but {BUILD.relative_to(ROOT)} holds no book")
    pages = _pages()
    assert len(pages) >= 3
    return pages


@needs_build
def test_built_html_loads_nothing_from_the_network(built_pages):
    remote = [
        f"{page.relative_to(BUILD)}: <{tag}> {url}"
        for page, parsed in built_pages.items()
        for tag, url in parsed.loads
        if _is_remote(url)
    ]
    assert not remote, "pages load resources from other hosts:\n" + "\n".join(remote)
    # Inline code that could fetch from elsewhere (a CDN URL in a script or a style).
    urls = re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", re.I)
    inline = [
        f"{page.relative_to(BUILD)}: <{tag}> {urls.search(body).group(0)}"
        for page, parsed in built_pages.items()
        for tag, kind, body in parsed.inline
        if kind in ("", "text/javascript", "module", "text/css") and urls.search(body)
    ]
    assert not inline, "inline scripts or styles name other hosts:\n" + "\n".join(inline)
    css_imports = re.compile(r"""(@import\s+|url\(\s*)["']?(https?:)?//""", re.I)
    remote_css = [
        str(p.relative_to(BUILD))
        for p in (BUILD / "_static").rglob("*.css")
        if css_imports.search(p.read_text(encoding="utf8", errors="replace"))
    ]
    assert not remote_css, f"stylesheets that load from other hosts: {remote_css}"


@needs_build
def test_built_html_local_assets_exist(built_pages):
    missing = []
    for page, parsed in built_pages.items():
        for tag, url in parsed.loads:
            if _is_remote(url) or url.startswith(("data:", "#")):
                continue
            target = (page.parent / unquote(urlsplit(url).path)).resolve()
            if not target.is_file():
                missing.append(f"{page.relative_to(BUILD)}: <{tag}> {url}")
    assert not missing, "pages refer to files the build lacks:\n" + "\n".join(missing)
    assert (BUILD / "_static" / "mathjax" / "tex-chtml.js").is_file()


@needs_build
def test_widget_js_only_on_pages_with_widget_state(built_pages):
    config = _sphinx_config()
    wanted = [f"_static/{path}" for path in config["nb_ipywidgets_js"]]
    for page, parsed in built_pages.items():
        has_state = any(kind == WIDGET_STATE for _, kind, _ in parsed.inline)
        loaded = [
            f"_static/{src.split('_static/', 1)[1].split('?')[0]}"
            for src in parsed.scripts
            if "_static/" in src
        ]
        widget_js = [src for src in loaded if src in wanted]
        name = page.relative_to(BUILD)
        if has_state:
            assert widget_js == wanted, f"{name}: widget JS missing or out of order"
        else:
            assert not widget_js, f"{name} has no widgets but loads {widget_js}"


# Rendering in headless Chromium, served from 127.0.0.1 with every other host unresolvable.

CHROMIUM = next(
    (p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))),
    None,
)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):
        self.requests.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """Serve the built book on a free port of 127.0.0.1; yields (base URL, request log)."""
    log: list[tuple[str, int]] = []
    handler = type("Handler", (_QuietHandler,), {"requests": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=BUILD))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", log
    finally:
        httpd.shutdown()
        httpd.server_close()


def _render(url: str, tmp_path: Path) -> tuple[str, Path, str, list[str]]:
    """Load ``url`` headless.

    Returns the DOM after the scripts ran, the screenshot, the browser's log (console messages
    included) and the URLs of every request the page itself started (from Chromium's net log).
    """
    screenshot = tmp_path / "out.png"
    net_log = tmp_path / "net-log.json"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        # Offline: no host but the local server resolves, so a CDN load fails (and is logged).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={net_log}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=15000",
        f"--screenshot={screenshot}",
        "--window-size=1200,900",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, screenshot, result.stderr, _page_requests(net_log, url)


def _page_requests(net_log: Path, url: str) -> list[str]:
    """URLs the page at ``url`` requested (not the browser's own background traffic)."""
    log = json.loads(net_log.read_text(encoding="utf8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job and event.get("params", {}).get("initiator") == origin
    ]


def _assert_offline_and_complete(
    base: str, log: list[tuple[str, int]], browser_log: str, requested: list[str]
) -> None:
    elsewhere = sorted({u for u in requested if not u.startswith(base)})
    assert not elsewhere, f"the page tried to load from other hosts: {elsewhere}"
    assert requested, "the net log recorded no request of the page"
    failed = [(path, code) for path, code in log if code >= 400 and path != "/favicon.ico"]
    assert not failed, f"requests the local server could not answer: {failed}"
    errors = [line for line in browser_log.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert not errors, "a script failed:\n" + "\n".join(errors)


def _assert_screenshot_has_content(path: Path) -> None:
    import matplotlib.image
    import numpy as np

    assert path.is_file() and path.stat().st_size > 10_000, "screenshot missing or empty"
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (900, 1200)
    grey = image[..., :3].mean(axis=2)
    background = np.median(grey)
    ink = np.mean(np.abs(grey - background) > 0.2)
    assert 0.01 < ink < 0.9, f"screenshot looks blank or broken (ink fraction {ink:.3f})"


def _root_page() -> str:
    return str(_read_yaml("_toc.yml")["root"]) + ".html"


@needs_build
@needs_chromium
def test_intro_renders_math_offline(built_pages, server, tmp_path):
    base, log = server
    page = _root_page()
    source = (BUILD / page).read_text(encoding="utf8")
    expected_math = source.count('class="math notranslate nohighlight"')
    assert expected_math >= 2, "the introduction should hold inline and display math"
    log.clear()
    dom, screenshot, browser_log, requested = _render(base + page, tmp_path)
    _assert_offline_and_complete(base, log, browser_log, requested)
    # MathJax 3 replaced every \( ... \) and \[ ... \] by an <mjx-container>.
    typeset = dom.count("<mjx-container")
    assert typeset >= expected_math, f"MathJax typeset {typeset} of {expected_math} formulas"
    assert 'display="true"' in dom, "the display equation was not typeset"
    untypeset = re.findall(r'class="math notranslate nohighlight">\s*\\[(\[]', dom)
    assert not untypeset, "some formulas were left as TeX source"
    assert any(path.startswith("/_static/mathjax/") for path, _ in log)
    _assert_screenshot_has_content(screenshot)


@needs_build
@needs_chromium
def test_widgets_render_offline(built_pages, server, tmp_path):
    pages = [
        page
        for page, parsed in built_pages.items()
        if any(kind == WIDGET_STATE for _, kind, _ in parsed.inline)
    ]
    if not pages:
        pytest.skip("no page of the book holds widget state yet")
    base, log = server
    for number, page in enumerate(pages):
        views = sum(kind == WIDGET_VIEW for _, kind, _ in built_pages[page].inline)
        log.clear()
        out = tmp_path / str(number)
        out.mkdir()
        url = base + page.relative_to(BUILD).as_posix()
        dom, screenshot, browser_log, requested = _render(url, out)
        _assert_offline_and_complete(base, log, browser_log, requested)
        rendered = dom.count('class="widget-subarea')
        assert rendered >= views, f"{page.name}: {rendered} of {views} widgets rendered"
        _assert_screenshot_has_content(screenshot)


@needs_build
@needs_chromium
def test_search_finds_the_introduction(built_pages, server, tmp_path):
    base, log = server
    log.clear()
    dom, _, browser_log, requested = _render(base + "search.html?q=credit", tmp_path)
    _assert_offline_and_complete(base, log, browser_log, requested)
    results = re.findall(r'<ul class="search">(.*?)</ul>', dom, flags=re.S)
    assert results, "the search page showed no result list"
    assert _root_page() in results[0], "searching for 'credit' did not find the introduction"


def test_every_chapter_in_the_toc_is_run_by_nbval():
    """`make notebooks` runs book/*.ipynb; a chapter elsewhere would be built but never tested."""
    import re

    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    assert re.search(r"^NOTEBOOKS := \$\(wildcard book/\*\.ipynb\)$", makefile, re.M)
    assert re.search(r"^notebooks:.*\n(?:.*\n)*?.*--nbval-lax \$\(NOTEBOOKS\)", makefile, re.M)
    assert re.search(r"^test: .*\bnotebooks\b", makefile, re.M)
    run_by_nbval = {p.resolve() for p in BOOK.glob("*.ipynb")}
    chapters = [
        p
        for e in _toc_entries(_read_yaml("_toc.yml"))
        for p in _resolve(e)
        if p.suffix == ".ipynb" and "assignments" not in p.relative_to(BOOK).parts
    ]
    assert chapters, "no chapter notebooks in the toc"
    missed = [str(p.relative_to(ROOT)) for p in chapters if p.resolve() not in run_by_nbval]
    assert not missed, f"chapters in the book that `make notebooks` does not run: {missed}"


class _ProseText(HTMLParser):
    """The text of a page outside code (<pre>, <code>, <script>, <style>)."""

    SKIP = {"pre", "code", "script", "style", "textarea"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.text = 0, []

    def handle_starttag(self, tag, attrs):
        self.depth += tag in self.SKIP

    def handle_endtag(self, tag):
        self.depth -= tag in self.SKIP and self.depth > 0

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)


@needs_build
def test_tables_render_as_tables(built_pages):
    """A Markdown table that a cell displays must arrive as an HTML table: no separator row
    like |---|---| in the prose of any page (the symptom of an unrendered table)."""
    separator = re.compile(r"\|\s*:?-{3,}:?\s*\|")
    raw = []
    for page in built_pages:
        parser = _ProseText()
        parser.feed(page.read_text(encoding="utf8"))
        hit = separator.search(" ".join(parser.text))
        if hit:
            raw.append(f"{page.relative_to(BUILD)}: ...{hit.group(0)}...")
    assert not raw, "pages show Markdown tables as raw text:\n" + "\n".join(raw)


@needs_build
@needs_chromium
def test_the_pdf_button_points_at_the_pdf_edition(built_pages, server, tmp_path):
    """In a browser, the theme's .pdf button no longer prints the page: the book's script
    retitles it for the PDF edition beside the HTML (mfbook.pdf, `make site`)."""
    base, log = server
    dom, _, browser_log, requested = _render(base + "book/03_gbp.html", tmp_path)
    _assert_offline_and_complete(base, log, browser_log, requested)
    titles = re.findall(r'class="[^"]*btn-download-pdf-button[^"]*"[^>]*?\stitle="([^"]*)"', dom)
    assert titles and set(titles) == {"The whole book as a PDF"}, titles
