"""The chapters as JupyterLab shows them: their lab edition, written by ``make lab``.

JupyterLab with jupyterlab-myst renders the chapters' MyST markdown (directives, exercises, math,
references inside a notebook, and the ``{eval}`` role, which asks the running kernel for a
value), but not what the book leaves to Sphinx: myst-nb's ``{glue}`` roles, citations, references
into other chapters, figure numbers (their captions live in cell metadata) and sphinx-exercise's
gated solutions, whose code cells sit between a ``solution-start`` and a ``solution-end`` cell.
:func:`build` writes a copy of every ``book/*.ipynb`` in which each of these reads properly:

- ``{glue:text}`key:.1f``` becomes an ``{eval}`` of :func:`shown`, which formats the value that
  the chapter glued in this kernel (:data:`mfbook.notebook.GLUED`); until the cell has run, the
  text reads a placeholder, stored as the expression's result, rather than the expression;
- a gated solution becomes a heading, "Solution to Exercise 2", that JupyterLab shows folded
  (``:class: dropdown``) over every cell of the solution, up to an empty heading of the same
  level. A ``{solution}`` directive cannot hold code cells; a folded heading can, and the code
  still runs with the chapter, so values glued in a solution reach its text;
- citations become author-year text from ``references.bib``; ``{numref}`` of a figure becomes
  "Figure 3", whose caption is added below the figure's cell; ``{doc}`` and references into
  another chapter become links to that chapter's copy (references inside a chapter are left to
  jupyterlab-myst, which resolves them); cells the book removes or hides are folded.

Why a copy: the chapters stay the book's sources, unchanged, and JupyterLab needs no extension
beyond jupyterlab-myst. The copies sit beside links to every other entry of ``book/``, so a
relative path finds what it finds from ``book/``, the chapters' working directory in the book.
A copy that was changed in JupyterLab since it was written is kept, not overwritten.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
from pathlib import Path

import nbformat

from mfbook import _lab_markup as markup
from mfbook._lab_index import Book, Target
from mfbook.io import atomic_write, sha256
from mfbook.notebook import GLUED

#: What a glued number reads until its cell has run
PENDING = "…"
#: The record of what build() wrote, so that a copy changed since is recognised
MANIFEST = ".mfbook-lab.json"
NOTE = """```{note}
This is the JupyterLab edition of the chapter, written by `make lab` from the book's sources.
A number in the text reads … until the chapter's code has run: run it all with
*Run > Run All Cells*. The solution of an exercise is folded under its heading: click "cells
hidden" below the heading to open it.
```"""
#: Cell tags of the book (Jupyter Book's remove-/hide-) -> what JupyterLab folds of the cell
FOLDS = {
    "remove-cell": ("source_hidden", "outputs_hidden"),
    "hide-cell": ("source_hidden", "outputs_hidden"),
    "remove-input": ("source_hidden",),
    "hide-input": ("source_hidden",),
    "remove-output": ("outputs_hidden",),
    "hide-output": ("outputs_hidden",),
}


class _Text(str):
    """Text that Jupyter shows as it is (its repr is itself, without quotes or escapes)."""

    def __repr__(self) -> str:
        return str.__str__(self)


def shown(name: str, spec: str | None = "") -> object:
    """The value glued as ``name``, as ``{glue:text}`name:spec``` shows it in the book: formatted
    with ``spec`` (converted to int or float first for a numeric format, as myst-nb does);
    ``spec=None`` gives the value itself (``{glue}``). A name not glued (yet), or a value the
    format does not fit, gives a message in the text instead."""
    if name not in GLUED:
        return _Text(f"[{name!r} not glued yet: run the chapter's cells, then this one]")
    value = GLUED[name]
    if spec is None:
        return value
    try:
        if spec[-1:] in tuple("bcdoxX"):
            value = int(value)
        elif spec[-1:] in tuple("eEfFgGn%"):
            value = float(value)
        return _Text(format(value, spec) if spec else str(value))
    except (TypeError, ValueError) as err:
        return _Text(f"[{name!r} cannot be formatted with {spec!r}: {err}]")


class _Roles:
    """What each role of one chapter becomes (the callback of markup.rewrite_roles); None
    leaves a role to jupyterlab-myst."""

    def __init__(self, book: Book, notebook: str):
        self.book, self.notebook = book, notebook

    def __call__(self, name: str, content: str) -> str | None:
        kind, _, variant = name.partition(":")
        handlers = {"glue": self.glue, "cite": self.cite, "eq": self.eq, "ref": self.ref}
        handlers |= {"numref": self.numref, "doc": self.doc}
        return handlers[kind](variant, content) if kind in handlers else None

    def glue(self, variant: str, content: str) -> str:
        key, spec = content.strip(), (None if variant in ("", "any") else "")
        if variant == "text" and ":" in key:
            key, spec = key.rsplit(":", 1)
        return "{eval}`" + f"__import__('mfbook.lab').lab.shown({key!r}, {spec!r})" + "`"

    def cite(self, variant: str, content: str) -> str:
        keys = [key.strip() for key in content.split(",") if key.strip()]
        return markup.citation(variant, keys, self.book.bibliography)

    def eq(self, variant: str, content: str) -> str | None:
        target = self.book.targets.get(content.strip())
        if target is None:
            return f"({content.strip()})"
        return None if target.notebook == self.notebook else self._elsewhere(target, target.reads)

    def ref(self, variant: str, content: str) -> str | None:
        text, label = markup.split_target(content)
        target = self.book.targets.get(label)
        if target is None:
            return text or label
        return None if target.notebook == self.notebook else self._link(target, text)

    def numref(self, variant: str, content: str) -> str | None:
        text, label = markup.split_target(content)
        target = self.book.targets.get(label)
        if target is None:
            return text or label
        if target.number is None and target.notebook == self.notebook:
            return None
        if text and target.number is not None:
            text = text.replace("%s", str(target.number)).replace("{number}", str(target.number))
        if target.notebook == self.notebook:
            return text or target.reads
        return self._link(target, text)

    def doc(self, variant: str, content: str) -> str:
        text, path = markup.split_target(content)
        for file in (path, f"{path}.ipynb", f"{path}.md"):
            if Path(file).suffix in (".ipynb", ".md") and (self.book.folder / file).is_file():
                return f"[{text or self.book.title(file)}]({file})"
        return text or path

    def _link(self, target: Target, text: str) -> str:
        return f"[{text or target.reads}]({target.notebook})"

    def _elsewhere(self, target: Target, reads: str) -> str:
        return f"{reads} of [{self.book.title(target.notebook)}]({target.notebook})"


def _ungate(cells: list, notebook: str, book: Book) -> None:
    """Every gated directive of a chapter, in place: a start becomes a heading one level below
    the section it is in (folded where its class is dropdown), an end an empty heading of that
    level, which ends the fold. A ValueError names the notebook and the cell of a marker that
    has no partner or names no exercise of the chapter."""
    level, opened = 1, None  # the last heading level of the sources; (kind, where, level)
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        where = f"{notebook}, cell {index} (id {cell.get('id', '?')})"
        found, levels = markup.gates(cell.source), markup.heading_levels(cell.source)
        if len(found) > 1:
            raise ValueError(
                f"{where}: {len(found)} gated markers in one cell; put each in a "
                "cell of its own, or use one {solution} directive"
            )
        for first, stop, kind, end, argument, options in found:
            if end == "start" and opened:
                raise ValueError(
                    f"{where}: {kind}-start, but the {opened[0]}-start of "
                    f"{opened[1]} has no {opened[0]}-end before it"
                )
            if end == "end" and (not opened or opened[0] != kind):
                raise ValueError(f"{where}: {kind}-end without a {kind}-start before it")
            if end == "start":
                opened = (kind, where, min(level + 1, 6))
                try:
                    title = _gate_title(kind, argument, options, book, notebook)
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None
                heading = "#" * opened[2] + " " + title
                folded = "dropdown" in options.get("class", "").split() or "hidden" in options
                cell.metadata["jp-MarkdownHeadingCollapsed"] = folded
            else:
                heading, opened = "#" * opened[2], None
            lines = cell.source.splitlines()
            cell.source = "\n".join([*lines[:first], heading, *lines[stop:]])
        level = levels[-1] if levels else level
    if opened:
        raise ValueError(f"{opened[1]}: {opened[0]}-start has no {opened[0]}-end after it")


def _gate_title(kind: str, argument: str, options: dict, book: Book, notebook: str) -> str:
    """The heading of a gated directive: "Solution to Exercise 2", "Exercise 3 (its title)"."""
    if kind == "exercise":
        target = book.targets.get(options.get("label", ""))
        reads = target.reads if target else "Exercise"
        return f"{reads} ({argument})" if argument else reads
    label = argument.split()[0] if argument else ""
    target = book.targets.get(label)
    if target is None or target.notebook != notebook:
        raise ValueError(f"solution-start names {label!r}, no exercise of this notebook")
    return f"Solution to {target.reads}"


def _rewrite(cell, roles: _Roles):
    """A markdown ``cell`` with its roles rewritten and each ``{eval}`` expression reading
    :data:`PENDING` until the cell runs (jupyterlab-myst's user_expressions metadata)."""
    cell.source = markup.rewrite_roles(cell.source, roles)
    evals = [content for name, content in markup.roles(cell.source) if name == "eval"]
    if evals:
        cell.metadata["user_expressions"] = [
            {"expression": e, "result": {"status": "ok", "data": {"text/plain": PENDING}}}
            for e in dict.fromkeys(evals)
        ]
    return cell


def convert(nb, notebook: str, book: Book):
    """The lab edition of one chapter (``nb``, the notebook node of file ``notebook``)."""
    nb = copy.deepcopy(nb)
    _ungate(nb.cells, notebook, book)
    roles, cells = _Roles(book, notebook), []
    for cell in nb.cells:
        hidden = {flag for tag in cell.metadata.get("tags", []) for flag in FOLDS.get(tag, ())}
        if hidden:
            cell.metadata.setdefault("jupyter", {}).update(dict.fromkeys(sorted(hidden), True))
        cells.append(_rewrite(cell, roles) if cell.cell_type == "markdown" else cell)
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if cell.cell_type == "code" and figure:
            target = book.targets.get(figure.get("name", ""))
            caption = f"**{target.reads if target else 'Figure'}.** {figure.get('caption', '')}"
            cells.append(_rewrite(nbformat.v4.new_markdown_cell(caption.strip()), roles))
    note = _rewrite(nbformat.v4.new_markdown_cell(NOTE), roles)
    nb.cells = cells[:1] + [note] + cells[1:]
    return nb


def build(book: Path, out: Path, log=print) -> list[Path]:
    """The lab edition of every ``book/*.ipynb`` in ``out``, beside links to the rest of
    ``book``; a copy changed since it was written here is kept (and named in the log). Every
    chapter is converted before any is written, so a ValueError leaves ``out`` as it was."""
    paths = sorted(book.glob("*.ipynb"))
    notebooks = {path.name: nbformat.read(path, as_version=4) for path in paths}
    index = Book.read(book, notebooks)
    editions = {name: nbformat.writes(convert(nb, name, index)) for name, nb in notebooks.items()}
    out.mkdir(parents=True, exist_ok=True)
    record = out / MANIFEST
    written = json.loads(record.read_text(encoding="utf8")) if record.is_file() else {}
    paths = []
    for name, text in sorted(editions.items()):
        path, digest = out / name, hashlib.sha256(text.encode()).hexdigest()
        now = sha256(path) if path.is_file() else None
        if now not in (None, digest, written.get(name)):
            log(f"kept {path}: changed since it was written (delete it for the current edition)")
            continue
        atomic_write(path, text)
        written[name] = digest
        paths.append(path)
    atomic_write(record, json.dumps(written, indent=1, sort_keys=True) + "\n")
    for entry in sorted(book.iterdir()):
        link = out / entry.name
        if (
            entry.suffix == ".ipynb"
            or entry.name.startswith((".", "_build"))
            or os.path.lexists(link)
        ):
            continue
        link.symlink_to(os.path.relpath(entry, out), target_is_directory=entry.is_dir())
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mfbook.lab", description="Write the chapters' JupyterLab edition."
    )
    parser.add_argument("--book", type=Path, default=Path("book"), help="the chapters' folder")
    parser.add_argument("--out", type=Path, default=Path("_build/lab"), help="where to write")
    args = parser.parse_args(argv)
    try:
        paths = build(args.book, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(paths)} chapters written to {args.out}/; open them with: jupyter lab {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
