"""Course assignments: student versions, self-checks and autograding (for instructors).

The master notebooks in ``book/assignments/master/`` use nbgrader's syntax: a solution cell has
cell metadata ``{"nbgrader": {"solution": true, "grade_id": ...}}`` and its answer between
``### BEGIN SOLUTION`` and ``### END SOLUTION``; a test cell has ``{"nbgrader": {"grade": true,
"grade_id": ..., "points": N}}`` and may hold lines between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. This module is the small part of nbgrader the book needs:

* :func:`generate_student` writes the student version of a master: every answer is replaced by
  ``raise NotImplementedError("Student exercise: <grade_id>")``, hidden tests are removed, outputs
  are cleared, and the JSON is deterministic (the same master gives the same bytes);
* :func:`grade` runs a submitted notebook with the master's test cells (visible and hidden) put
  in place of the student's, cell by cell; a test cell that runs without error scores its points;
* :func:`grade_folder` grades ``SUBMISSIONS/<student>/<assignment>.ipynb`` into a CSV table;
* :func:`check`, :func:`score` and :func:`assert_close` are what the test cells call: they print
  what went wrong with a hint, and the last cell of a notebook prints the score so far.

The grader is here; the student-version generator is ``mfbook._student_version`` and the
self-checks are ``mfbook._exercise_checks``, both re-exported here. Every file is written
atomically (``mfbook.io``).
"""

from __future__ import annotations

import copy
import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mfbook._exercise_checks import assert_close, assert_own_code, check, reset, score
from mfbook._student_version import (
    ASSIGNMENTS,
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    MASTERS,
    ROOT,
    STUB,
    generate_all,
    generate_student,
    grade_id,
    is_solution,
    is_test,
    meta,
    student_notebook,
    test_points,
)
from mfbook._student_version import _replace_regions as _replace_regions
from mfbook.io import atomic_write

__all__ = [
    "ASSIGNMENTS",
    "BEGIN_HIDDEN",
    "BEGIN_SOLUTION",
    "END_HIDDEN",
    "END_SOLUTION",
    "MASTERS",
    "ROOT",
    "STUB",
    "Exercise",
    "Result",
    "assert_close",
    "assert_own_code",
    "check",
    "generate_all",
    "generate_student",
    "grade",
    "grade_folder",
    "grade_id",
    "grading_notebook",
    "is_solution",
    "is_test",
    "reset",
    "score",
    "student_notebook",
    "test_points",
]


# --- grading ---------------------------------------------------------------------------------
@dataclass
class Exercise:
    grade_id: str
    points: float
    max_points: float
    message: str = ""  # why points were lost: the first line of the error, else ""


@dataclass
class Result:
    notebook: str
    exercises: list[Exercise] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (cell index, message), any cell

    @property
    def total(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_total(self) -> float:
        return sum(e.max_points for e in self.exercises)

    def points(self) -> dict[str, float]:
        return {e.grade_id: e.points for e in self.exercises}

    def messages(self) -> dict[str, str]:
        return {e.grade_id: e.message for e in self.exercises if e.message}


def _error_line(content: dict) -> str:
    lines = str(content.get("evalue", "")).strip().splitlines()
    first = lines[0] if lines else ""
    name = content.get("ename", "Error")
    return first if name == "AssertionError" and first else f"{name}: {first}".rstrip(": ")


def grading_notebook(student, master) -> nbformat.NotebookNode:
    """The student's notebook with every test cell replaced by the master's (matched by grade_id).

    Read-only cells of the master (nbgrader ``locked``, such as the set-up) are restored too.

    Test cells of the master that the submission lacks (deleted, or their metadata changed) are
    appended at the end, so removing or editing a test cannot help.
    """
    tests = {grade_id(c): c for c in master.cells if is_test(c)}
    locked = {grade_id(c): c for c in master.cells if meta(c).get("locked") and grade_id(c)}
    nb = copy.deepcopy(student)
    used = set()
    for i, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        if gid in locked and gid not in used:  # test cells and read-only cells (the set-up)
            nb.cells[i] = copy.deepcopy(locked[gid])
            used.add(gid)
        elif is_test(cell):  # a test cell the master does not know, or a duplicate: not graded
            cell.metadata["nbgrader"]["grade"] = False
    nb.cells += [copy.deepcopy(c) for gid, c in tests.items() if gid not in used]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def grade(notebook_path, master, timeout: int = 120) -> Result:
    """Run a submission with the master's tests and score every test cell of the master.

    ``master`` is the master notebook's path or the notebook itself (read with nbformat; it is
    not changed, so one master can grade many submissions, at the same time too).

    Cells run one after another in a fresh kernel whose working directory is the submission's
    folder; a cell that fails does not stop the next ones. A test cell scores its points when it
    runs without error (``timeout`` seconds at most), 0 otherwise, with the first line of the
    error as the message.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    if isinstance(master, str | os.PathLike):
        master = nbformat.read(master, as_version=4)
    notebook_path = Path(notebook_path)
    nb = grading_notebook(nbformat.read(notebook_path, as_version=4), master)
    replies: dict[int, dict] = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply["content"]

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "Timeout", "evalue": f"the cell ran longer than {timeout} s"},
        on_cell_executed=on_cell_executed,
        resources={"metadata": {"path": str(notebook_path.resolve().parent)}},
    )
    stopped = ""
    try:
        client.execute()
    except DeadKernelError as e:  # the kernel died: the cells not run yet score 0
        stopped = f"not run: the kernel died ({str(e).strip().splitlines()[0]})"
    result = Result(str(notebook_path))
    for i, cell in enumerate(nb.cells):
        content = replies.get(i)
        message = "" if content else stopped or "not run"
        if content and content.get("status") != "ok":
            message = _error_line(content)
        if cell.cell_type == "code" and message:
            result.errors.append((i, message))
        if is_test(cell):
            max_points = float(meta(cell).get("points", 0))
            points = 0.0 if message else max_points
            result.exercises.append(Exercise(grade_id(cell), points, max_points, message))
    return result


def grade_folder(submissions_dir, masters_dir=MASTERS, csv_path=None, timeout=120, jobs=1):
    """Grade ``submissions_dir/<student>/<assignment>.ipynb`` for every student and master.

    ``<assignment>`` is the master's file name (``01_spike_slab.ipynb``, ...). Writes a CSV with
    one row per student and assignment: student, assignment, one column per exercise (grade_id),
    total, max, feedback (the messages of the failed exercises); a missing notebook scores 0.
    ``jobs`` notebooks run at a time. Returns the rows as dicts.
    """
    paths = sorted(Path(masters_dir).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no master notebooks in {masters_dir}")
    masters = {p.stem: nbformat.read(p, as_version=4) for p in paths}  # read once, used by all
    expected = {name: test_points(master) for name, master in masters.items()}
    students = sorted(p for p in Path(submissions_dir).iterdir() if p.is_dir())
    pairs = [(s, name) for s in students for name in masters]
    todo = [(s, name) for s, name in pairs if (s / f"{name}.ipynb").is_file()]

    def run(pair):
        student, name = pair
        return grade(student / f"{name}.ipynb", masters[name], timeout=timeout)

    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each notebook runs in its own kernel
        done = dict(zip(todo, pool.map(run, todo), strict=True))
    columns = [gid for points in expected.values() for gid in points]
    rows = []
    for student, name in pairs:
        res = done.get((student, name))
        row = {"student": student.name, "assignment": name}
        if res is None:
            points, feedback = dict.fromkeys(expected[name], 0.0), "not submitted"
        else:
            points = res.points()
            feedback = "; ".join(f"{k}: {v}" for k, v in res.messages().items())
        row.update({gid: points.get(gid, "") for gid in columns})
        total, maximum = sum(points.values()), sum(expected[name].values())
        row.update({"total": total, "max": maximum, "feedback": feedback})
        rows.append(row)
    if csv_path is not None:
        table = io.StringIO(newline="")
        fields = ["student", "assignment", *columns, "total", "max", "feedback"]
        writer = csv.DictWriter(table, fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(csv_path, table.getvalue())
    return rows
