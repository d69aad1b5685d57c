"""Course assignments: student versions, self-checks and autograding (for instructors).

The master notebooks in ``book/assignments/master/`` use nbgrader's syntax: a solution cell has
cell metadata ``{"nbgrader": {"solution": true, "grade_id": ...}}`` and its answer between
``### BEGIN SOLUTION`` and ``### END SOLUTION``; a test cell has ``{"nbgrader": {"grade": true,
"grade_id": ..., "points": N}}`` and may hold lines between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. This module is the small part of nbgrader the book needs:

* :func:`generate_student` writes the student version of a master: every answer is replaced by
  ``raise NotImplementedError("Student exercise: <grade_id>")``, hidden tests are removed, outputs
  are cleared, and the JSON is deterministic (the same master gives the same bytes);
* :func:`grade` runs a copy of a submitted notebook, alone in a temporary folder, with the
  master's test cells (visible and hidden) put in place of the student's, cell by cell, within a
  time limit per cell and per notebook; a test cell that runs without error scores its points;
* :func:`grade_folder` grades ``SUBMISSIONS/<student>/<assignment>.ipynb`` into a CSV table; a
  notebook that cannot be graded scores 0 with its error and does not stop the others;
* :func:`check`, :func:`score` and :func:`assert_close` are what the test cells call: they print
  what went wrong with a hint, and the last cell of a notebook prints the score so far.

The folder grader is here; one notebook is graded by ``mfbook._grader``, the student-version
generator is ``mfbook._student_version`` and the self-checks are ``mfbook._exercise_checks``, all
re-exported here. nbgrader itself can grade the masters too (``mfbook._nbgrader_course`` lays
out a course folder for it). Every file is written
atomically (``mfbook.io``).
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from mfbook._exercise_checks import assert_close, assert_own_code, check, reset, score
from mfbook._grader import Exercise, Result, exception_line, grade, grading_notebook
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
    student_notebook,
    test_points,
)
from mfbook._student_version import _replace_regions as _replace_regions
from mfbook._student_version import meta as meta
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


def grade_folder(
    submissions_dir,
    masters_dir=MASTERS,
    csv_path=None,
    timeout=120,
    jobs=1,
    notebook_timeout=600,
    keep_executed=None,
):
    """Grade ``submissions_dir/<student>/<assignment>.ipynb`` for every student and master.

    ``<assignment>`` is the master's file name (``01_spike_slab.ipynb``, ...). Writes a CSV with
    one row per student and assignment: student, assignment, one column per exercise (grade_id),
    total, max, feedback (the messages of the failed exercises) and error; a missing notebook
    scores 0. ``jobs`` notebooks run at a time, each as :func:`grade` runs it (a copy, alone in
    a temporary folder; ``timeout`` seconds a cell, ``notebook_timeout`` the notebook).

    A notebook that cannot be graded (not JSON, not a notebook, ...) scores 0 and does not stop
    the others; its ``error`` is ``<path>: <what went wrong>``, as is a notebook's that ran out of
    time or whose kernel died (those keep the points of the tests that passed before). Every
    submission is read before any runs, so no notebook can change another's. ``keep_executed``:
    a folder where each executed notebook is kept, as ``<student>/<assignment>.ipynb`` (they
    hold the hidden tests). Returns the rows as dicts.
    """
    paths = sorted(Path(masters_dir).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no master notebooks in {masters_dir}")
    masters = {p.stem: nbformat.read(p, as_version=4) for p in paths}  # read once, used by all
    expected = {name: test_points(master) for name, master in masters.items()}
    students = sorted(p for p in Path(submissions_dir).iterdir() if p.is_dir())
    pairs = [(s, name) for s in students for name in masters]
    todo = [(s, name) for s, name in pairs if (s / f"{name}.ipynb").is_file()]
    sources: dict[tuple, bytes | OSError] = {}
    for student, name in todo:  # all read first: a notebook that runs cannot touch the others'
        try:
            sources[student, name] = (student / f"{name}.ipynb").read_bytes()
        except OSError as e:
            sources[student, name] = e

    def run(pair):
        student, name = pair
        path = student / f"{name}.ipynb"
        keep = None if keep_executed is None else Path(keep_executed) / student.name / path.name
        try:
            data = sources[pair]
            if isinstance(data, OSError):
                raise data
            return grade(
                data,
                masters[name],
                timeout=timeout,
                notebook_timeout=notebook_timeout,
                keep=keep,
                name=str(path),
            )
        except Exception as e:  # this notebook scores 0; the others are graded
            return Result(str(path), error=exception_line(e))

    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each notebook runs in its own kernel
        done = dict(zip(todo, pool.map(run, todo), strict=True))
    columns = [gid for points in expected.values() for gid in points]
    rows = []
    for student, name in pairs:
        res = done.get((student, name))
        row = {"student": student.name, "assignment": name}
        points, feedback, error = dict.fromkeys(expected[name], 0.0), "not submitted", ""
        if res is not None and res.exercises:
            points = res.points()
            feedback = "; ".join(f"{k}: {v}" for k, v in res.messages().items())
        elif res is not None:  # not graded at all
            feedback = f"not graded: {res.error}"
        if res is not None and res.error:
            error = f"{res.notebook}: {res.error}"
        row.update({gid: points.get(gid, "") for gid in columns})
        total, maximum = sum(points.values()), sum(expected[name].values())
        row.update({"total": total, "max": maximum, "feedback": feedback, "error": error})
        rows.append(row)
    if csv_path is not None:
        table = io.StringIO(newline="")
        fields = ["student", "assignment", *columns, "total", "max", "feedback", "error"]
        writer = csv.DictWriter(table, fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(csv_path, table.getvalue())
    return rows
