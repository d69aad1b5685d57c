"""The grader under hostile and broken submissions (mfbook.assignments.grade_folder, the CLI).

One module fixture grades a folder of tiny submissions of a tiny master once:
a good one, one whose cell deletes the files around it, one that is not JSON, one that is JSON
but not a notebook, and one that loops on, catching the interrupts of the cell timeout.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import nbformat
import pytest

from mfbook import assignments as A
from mfbook.cli import _parser, main

CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 3, 4

# A cell that deletes (and, where it cannot, overwrites) every file in its working directory,
# in its parent and in the parent's subfolders: with the grading run in the submission's folder,
# that is the student's own notebook and every other student's files.
HOSTILE = """
import glob, os
for path in glob.glob("*") + glob.glob("../*") + glob.glob("../*/*"):
    if os.path.isfile(path):
        try:
            os.remove(path)
        except OSError:
            open(path, "w").write("{}")
"""
# Catches the KeyboardInterrupt that the cell timeout sends, so every cell after it would wait
# for it in turn.
SPIN = """
import time
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""


def _cell(source, **nbgrader):
    c = nbformat.v4.new_code_cell(source)
    if nbgrader:
        c.metadata["nbgrader"] = {"schema_version": 3, **nbgrader}
    return c


def tiny_master():
    cells = [_cell("base = 40", grade_id="setup", locked=True, grade=False, solution=False)]
    for gid, value in (("a", 41), ("b", 42), ("c", 43)):
        cells.append(
            _cell(
                f"def {gid}():\n    {A.BEGIN_SOLUTION}\n    return {value}\n    {A.END_SOLUTION}",
                grade_id=gid,
                solution=True,
                grade=False,
                locked=False,
            )
        )
        hidden = f"{A.BEGIN_HIDDEN}\nassert {gid}() - base == {value - 40}\n{A.END_HIDDEN}"
        cells.append(
            _cell(
                f"assert {gid}() == {value}\n{hidden}",
                grade_id=f"t-{gid}",
                grade=True,
                points=1,
                locked=True,
                solution=False,
            )
        )
    cells.append(_cell("print('done')"))
    return nbformat.v4.new_notebook(cells=cells)


def answered(master, replace=None):
    """The master's answers without the markers; ``replace``: {cell index: new source}."""
    nb = A.student_notebook(master)
    for i, (mine, theirs) in enumerate(zip(nb.cells, master.cells, strict=True)):
        if A.is_solution(theirs):
            lines = theirs.source.splitlines()
            mine.source = "\n".join(s for s in lines if A.BEGIN_SOLUTION not in s)
            mine.source = mine.source.replace(f"    {A.END_SOLUTION}", "").rstrip()
        if replace and i in replace:
            mine.source = replace[i]
    return nb


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    masters, subs, kept = root / "masters", root / "subs", root / "kept"
    master = tiny_master()
    masters.mkdir()
    nbformat.write(master, masters / "01_tiny.ipynb")
    good = nbformat.writes(answered(master))
    files = {
        "abe": nbformat.writes(answered(master, {1: f"def a():\n    return 41\n{HOSTILE}"})),
        "amy": good,
        "ben": "{ this is not JSON",
        "cal": "[1, 2, 3]",
        "dan": nbformat.writes(answered(master, {3: SPIN})),  # answers a, then spins
    }
    for student, text in files.items():
        (subs / student).mkdir(parents=True)
        (subs / student / "01_tiny.ipynb").write_text(text, encoding="utf8")
    (subs / "amy" / "notes.txt").write_text("amy's notes\n")
    before = {p: p.read_bytes() for p in subs.rglob("*") if p.is_file()}
    timing = {}
    real_grade = A.grade

    def timed_grade(notebook, master, **kw):
        start = time.monotonic()
        try:
            return real_grade(notebook, master, **kw)
        finally:
            timing[Path(kw["name"]).parent.name] = time.monotonic() - start

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(A, "grade", timed_grade)
        A.grade_folder(
            subs,
            masters,
            csv_path=root / "grades.csv",
            timeout=CELL_TIMEOUT,
            notebook_timeout=NOTEBOOK_TIMEOUT,
            keep_executed=kept,
        )
    with open(root / "grades.csv", newline="", encoding="utf8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return {"rows": rows, "before": before, "subs": subs, "kept": kept, "timing": timing}


def test_broken_notebooks_score_zero_and_the_rest_is_graded(hostile):
    rows = hostile["rows"]
    assert sorted(rows) == ["abe", "amy", "ben", "cal", "dan"], "the CSV has every student"
    assert rows["amy"]["total"] == "3.0" and rows["amy"]["error"] == ""
    for student in ("ben", "cal"):
        row = rows[student]
        assert row["total"] == "0.0" and row["max"] == "3.0", row
        path = str(hostile["subs"] / student / "01_tiny.ipynb")
        assert row["error"].startswith(f"{path}: "), row["error"]
        assert row["feedback"].startswith("not graded: ")
    assert "JSON" in rows["ben"]["error"]


def test_the_cli_exits_with_1_when_a_notebook_had_an_error(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_grade_folder(submissions, **kw):
        calls.append(kw)
        row = {"student": "ben", "assignment": "01_tiny", "total": 0.0, "max": 3.0}
        return [row | {"error": "" if len(calls) == 1 else "subs/ben/01_tiny.ipynb: NotJSON"}]

    monkeypatch.setattr(A, "grade_folder", fake_grade_folder)
    args = ["assign", "grade", "subs", "--out", str(tmp_path / "g.csv")]
    assert main(args) == 0
    assert main([*args, "--notebook-timeout", "9", "--keep-executed", "kept"]) == 1
    assert "error: subs/ben/01_tiny.ipynb: NotJSON" in capsys.readouterr().err
    assert calls[1]["notebook_timeout"] == 9 and calls[1]["keep_executed"] == "kept"
    assert calls[0]["notebook_timeout"] == 600 and calls[0]["keep_executed"] is None


def test_a_hostile_cell_cannot_touch_the_submissions(hostile):
    now = {p: p.read_bytes() for p in hostile["subs"].rglob("*") if p.is_file()}
    assert now == hostile["before"], "a submission was deleted or changed"
    # the hostile notebook itself is graded like any other: its answers are right
    assert hostile["rows"]["abe"]["total"] == "3.0" and hostile["rows"]["abe"]["error"] == ""


def test_the_notebook_timeout_stops_a_loop_that_ignores_interrupts(hostile):
    row = hostile["rows"]["dan"]
    assert (row["t-a"], row["t-b"], row["t-c"], row["total"]) == ("1.0", "0.0", "0.0", "1.0")
    assert row["error"].endswith(f": timed out: the notebook ran longer than {NOTEBOOK_TIMEOUT} s")
    assert "t-c: not run: the notebook ran longer than" in row["feedback"]
    # five cells run after the loop starts: each waiting its own cell timeout would take 15 s
    assert hostile["timing"]["dan"] < NOTEBOOK_TIMEOUT + 7, hostile["timing"]


def test_keep_executed_keeps_each_executed_notebook(hostile):
    kept = hostile["kept"]
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*.ipynb")) == [
        f"{s}/01_tiny.ipynb" for s in ("abe", "amy", "dan")
    ]
    nb = nbformat.read(kept / "amy" / "01_tiny.ipynb", as_version=4)
    assert nb.cells[-1].outputs[0]["text"] == "done\n", "the outputs of the run are kept"
    assert any(A.BEGIN_HIDDEN in c.source for c in nb.cells), "with the hidden tests it ran"
    spun = nbformat.read(kept / "dan" / "01_tiny.ipynb", as_version=4)
    assert spun.cells[3].outputs[0]["ename"] == "Timeout"


def test_cli_parses_the_new_grade_options():
    args = _parser().parse_args(["assign", "grade", "s", "--notebook-timeout", "30"])
    assert (args.notebook_timeout, args.keep_executed) == (30.0, None)
    assert _parser().parse_args(["assign", "grade", "s"]).notebook_timeout == 600
