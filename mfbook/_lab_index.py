"""What a chapter's references need to know of the whole book, for its lab edition
(:mod:`mfbook.lab`): every label and where it is, the chapters' titles, the bibliography."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mfbook import _lab_markup as markup

TARGET_LINE = re.compile(r"^\(([^()\s]+)\)=\s*$")
EQUATION_LABEL = re.compile(r"\$\$\s*\(([^()\s]+)\)\s*$")
DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{([\w:-]+)\}")


class Target(NamedTuple):
    """A label of the book: its chapter's file, what a reference to it reads, its number."""

    notebook: str
    reads: str
    number: int | None = None


@dataclass
class Book:
    """What a chapter's references need to know of the whole book."""

    folder: Path
    titles: dict[str, str]  # chapter file -> its first heading
    targets: dict[str, Target]  # label -> where it is
    bibliography: dict[str, tuple[str, str]]  # key -> (authors, year), from book/*.bib

    @classmethod
    def read(cls, folder: Path, notebooks: dict) -> Book:
        titles = {name: _title(nb, name) for name, nb in notebooks.items()}
        targets = {}
        for name, nb in notebooks.items():
            targets.update(_targets(name, nb, titles[name]))
        bibliography = {}
        for bib in sorted(folder.glob("*.bib")):
            bibliography.update(markup.read_bibliography(bib))
        return cls(folder, titles, targets, bibliography)

    def title(self, file: str) -> str:
        if file in self.titles:
            return self.titles[file]
        return markup.first_heading((self.folder / file).read_text(encoding="utf8")) or file


def _title(nb, name: str) -> str:
    sources = (c.source for c in nb.cells if c.cell_type == "markdown")
    return next(filter(None, map(markup.first_heading, sources)), Path(name).stem)


def _targets(name: str, nb, title: str) -> dict[str, Target]:
    """The labels a chapter defines: (label)= targets, labelled equations, directives' :label:
    (exercises numbered in order, as jupyterlab-myst does) and figure cells (mystnb.figure)."""
    found, figures, exercises = {}, 0, 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            if figure_name := cell.metadata.get("mystnb", {}).get("figure", {}).get("name"):
                figures += 1
                found[figure_name] = Target(name, f"Figure {figures}", figures)
            continue
        lines = [
            line
            for run, code in markup.prose_and_code(cell.source)
            if not code
            for line in run.splitlines()
        ]
        for i, line in enumerate(lines):
            if match := TARGET_LINE.match(line):
                after = next((a for a in lines[i + 1 :] if a.strip()), "")
                heading = markup.HEADING.match(after)
                found[match[1]] = Target(name, heading[2] if heading and heading[2] else title)
            elif match := EQUATION_LABEL.search(line):
                found[match[1]] = Target(name, "an equation")
            elif match := DIRECTIVE.match(line):
                options, _ = markup.directive_options(lines[i + 1 :])
                exercise, number = match[1] in ("exercise", "exercise-start"), None
                if exercise and "nonumber" not in options:
                    exercises = number = exercises + 1
                if "label" in options:
                    reads = f"Exercise {number}" if number else "Exercise" if exercise else title
                    found[options["label"]] = Target(name, reads, number)
    return found
