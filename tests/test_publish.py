"""Publishing: one version, one repository address, the licences and the citation, and the
workflows that publish the book calling the Makefile's own targets."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

import mfbook

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _yaml(path):
    return yaml.safe_load(path.read_text())


def repository_url() -> str:
    """The one place the repository's address lives: _config.yml's repository.url."""
    return _yaml(ROOT / "_config.yml")["repository"]["url"]


def _tracked_text_files():
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in names:
        if name.startswith("book/results/") or not name.endswith(
            (".md", ".toml", ".yml", ".yaml", ".cff", ".ipynb", ".py", ".cfg", ".txt")
        ):
            continue
        yield name, (ROOT / name).read_text(errors="replace")


# --- one version --------------------------------------------------------------------------------
def test_the_version_lives_in_the_package_and_pyproject_reads_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", mfbook.__version__)


def test_the_citation_and_the_changelog_name_the_packages_version():
    assert str(_yaml(ROOT / "CITATION.cff")["version"]) == mfbook.__version__
    heading = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert heading and heading.group(1) == mfbook.__version__
    cited = re.search(r"Version (\S+)\}", (ROOT / "book" / "intro.md").read_text())
    assert cited and cited.group(1) == mfbook.__version__  # the front page's BibTeX


def test_the_command_line_says_its_version():
    done = subprocess.run(
        [sys.executable, "-m", "mfbook", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"mfbook {mfbook.__version__}"


# --- one repository address ---------------------------------------------------------------------
def test_every_mention_of_the_repository_is_the_configured_one():
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == url
    assert _yaml(ROOT / "CITATION.cff")["repository-code"] == url
    assert url in (ROOT / "README.md").read_text()
    others = {
        f"{name}: {found}"
        for name, text in _tracked_text_files()
        for found in re.findall(r"https?://github\.com/[\w.-]+/[\w.-]+", text)
        if found.removesuffix(".git") != url
    }
    assert not others, f"repository addresses other than {url}: {sorted(others)}"


# --- licences and citation ----------------------------------------------------------------------
def test_the_licences_and_the_citation_exist_and_are_linked():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "CC BY 4.0" in (ROOT / "LICENSE-CONTENT.md").read_text()
    readme = (ROOT / "README.md").read_text()
    intro = (ROOT / "book" / "intro.md").read_text()
    for name in ("LICENSE", "LICENSE-CONTENT.md", "CITATION.cff", "CHANGELOG.md"):
        assert f"]({name})" in readme, f"the README does not link {name}"
        assert f"]({repository_url()}/blob/main/{name})" in intro, (
            f"the book's front page does not link {name}"
        )
    assert "CC BY 4.0" in readme and "CC BY 4.0" in intro
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT AND CC-BY-4.0"
    assert sorted(project["license-files"]) == ["LICENSE", "LICENSE-CONTENT.md"]


def test_the_citation_cites_the_paper_the_book_teaches():
    cff = _yaml(ROOT / "CITATION.cff")
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"]
    assert set(cff["license"]) == {"MIT", "CC-BY-4.0"}
    (paper,) = cff["references"]
    assert paper["doi"] == "10.1103/PhysRevLett.125.178301"
    assert [a["family-names"] for a in paper["authors"]] == ["Li", "Huang"]
    assert (paper["volume"], paper["start"], paper["year"]) == (125, 178301, 2020)


# --- the workflows ------------------------------------------------------------------------------
def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def _run_steps(workflow):
    return [
        step["run"].strip()
        for job in _yaml(WORKFLOWS / workflow)["jobs"].values()
        for step in job.get("steps", [])
        if "run" in step
    ]


def test_the_pull_request_workflow_runs_the_ci_script():
    flow = _yaml(WORKFLOWS / "ci.yml")
    assert "pull_request" in flow[True]  # YAML reads the key `on` as True
    assert _run_steps("ci.yml") == [".ci/run"]


def test_the_publish_workflow_builds_with_the_makefile_and_deploys_pages():
    flow = _yaml(WORKFLOWS / "publish.yml")
    assert flow[True]["push"]["tags"] == ["v*"]
    targets = _make_targets()
    for run in _run_steps("publish.yml"):
        words = run.split()
        if "make" in words:
            assert words[words.index("make") + 1] in targets, run
        else:
            assert any(w.startswith(".ci/") and (ROOT / w).is_file() for w in words), run
    assert "make site" in _run_steps("publish.yml")
    uses = [s.get("uses", "") for j in flow["jobs"].values() for s in j["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    pages = next(
        s for j in flow["jobs"].values() for s in j["steps"] if "upload-pages" in s.get("uses", "")
    )
    assert pages["with"]["path"] == "_build/site"


@pytest.mark.parametrize("target", ["book", "pdf", "site", "dist", "check-dist", "lint-workflows"])
def test_the_makefile_has_the_publishing_targets(target):
    assert target in _make_targets()


def test_ci_runs_the_publishing_checks():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("make test", "make book", "make pdf", "make check-dist", "make lint-workflows"):
        assert command in ci, f".ci/run does not run {command}"


# --- the built editions (after `make book` and `make pdf`; CI sets MFBOOK_CHECK_BUILD=1) -------
HTML = ROOT / "_build" / "html"
LATEX = ROOT / "_build" / "latex"


def _check(edition: Path) -> bool:
    flag = os.environ.get("MFBOOK_CHECK_BUILD", "")
    return flag == "1" or (flag != "0" and edition.exists())


def _toc_chapters() -> list[str]:
    toc = _yaml(ROOT / "_toc.yml")
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    files += [
        s["file"] for part in toc["parts"] for c in part["chapters"] for s in c.get("sections", [])
    ]
    return files


@pytest.mark.skipif(not _check(HTML / "index.html"), reason="no built HTML book")
def test_every_built_page_carries_the_licence_footer():
    pages = [HTML / f"{name}.html" for name in ["book/intro", *_toc_chapters()]]
    missing = [str(p.relative_to(HTML)) for p in pages if "CC BY 4.0" not in p.read_text()]
    assert not missing, f"pages without the licence footer: {missing}"


@pytest.mark.skipif(not _check(LATEX / "mfbook.pdf"), reason="no built PDF (make pdf)")
def test_the_pdf_edition_holds_every_chapter():
    pdf = LATEX / "mfbook.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000_000
    tex = (LATEX / "mfbook.tex").read_text().replace("\\sphinxhyphen{}", "-")
    for name in _toc_chapters():
        path = ROOT / name
        if path.with_suffix(".ipynb").is_file():
            nb = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
            source = next(c.source for c in nb.cells if c.cell_type == "markdown")
        else:
            source = path.with_suffix(".md").read_text()
        title = re.search(r"^# (.+)$", source, re.M).group(1).strip()
        assert re.search(r"\\(chapter|section)\{" + re.escape(title.split("`")[0][:30]), tex), (
            f"the PDF has no chapter {title!r} ({name})"
        )
    assert "\\begin{thebibliography}" in tex or "\\bibitem" in tex or "sphinxbibitem" in tex


def test_the_pdf_button_opens_the_pdf_edition_that_make_site_publishes():
    config = _yaml(ROOT / "_config.yml")
    assert config["latex"]["latex_documents"]["targetname"] == "mfbook.tex"
    assert "pdf-edition.js" in config["sphinx"]["config"]["html_js_files"]
    script = (ROOT / "book" / "_static" / "pdf-edition.js").read_text()
    assert '"mfbook.pdf"' in script and ".btn-download-pdf-button" in script
    site = re.search(r"^site:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S).group(0)
    assert "cp _build/latex/mfbook.pdf _build/site/mfbook.pdf" in site


@pytest.mark.skipif(not _check(HTML / "index.html"), reason="no built HTML book")
def test_every_built_page_loads_the_pdf_button_script():
    pages = [HTML / f"{name}.html" for name in ["book/intro", *_toc_chapters()]]
    missing = [str(p.relative_to(HTML)) for p in pages if "pdf-edition.js" not in p.read_text()]
    assert not missing, f"pages whose .pdf button still prints the page: {missing}"
