"""The student version of an assignment: nbgrader's notebook format and the generator.

The master notebooks in ``book/assignments/master/`` use nbgrader's syntax (see
``mfbook.assignments``). This module reads that metadata (:func:`is_solution`, :func:`is_test`,
:func:`grade_id`, :func:`test_points`, used by the grader too) and writes the student version
of a master: every answer replaced by a stub, hidden tests removed, outputs cleared, and the
JSON deterministic (the same master gives the same bytes), written atomically.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
from nbformat.v4.rwbase import split_lines

from mfbook.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "book" / "assignments"
MASTERS = ASSIGNMENTS / "master"

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = 'raise NotImplementedError("Student exercise: {grade_id}")'


# --- reading the nbgrader metadata -----------------------------------------------------------
def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(meta(cell).get("solution"))


def is_test(cell) -> bool:
    return bool(meta(cell).get("grade")) and not is_solution(cell)


def grade_id(cell) -> str | None:
    return meta(cell).get("grade_id")


def test_points(nb) -> dict[str, float]:
    """{grade_id: points} of the test cells of a notebook, in notebook order."""
    return {grade_id(c): float(meta(c).get("points", 0)) for c in nb.cells if is_test(c)}


# --- the student version ---------------------------------------------------------------------
def _replace_regions(source: str, begin: str, end: str, replacement, where: str) -> str:
    """Replace every region from a line holding ``begin`` to a line holding ``end`` (inclusive).

    ``replacement(indent)`` gives the lines to put instead (``[]`` removes the region).
    """
    out, indent = [], None
    for line in source.splitlines():
        if line.strip() == begin:
            if indent is not None:
                raise ValueError(f"{where}: '{begin}' inside another '{begin}' region")
            indent = line[: len(line) - len(line.lstrip())]
        elif line.strip() == end:
            if indent is None:
                raise ValueError(f"{where}: '{end}' without '{begin}'")
            out += replacement(indent)
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: '{begin}' without '{end}'")
    return "\n".join(out)


def student_notebook(master) -> nbformat.NotebookNode:
    """The student version of a master notebook (a new notebook; the master is not changed)."""
    nb = copy.deepcopy(master)
    for i, cell in enumerate(nb.cells):
        where = f"cell {i} ({grade_id(cell) or cell.cell_type})"
        if is_solution(cell):
            if BEGIN_SOLUTION not in cell.source:
                raise ValueError(f"{where} is a solution cell without '{BEGIN_SOLUTION}'")
            stub = STUB.format(grade_id=grade_id(cell))
            if cell.cell_type == "markdown":
                stub = "YOUR ANSWER HERE"
            cell.source = _replace_regions(
                cell.source, BEGIN_SOLUTION, END_SOLUTION, lambda ind, s=stub: [ind + s], where
            )
        elif is_test(cell):
            cell.source = _replace_regions(
                cell.source, BEGIN_HIDDEN, END_HIDDEN, lambda _: [], where
            )
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # Students' notebooks stop at their first exercise by design: the book shows them unexecuted.
    nb.metadata["mystnb"] = {"execution_mode": "off"}
    return nb


def _dumps(nb) -> str:
    """Deterministic JSON: sorted keys, sources as lists of lines (as Jupyter saves them)."""
    nb = split_lines(copy.deepcopy(nb))
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def generate_student(master_path, out_path) -> Path:
    """Write the student version of the master notebook ``master_path`` to ``out_path``."""
    master = nbformat.read(master_path, as_version=4)
    return atomic_write(out_path, _dumps(student_notebook(master)))


def generate_all(masters_dir=MASTERS, out_dir=ASSIGNMENTS) -> list[Path]:
    """Student versions of every master: ``masters_dir/NN_x.ipynb`` -> ``out_dir/NN_x.ipynb``."""
    masters = sorted(Path(masters_dir).glob("*.ipynb"))
    if not masters:
        raise FileNotFoundError(f"no master notebooks in {masters_dir}")
    return [generate_student(m, Path(out_dir) / m.name) for m in masters]
