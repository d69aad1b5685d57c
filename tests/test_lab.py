"""The chapters' lab edition (mfbook.lab, `make lab`): what each piece of markup becomes, what is
left alone, and the clear errors of malformed gated solutions. The browser check of the result is
tests/test_lab_browser.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from IPython.lib.pretty import pretty

from mfbook import lab
from mfbook._lab_index import Book
from mfbook._lab_markup import prose_and_code
from mfbook.notebook import GLUED

ROOT = Path(__file__).resolve().parents[1]
BIB = """@article{li2020learning, author = {Li, Chan and Huang, Haiping}, year = {2020}}
@article{kingma2015variational, author = {Kingma, D. and Salimans, T. and Welling, M.},
  title = {V}, year = {2015}}
"""
EXERCISE = "```{exercise} A title\n:label: ex-a\n\nDo it.\n```"
START = "```{solution-start} ex-a\n:class: dropdown\n```"
END = "```{solution-end}\n```"


def md(source: str):
    return nbformat.v4.new_markdown_cell(source)


def code(source: str, **metadata):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(metadata)
    return cell


def write_book(folder: Path, chapters: dict[str, list]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "references.bib").write_text(BIB)
    for name, cells in chapters.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = cells
        nbformat.write(nb, folder / name)
    return folder


OTHER = [
    md("(ch2-top)=\n# The second chapter\n\n$$\na = b\n$$ (eq-two)"),
    code("plot()", mystnb={"figure": {"name": "fig-two", "caption": "Two."}}),
]


def edition(tmp_path: Path, *cells, name: str = "01_one.ipynb"):
    """The lab edition of a chapter of ``cells`` in a book that also has 02_two.ipynb."""
    book = write_book(tmp_path / "book", {name: [md("# One"), *cells], "02_two.ipynb": OTHER})
    notebooks = {p.name: nbformat.read(p, as_version=4) for p in sorted(book.glob("*.ipynb"))}
    return lab.convert(notebooks[name], name, Book.read(book, notebooks))


def texts(nb) -> list[str]:
    """The sources of the converted chapter, without its title and the edition's note."""
    return [cell.source for cell in nb.cells[2:]]


def expression(key: str, spec) -> str:
    return "{eval}`" + f"__import__('mfbook.lab').lab.shown({key!r}, {spec!r})" + "`"


# -- shown(): the kernel's side of a glued number ----------------------------------------------


@pytest.fixture
def glued():
    saved = dict(GLUED)
    GLUED.update({"t-x": 0.12345, "t-n": 12345, "t-s": "a phrase", "t-arr": [1, 2]})
    yield
    GLUED.clear()
    GLUED.update(saved)


@pytest.mark.parametrize(
    ("key", "spec", "text"),
    [
        ("t-x", ".1f", "0.1"),
        ("t-x", ".1%", "12.3%"),
        ("t-n", ",", "12,345"),
        ("t-n", ".2e", "1.23e+04"),
        ("t-x", "d", "0"),  # an integer format takes the int, as myst-nb does
        ("t-s", "", "a phrase"),  # no quotes: the text, not its repr
        ("t-s", "s", "a phrase"),
    ],
)
def test_shown_formats_the_glued_value_like_myst_nb(glued, key, spec, text):
    value = lab.shown(key, spec)
    assert str(value) == text
    assert pretty(value) == text  # what the kernel sends as text/plain


def test_shown_without_a_format_gives_the_value_itself(glued):
    assert lab.shown("t-arr", None) == [1, 2]


def test_a_name_never_glued_reads_as_a_message_not_an_error(glued):
    text = pretty(lab.shown("t-missing", ".1f"))
    assert text == "['t-missing' not glued yet: run the chapter's cells, then this one]"


def test_a_value_the_format_does_not_fit_reads_as_a_message(glued):
    text = pretty(lab.shown("t-s", ".1f"))
    assert text.startswith("[") and "'t-s' cannot be formatted with '.1f'" in text


# -- roles --------------------------------------------------------------------------------------


def test_glue_roles_become_eval_of_shown(tmp_path):
    nb = edition(tmp_path, md("a {glue:text}`k-1:.1f` b {glue:text}`k-2` c {glue}`k-3`"))
    want = f"a {expression('k-1', '.1f')} b {expression('k-2', '')} c {expression('k-3', None)}"
    assert texts(nb) == [want]


def test_each_eval_reads_pending_until_its_cell_runs(tmp_path):
    cell = edition(tmp_path, md("{glue:text}`k:.1f` and {glue:text}`k:.1f`, {eval}`1 + 1`")).cells[
        2
    ]
    assert cell.metadata["user_expressions"] == [
        {"expression": e, "result": {"status": "ok", "data": {"text/plain": lab.PENDING}}}
        for e in (expression("k", ".1f")[7:-1], "1 + 1")
    ]


def test_citations_read_author_year(tmp_path):
    nb = edition(
        tmp_path,
        md("{cite:p}`li2020learning` {cite:t}`li2020learning` {cite}`li2020learning`"),
        md("{cite:p}`li2020learning, kingma2015variational` {cite:p}`nobody2001`"),
    )
    assert texts(nb) == [
        "[Li and Huang, 2020] Li and Huang [2020] [Li and Huang, 2020]",
        "[Li and Huang, 2020; Kingma et al., 2015] [nobody2001 (not in the bibliography), ?]",
    ]


def test_references_inside_the_chapter_are_left_to_jupyterlab_myst(tmp_path):
    source = "(sec)=\n## Sec\n\n$$\nx\n$$ (eq-one)\n\n{eq}`eq-one`, {ref}`sec`, {ref}`Sec <sec>`."
    assert texts(edition(tmp_path, md(source))) == [source]


def test_references_into_another_chapter_become_links(tmp_path):
    nb = edition(
        tmp_path, md("{eq}`eq-two`; {ref}`Chapter 2\n<ch2-top>`; {ref}`ch2-top`; {doc}`02_two`")
    )
    assert texts(nb) == [
        "an equation of [The second chapter](02_two.ipynb); [Chapter 2](02_two.ipynb); "
        "[The second chapter](02_two.ipynb); [The second chapter](02_two.ipynb)"
    ]


def test_unknown_labels_read_as_their_text(tmp_path):
    nb = edition(tmp_path, md("{eq}`eq-none` {ref}`Far away <nowhere>` {numref}`fig-none`"))
    assert texts(nb) == ["(eq-none) Far away fig-none"]


def test_figures_are_numbered_and_captioned(tmp_path):
    nb = edition(
        tmp_path,
        code("a()", mystnb={"figure": {"name": "fig-a", "caption": "A {glue:text}`k:.1f`."}}),
        code("b()", mystnb={"figure": {"name": "fig-b", "caption": "B."}}),
        md("{numref}`fig-b`, {numref}`Fig. %s <fig-a>`, {numref}`fig-two`"),
    )
    assert texts(nb)[1] == f"**Figure 1.** A {expression('k', '.1f')}."
    assert texts(nb)[3] == "**Figure 2.** B."
    assert texts(nb)[4] == "Figure 2, Fig. 1, [Figure 1](02_two.ipynb)"


def test_several_roles_on_one_line_and_roles_inside_directives(tmp_path):
    source = (
        "````{exercise} About {glue:text}`k-t`\n:label: ex-a\n\n"
        "{glue:text}`k-1:.1f`{cite:t}`li2020learning`\n"
        "```{note}\nInside {glue:text}`k-2`.\n```\n````"
    )
    assert texts(edition(tmp_path, md(source))) == [
        f"````{{exercise}} About {expression('k-t', '')}\n:label: ex-a\n\n"
        f"{expression('k-1', '.1f')}Li and Huang [2020]\n"
        f"```{{note}}\nInside {expression('k-2', '')}.\n```\n````"
    ]


@pytest.mark.parametrize(
    "block",
    [
        "```python\nglue = '{glue:text}`k:.1f`'\n```",
        "~~~\n{cite:p}`li2020learning`\n~~~",
        "````markdown\n```{exercise} x\n{glue:text}`k`\n```\n````",  # a fence inside a code fence
        "```{code-block} markdown\n{glue:text}`k`\n```",
        "```{math}\n:label: eq-z\n{eq}`eq-two`\n```",
        "Write ``{glue:text}`k` `` in the text.",  # a code span
    ],
)
def test_code_is_left_untouched(tmp_path, block):
    source = f"{block}\n\nafter {{cite:p}}`li2020learning`"
    assert texts(edition(tmp_path, md(source))) == [f"{block}\n\nafter [Li and Huang, 2020]"]


def test_code_runs_are_found_through_nested_fences():
    text = "a\n````{note}\n```python\nx\n```\nb\n````\nc\n"
    assert prose_and_code(text) == [
        ("a\n````{note}\n", False),
        ("```python\nx\n```\n", True),
        ("b\n````\nc\n", False),
    ]


# -- cells --------------------------------------------------------------------------------------


def test_a_gated_solution_becomes_a_folded_section(tmp_path):
    nb = edition(
        tmp_path,
        md("## Exercises"),
        md(EXERCISE),
        md(START),
        md("The answer {glue:text}`k:.1f`."),
        code("answer()"),
        md(END),
        md("```{exercise} Next\n:label: ex-b\n```"),
    )
    start, end = nb.cells[4], nb.cells[7]
    assert start.source == "### Solution to Exercise 1"
    assert start.metadata["jp-MarkdownHeadingCollapsed"] is True
    assert end.source == "###"  # ends the section: the next exercise is not folded with it
    assert nb.cells[5].source == f"The answer {expression('k', '.1f')}."
    assert nb.cells[6].source == "answer()"


def test_a_solution_without_dropdown_is_not_folded(tmp_path):
    start = "```{solution-start} ex-a\n```"
    nb = edition(tmp_path, md(EXERCISE), md(start), code("x"), md(END))
    assert nb.cells[3].source == "## Solution to Exercise 1"  # below the title's level 1
    assert nb.cells[3].metadata["jp-MarkdownHeadingCollapsed"] is False


@pytest.mark.parametrize(
    ("cells", "where", "says"),
    [
        ([md(EXERCISE), md(END)], "cell 2", "solution-end without a solution-start"),
        ([md(EXERCISE), md(START), code("x")], "cell 2", "solution-start has no solution-end"),
        ([md(EXERCISE), md(START), md(START), md(END)], "cell 3", "the solution-start of"),
        ([md(EXERCISE), md(START + "\n" + END)], "cell 2", "2 gated markers in one cell"),
        ([md(START.replace("ex-a", "ex-z")), md(END)], "cell 1", "names 'ex-z', no exercise"),
    ],
)
def test_malformed_gates_are_named_by_notebook_and_cell(tmp_path, cells, where, says):
    with pytest.raises(ValueError) as err:
        edition(tmp_path, *cells, name="03_bad.ipynb")
    assert f"03_bad.ipynb, {where} (id " in str(err.value)
    assert says in str(err.value)


def test_cells_the_book_removes_or_hides_are_folded(tmp_path):
    nb = edition(
        tmp_path,
        code("glue()", tags=["remove-cell"]),
        code("x", tags=["hide-input"]),
        code("y", tags=["remove-output"]),
        code("z"),
    )
    folds = [cell.metadata.get("jupyter") for cell in nb.cells[2:]]
    assert folds == [
        {"outputs_hidden": True, "source_hidden": True},
        {"source_hidden": True},
        {"outputs_hidden": True},
        None,
    ]


def test_the_edition_note_follows_the_title(tmp_path):
    nb = edition(tmp_path, md("text"))
    assert [c.source for c in nb.cells] == ["# One", lab.NOTE, "text"]


# -- the folder ---------------------------------------------------------------------------------


def test_build_writes_every_chapter_beside_links_to_the_rest(tmp_path):
    book = write_book(tmp_path / "book", {"01_one.ipynb": [md("# One")], "02_two.ipynb": OTHER})
    (book / "results").mkdir()
    out = tmp_path / "out"
    assert lab.build(book, out, log=None) == [out / "01_one.ipynb", out / "02_two.ipynb"]
    assert (out / "results").is_symlink() and (out / "results").resolve() == book / "results"
    assert not (out / "results").readlink().is_absolute()
    assert lab.build(book, out, log=None) == [out / "01_one.ipynb", out / "02_two.ipynb"]


def test_build_keeps_a_chapter_changed_in_jupyterlab(tmp_path):
    book = write_book(tmp_path / "book", {"01_one.ipynb": [md("# One")], "02_two.ipynb": OTHER})
    out, log = tmp_path / "out", []
    lab.build(book, out, log=log.append)
    (out / "01_one.ipynb").write_text((out / "01_one.ipynb").read_text().replace("One", "Mine"))
    assert lab.build(book, out, log=log.append) == [out / "02_two.ipynb"]
    assert "Mine" in (out / "01_one.ipynb").read_text()
    assert log == [f"kept {out / '01_one.ipynb'}: changed since it was written (delete it for "
                   "the current edition)"]  # fmt: skip


def test_the_command_names_a_malformed_chapter_and_writes_nothing(tmp_path, capsys):
    book = write_book(tmp_path / "book", {"01_one.ipynb": [md("# One"), md(EXERCISE), md(END)]})
    assert lab.main(["--book", str(book), "--out", str(tmp_path / "out")]) == 1
    assert "error: 01_one.ipynb, cell 2 (id " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_books_chapters_leave_no_sphinx_markup(tmp_path):
    """Every chapter of book/ (whichever there are): no glue, citation, numref or doc role, no
    gated marker is left in its prose, and each solution is a folded heading."""
    out = tmp_path / "lab"
    written = lab.build(ROOT / "book", out, log=None)
    assert {p.name for p in written} == {p.name for p in (ROOT / "book").glob("*.ipynb")}
    folded = 0
    for path in written:
        for cell in nbformat.read(path, as_version=4).cells:
            prose = "".join(r for r, c in prose_and_code(cell.source) if not c)
            for markup in ("{glue", "{cite", "{numref}", "{doc}", "-start}", "-end}"):
                assert markup not in prose, f"{path.name}: {markup} left in {cell.source!r}"
            folded += cell.metadata.get("jp-MarkdownHeadingCollapsed", False)
    assert folded >= 10


def test_make_lab_writes_the_edition_and_opens_it():
    dry = subprocess.run(
        ["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "-m mfbook.lab --book book --out _build/lab" in dry
    assert dry.index("-m mfbook.lab") < dry.index("jupyter lab _build/lab")
