"""Grading one submission: the master's tests in place of the student's, run in a kernel.

:func:`grading_notebook` builds the notebook that is run (the master's test cells and read-only
cells put in place of the student's) and :func:`grade` runs it and scores every test cell.
``mfbook.assignments`` re-exports both and grades whole folders with them.

A submission is untrusted code. :func:`grade` therefore runs a copy of it alone in a fresh
temporary folder (the kernel's working directory; its parent holds nothing else), so a cell that
deletes or edits the files around it reaches neither the submission nor another student's files,
and it bounds the time of every cell and of the whole notebook.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_output

from mfbook._student_version import grade_id, is_test, meta
from mfbook.io import atomic_write


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
    # Why the notebook as a whole was not graded to the end: it could not be read, its kernel
    # died, it ran out of time, ...; "" when it ran to the end (whatever its cells did).
    error: str = ""

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


def exception_line(e: BaseException, limit: int = 300) -> str:
    """``Name: first line of the message``, at most ``limit`` characters."""
    line = _error_line({"ename": type(e).__name__, "evalue": str(e)})
    return line if len(line) <= limit else line[: limit - 3] + "..."


def grading_notebook(student, master) -> nbformat.NotebookNode:
    """The student's notebook with every test cell replaced by the master's (matched by grade_id).

    Read-only cells of the master (nbgrader ``locked``, such as the set-up) are restored too: in
    place where the submission has them, and, where it lacks one (deleted, or its metadata
    changed), put back where the master has it relative to the nearest graded cells (before the
    first exercise, for the set-up).

    Test cells of the master that the submission lacks are appended at the end (after every
    answer), so removing or editing a test cannot help.
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
    order = {grade_id(c): j for j, c in enumerate(master.cells) if grade_id(c)}
    for j, cell in enumerate(master.cells):  # read-only cells the submission lacks
        gid = grade_id(cell)
        if gid not in locked or gid in used or gid in tests:
            continue
        # as far after the nearest earlier graded cell as in the master, and before the next one
        where = [(i, order[g]) for i, c in enumerate(nb.cells) if (g := grade_id(c)) in order]
        pi, pj = max(((i, k) for i, k in where if k < j), default=(-1, -1))
        after = [i for i, k in where if k > j and i > pi]
        at = min(pi + j - pj, *after, len(nb.cells))
        nb.cells.insert(at, copy.deepcopy(cell))
        used.add(gid)
    nb.cells += [copy.deepcopy(c) for gid, c in tests.items() if gid not in used]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _execute(nb, cwd: Path, timeout: int, notebook_timeout: float):
    """Run ``nb`` in place in a fresh kernel; return ({cell index: reply}, stopped, error)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    replies: dict[int, dict] = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply["content"]

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        shutdown_kernel="immediate",  # a kernel still busy at the end is killed, not awaited
        on_cell_executed=on_cell_executed,
        resources={"metadata": {"path": str(cwd)}},
    )
    budget = f"the notebook ran longer than {notebook_timeout:g} s"
    stopped = error = ""
    try:
        with client.setup_kernel():
            deadline = time.monotonic() + notebook_timeout  # from the kernel's start
            for i, cell in enumerate(nb.cells):
                left = math.ceil(deadline - time.monotonic())
                if left < 1:  # the budget is spent: the rest is not run
                    stopped, error = f"not run: {budget}", f"timed out: {budget}"
                    break
                # A cell gets its own timeout, or what is left of the notebook's if that is less.
                # A cell that ignores the interrupt keeps the kernel busy and the cells after it
                # time out in turn, until the notebook's budget is spent.
                client.timeout = min(timeout, left)
                why = budget if left < timeout else f"the cell ran longer than {timeout} s"
                client.error_on_timeout = {"ename": "Timeout", "evalue": why}
                client.execute_cell(cell, i, execution_count=client.code_cells_executed + 1)
                if replies.get(i, {}).get("ename") == "Timeout":  # shown in a kept notebook
                    cell.outputs.append(new_output("error", ename="Timeout", evalue=why))
                    error = f"timed out: {budget}" if left < timeout else error
    except DeadKernelError as e:  # the kernel died: the cells not run yet score 0
        reason = f"the kernel died ({str(e).strip().splitlines()[0]})"
        stopped, error = f"not run: {reason}", reason
    return replies, stopped, error


def grade(
    notebook, master, timeout: int = 120, notebook_timeout: float = 600, keep=None, name=None
) -> Result:
    """Run a submission with the master's tests and score every test cell of the master.

    ``notebook`` is the submission's path, or the bytes of its file (``name`` is then its path,
    for the messages). ``master`` is the master notebook's path or the notebook itself (read with
    nbformat; it is not changed, so one master can grade many submissions, at the same time too).

    A copy of the submission is put alone in a new temporary folder, which is the working
    directory of a fresh kernel; the submission itself is only read. Cells run one after another;
    a cell that fails does not stop the next ones. A test cell scores its points when it runs
    without error, 0 otherwise, with the first line of the error as the message. A cell runs
    ``timeout`` seconds at most, the whole notebook ``notebook_timeout``: then it stops, the
    cells not run score 0, and ``Result.error`` says it timed out. ``keep``: a path where the
    executed notebook is written (with the master's hidden tests: for the instructor only).

    Raises what reading the notebook raises (not a file, not JSON, not a notebook, ...).
    """
    if isinstance(master, str | os.PathLike):
        master = nbformat.read(master, as_version=4)
    if isinstance(notebook, bytes | bytearray):
        data, name = bytes(notebook), str(name or "submission.ipynb")
    else:
        data, name = Path(notebook).read_bytes(), str(name or notebook)
    nb = grading_notebook(nbformat.reads(data.decode("utf-8"), as_version=4), master)
    with tempfile.TemporaryDirectory(prefix="mfbook-grade-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp) / "work"  # the kernel's cwd; its parent holds nothing but this folder
        work.mkdir()
        # The student's file, not the notebook that runs: the hidden tests stay out of reach.
        (work / (Path(name).name or "submission.ipynb")).write_bytes(data)
        replies, stopped, error = _execute(nb, work, timeout, notebook_timeout)
    result = Result(name, error=error)
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
    if keep is not None:
        try:
            atomic_write(keep, nbformat.writes(nb))
        except (OSError, ValueError) as e:
            kept = f"the executed notebook was not kept: {exception_line(e)}"
            result.error = f"{result.error}; {kept}" if result.error else kept
    return result
