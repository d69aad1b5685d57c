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
"""

from __future__ import annotations

import contextlib
import copy
import csv
import inspect
import json
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4.rwbase import split_lines

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "book" / "assignments"
MASTERS = ASSIGNMENTS / "master"

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = 'raise NotImplementedError("Student exercise: {grade_id}")'


# --- reading the nbgrader metadata -----------------------------------------------------------
def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(_meta(cell).get("solution"))


def is_test(cell) -> bool:
    return bool(_meta(cell).get("grade")) and not is_solution(cell)


def grade_id(cell) -> str | None:
    return _meta(cell).get("grade_id")


def test_points(nb) -> dict[str, float]:
    """{grade_id: points} of the test cells of a notebook, in notebook order."""
    return {grade_id(c): float(_meta(c).get("points", 0)) for c in nb.cells if is_test(c)}


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
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(_dumps(student_notebook(master)), encoding="utf8")
    return out_path


def generate_all(masters_dir=MASTERS, out_dir=ASSIGNMENTS) -> list[Path]:
    """Student versions of every master: ``masters_dir/NN_x.ipynb`` -> ``out_dir/NN_x.ipynb``."""
    masters = sorted(Path(masters_dir).glob("*.ipynb"))
    if not masters:
        raise FileNotFoundError(f"no master notebooks in {masters_dir}")
    return [generate_student(m, Path(out_dir) / m.name) for m in masters]


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
    locked = {grade_id(c): c for c in master.cells if _meta(c).get("locked") and grade_id(c)}
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
            max_points = float(_meta(cell).get("points", 0))
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
        with open(csv_path, "w", newline="", encoding="utf8") as f:
            fields = ["student", "assignment", *columns, "total", "max", "feedback"]
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)
    return rows


# --- self-checks inside the notebooks --------------------------------------------------------
_RESULTS: dict[str, tuple[float, float, str]] = {}  # grade_id -> (points, max, message)


def check(grade_id: str, points: float, fn) -> None:
    """Run the test function ``fn`` of one exercise; record and print the outcome.

    Re-running a cell replaces its earlier outcome. A failure is re-raised, so that the cell
    shows an error (that is how the grader sees it too).
    """
    try:
        fn()
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if isinstance(e, NotImplementedError):
            first = "not answered yet (the function still raises NotImplementedError)"
        _RESULTS[grade_id] = (0.0, float(points), first)
        print(f"[FAIL] {grade_id}: 0/{points:g} points. {first}")
        raise
    _RESULTS[grade_id] = (float(points), float(points), "")
    print(f"[PASS] {grade_id}: {points:g}/{points:g} points (visible tests)")


def score() -> float:
    """Print the outcome of every check run in this kernel and the total; return the total."""
    if not _RESULTS:
        print("No checks have run yet: run the test cell below each exercise.")
        return 0.0
    width = max(len(k) for k in _RESULTS)
    for gid, (got, maximum, message) in _RESULTS.items():
        print(f"{gid:<{width}}  {got:g}/{maximum:g}  {message}")
    total = sum(r[0] for r in _RESULTS.values())
    maximum = sum(r[1] for r in _RESULTS.values())
    print(f"{'total':<{width}}  {total:g}/{maximum:g}  (visible tests; grading adds hidden ones)")
    return total


def reset() -> None:
    """Forget the recorded checks (a fresh start in the same kernel)."""
    _RESULTS.clear()


def _close(a, b, rtol: float, atol: float) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def assert_close(
    got, want, name: str, *, n: int | None = None, hint: str = "", rtol=1e-6, atol=1e-9
):
    """Assert ``got`` equals ``want``; if not, say how it differs in one line.

    Recognises the usual slips: a wrong shape, a transpose, a flipped sign, a missing or extra
    factor sqrt(n) (pass the fan-in ``n``), a variance where a standard deviation was asked for
    and the reverse. ``hint`` is appended to the message when none of those fits.
    """
    import torch  # here, so that generating and grading notebooks does not import torch

    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{name} must be a torch.Tensor, got {type(got).__name__}")
    want = want.to(got.dtype) if got.is_floating_point() else want
    if got.shape != want.shape:
        extra = " (transposed?)" if got.ndim == 2 and got.T.shape == want.shape else ""
        raise AssertionError(
            f"{name} has shape {tuple(got.shape)}, expected {tuple(want.shape)}{extra}"
        )
    if got.is_floating_point() and not bool(torch.isfinite(got).all()):
        raise AssertionError(f"{name} contains NaN or inf")
    if _close(got, want, rtol, atol):
        return
    if not got.is_floating_point():
        wrong = int((got != want).sum())
        raise AssertionError(f"{name} is wrong in {wrong} of {got.numel()} entries. {hint}".strip())
    slips = [
        (-want, "has the wrong sign (it equals minus the expected value)"),
        (
            want.abs().sqrt() * want.sign(),
            "looks like a standard deviation where a variance is expected: square it",
        ),
        (
            want**2,
            "looks like a variance where a standard deviation is expected: take the square root",
        ),
    ]
    if n is not None:
        r = math.sqrt(n)
        slips += [
            (
                want * r,
                f"is too large by a factor sqrt(N) = {r:.3g}: did you scale by 1/sqrt(N_in)?",
            ),
            (want / r, f"is too small by a factor sqrt(N) = {r:.3g}: 1/N instead of 1/sqrt(N)?"),
        ]
    for alternative, message in slips:
        if _close(got, alternative, rtol, atol):
            raise AssertionError(f"{name} {message}")
    err = (got - want).abs()
    idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
    raise AssertionError(
        f"{name} is wrong: largest error {float(err.max()):.3g} at index {idx} (got "
        f"{float(got[idx]):.6g}, expected {float(want[idx]):.6g}). {hint}".strip()
    )


_PACKAGE = re.compile(r"mfbook(\.|$)")
_PACKAGE_NAME = re.compile(r"mfbook(\.\w+)*")  # a string that names a module of the package


def _package_module(obj) -> str:
    """The mfbook module that ``obj`` (a module, routine or class) comes from, else ``""``.

    The model classes of ``mfbook.nn`` count as not from the package: they are allowed.
    """
    if inspect.ismodule(obj):
        module = obj.__name__
    elif inspect.isroutine(obj) or inspect.isclass(obj):
        module = getattr(obj, "__module__", None) or ""
    else:
        return ""
    if not _PACKAGE.match(module) or (inspect.isclass(obj) and module == "mfbook.nn"):
        return ""
    return module


def _code_objects(code):
    """``code`` and the code objects nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _code_objects(const)


def _bound_values(f) -> list[tuple[str, object]]:
    """(name, value) of what ``f`` uses besides its code: default arguments and closure cells."""
    code, defaults = f.__code__, f.__defaults__ or ()
    args = code.co_varnames[code.co_argcount - len(defaults) : code.co_argcount]
    values = [(f"the default of {a}", v) for a, v in zip(args, defaults, strict=True)]
    values += [(f"the default of {a}", v) for a, v in (f.__kwdefaults__ or {}).items()]
    for name, cell in zip(code.co_freevars, f.__closure__ or (), strict=True):
        with contextlib.suppress(ValueError):  # a cell not filled yet
            values.append((name, cell.cell_contents))
    return values


def assert_own_code(fn) -> None:
    """Fail if ``fn`` calls mfbook: the exercise is to write it, not to import it.

    Looks at what the function's code uses: the global names (of the function and of the
    functions and lambdas nested in it), the modules it imports inside its body, its default
    arguments and closure, and, the same way, the functions of the student's own module it calls
    (a helper that wraps a function of the package fails too). The model classes of ``mfbook.nn``
    (for ``isinstance`` checks and copies) are allowed.
    """
    todo, seen = [(fn, [])], set()
    while todo:
        f, path = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        through = f" (through {' -> '.join(path)})" if path else ""
        used = []  # (name, value) of the globals, defaults and closure cells f uses
        for code in _code_objects(f.__code__):
            for name in code.co_names:
                if _PACKAGE.match(name):  # import mfbook.x / from mfbook.x import y, in the body
                    raise AssertionError(
                        f"{fn.__name__} imports {name}{through}: write it yourself"
                    )
                if name in f.__globals__:
                    used.append((name, f.__globals__[name]))
            for const in code.co_consts:  # __import__("mfbook.x"), importlib.import_module(...)
                if isinstance(const, str) and _PACKAGE_NAME.fullmatch(const):
                    raise AssertionError(
                        f"{fn.__name__} names the module {const!r}{through}: write it yourself"
                    )
        for name, obj in used + _bound_values(f):
            module = _package_module(obj)
            if module:
                raise AssertionError(
                    f"{fn.__name__} uses {name} from {module}{through}: write it yourself"
                )
            own = inspect.isfunction(obj) and (
                obj.__globals__ is f.__globals__ or obj.__module__ == fn.__module__
            )
            if own and obj not in seen:  # a helper of the student's: look inside it too
                todo.append((obj, [*path, obj.__name__]))
