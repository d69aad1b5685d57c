"""The nbgrader route: nbgrader 0.9.6 (the ``nbgrader`` extra) runs the masters unmodified.

One course folder, laid out by ``mfbook._nbgrader_course`` for two of the assignments, goes
through nbgrader's command line: ``generate_assignment`` (the release, i.e. nbgrader's student
version), ``autograde`` of three students (alice submits the masters, bob the book's student
versions, carol nbgrader's release, both unanswered) and ``export``. Everything runs in a
temporary folder, with a temporary gradebook and no user configuration.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mfbook import assignments as A
from mfbook._nbgrader_course import nbgrader_course
from mfbook.cli import main

pytest.importorskip("nbgrader")

NAMES = ["01_spike_slab", "03_gbp"]  # each notebook takes a few seconds to autograde
BIN = Path(sys.executable).parent


def _points(name):
    return A.test_points(nbformat.read(A.MASTERS / f"{name}.ipynb", as_version=4))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nbgrader")
    folder = tmp / "course"
    nbgrader_course(folder, assignments=NAMES)
    db_url = f"sqlite:///{tmp / 'gradebook.db'}"
    # nbgrader calls `alembic` by name: the environment's bin first on PATH. No user's jupyter
    # or IPython configuration (nor kernel) may change the run.
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        env[var] = str(tmp / var.lower())

    def nbgrader(*args):
        done = subprocess.run(
            [str(BIN / "nbgrader"), *args, f"--CourseDirectory.db_url={db_url}"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    nbgrader("generate_assignment", "*")
    for name in NAMES:
        versions = {
            "alice": A.MASTERS / f"{name}.ipynb",
            "bob": A.ASSIGNMENTS / f"{name}.ipynb",
            "carol": folder / "release" / name / f"{name}.ipynb",
        }
        for student, path in versions.items():
            dest = folder / "submitted" / student / name / f"{name}.ipynb"
            dest.parent.mkdir(parents=True)
            dest.write_bytes(path.read_bytes())
    log = nbgrader("autograde", "*").stderr
    nbgrader("export", "--to", str(tmp / "grades.csv"))
    with open(tmp / "grades.csv", newline="", encoding="utf8") as f:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}
    return {"folder": folder, "db_url": db_url, "rows": rows, "log": log}


def test_the_course_folder_holds_the_masters_unmodified(course):
    folder = course["folder"]
    for name in NAMES:
        copy = folder / "source" / name / f"{name}.ipynb"
        assert copy.read_bytes() == (A.MASTERS / f"{name}.ipynb").read_bytes()
    assert sorted(p.name for p in (folder / "source").iterdir()) == NAMES
    assert "c.CourseDirectory.course_id" in (folder / "nbgrader_config.py").read_text()


def test_nbgraders_release_holds_no_solution_or_hidden_test(course):
    for name in NAMES:
        text = (course["folder"] / "release" / name / f"{name}.ipynb").read_text("utf8")
        for marker in (A.BEGIN_SOLUTION, A.END_SOLUTION, A.BEGIN_HIDDEN, A.END_HIDDEN):
            assert marker not in text, (name, marker)


@pytest.mark.parametrize("name", NAMES)
def test_masters_get_full_marks_and_unanswered_versions_zero(course, name):
    maximum = sum(_points(name).values())
    rows = course["rows"]
    assert float(rows["alice", name]["score"]) == float(rows["alice", name]["max_score"]) == maximum
    for student in ("bob", "carol"):
        assert float(rows[student, name]["score"]) == 0.0
        assert float(rows[student, name]["max_score"]) == maximum


@pytest.mark.parametrize("name", NAMES)
def test_every_autograded_test_cell_scores_as_the_built_in_grader_would(course, name):
    from nbgrader.api import Gradebook

    with Gradebook(course["db_url"]) as gb:
        for student, full in (("alice", True), ("bob", False), ("carol", False)):
            nb = gb.find_submission_notebook(name, name, student)
            got = {g.name: g.auto_score for g in nb.grades if g.max_score}
            want = {gid: points if full else 0.0 for gid, points in _points(name).items()}
            assert got == want, (student, got)


def test_cli_lays_out_the_course_and_keeps_an_edited_config(tmp_path, capsys):
    folder = tmp_path / "c"
    assert main(["assign", "nbgrader-course", str(folder)]) == 0
    names = sorted(p.stem for p in A.MASTERS.glob("*.ipynb"))
    assert sorted(p.name for p in (folder / "source").iterdir()) == names
    assert capsys.readouterr().out.splitlines()[-1].endswith("nbgrader_config.py")
    (folder / "nbgrader_config.py").write_text("# mine\n")
    (folder / "source" / names[0] / f"{names[0]}.ipynb").write_text("stale")
    assert main(["assign", "nbgrader-course", str(folder)]) == 0
    assert (folder / "nbgrader_config.py").read_text() == "# mine\n"
    master = (A.MASTERS / f"{names[0]}.ipynb").read_bytes()
    assert (folder / "source" / names[0] / f"{names[0]}.ipynb").read_bytes() == master
    assert "nbgrader_config.py" not in capsys.readouterr().out
