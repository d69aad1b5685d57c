"""Course assignments: student versions, self-checks and grading (mfbook.assignments).

The slow part runs each notebook in a kernel once: one module fixture grades a folder of fake
submissions (the master, the student version and a wrong answer for every assignment) and the
tests below read its results.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import pytest
import torch

from mfbook import assignments as A
from mfbook.cli import _parser, main

MASTERS = sorted(A.MASTERS.glob("*.ipynb"))
NAMES = [p.stem for p in MASTERS]

# One deliberate mistake per assignment: {assignment: {solution grade_id: wrong code}}, the test
# cells it must fail, and a phrase its message must contain.
WRONG = {
    "01_spike_slab": {
        "code": {
            "ex1-sampling": """
shape = (n, *pi.shape)
absent = torch.rand(shape, generator=generator, dtype=pi.dtype) < pi
slab = m + xi * torch.randn(shape, generator=generator, dtype=pi.dtype)  # xi used as a std
return torch.where(absent, torch.zeros_like(slab), slab)
"""
        },
        "lost": {"test-ex1-sampling": "xi is a variance, not a standard deviation (chapter 1"},
    },
    "02_central_limit": {
        "code": {
            "ex2-moments": """
n = h.shape[1]
mu = (1 - pi) * m
var = (1 - pi) * (xi + pi * m**2)
return h @ mu.T / n**0.5, h**2 @ var.T / n  # the variance returned as Delta
""",
            "ex2-sampling": """
shape = (n_networks, *pi.shape)
absent = torch.rand(shape, generator=generator, dtype=pi.dtype) < pi
slab = m + xi.sqrt() * torch.randn(shape, generator=generator, dtype=pi.dtype)
w = torch.where(absent, torch.zeros_like(slab), slab)
return torch.einsum("nok,bk->nbo", w, h)  # no 1/sqrt(N)
""",
        },
        "lost": {
            "test-ex2-moments": "Delta looks like a variance where a standard deviation",
            "test-ex2-sampling": "check the scaling of chapter 2, eq. (2.1)",
        },
    },
    "03_gbp": {
        "code": {
            "ex3-layer": """
n = h.shape[1]
alive = Delta > 0
Q = torch.where(alive, K * eps / (2 * torch.where(alive, Delta, 1.0)), 0.0)
d_mu = K.T @ h / n**0.5
d_var = Q.T @ h**2 / n
d_m = (1 - pi) * d_mu + 2 * pi * (1 - pi) * m * d_var
d_xi = (1 - pi) * d_var
d_pi = m * d_mu + ((1 - 2 * pi) * m**2 - xi) * d_var  # sign error in the mean-path term
return d_pi, d_m, d_xi
"""
        },
        "lost": {
            "test-ex3-layer": "d_pi (eps = 0, mean path only) has the wrong sign",
            "test-ex3-network": "d_pi of layer",
        },
    },
    "04_credit_assignment": {
        "code": {
            "ex4-categories": """
vip = pi == 0  # forgets xi == 0
uip = pi == 1
return vip, uip, ~(vip | uip)
"""
        },
        "lost": {
            "test-ex4-categories": "a VIP needs pi = 0 AND xi = 0",
            "test-ex4-fractions": "the vip fraction is",
        },
    },
    "05_temporal": {
        "code": {
            "ex5-backward": """
pi, m, xi = rec
mu_rec, var_rec = (1 - pi) * m, (1 - pi) * (xi + pi * m**2)
r_prev = torch.relu(h_prev)
_, Delta, _ = recurrent_step(x_t, h_prev, inp, rec, eps_t, alpha)
k = a_t  # dC/dh_t taken for dC/du_t: the factor alpha is missing
alive = Delta > 0
Q = torch.where(alive, k * eps_t / (2 * torch.where(alive, Delta, 1.0)), 0.0)
return k.T @ r_prev, Q.T @ r_prev**2, k @ mu_rec + 2 * r_prev * (Q @ var_rec)
"""
        },
        "lost": {
            "test-ex5-backward": "too large by a factor 1/alpha = 5",
            "test-ex5-time": "a_t for t = 1..T (random sequence) is wrong",
        },
    },
}


def _solution_cells(nb):
    return [c for c in nb.cells if A.is_solution(c)]


def _region(source: str, begin: str, end: str) -> list[str]:
    """The lines strictly between begin and end markers, every region of a cell."""
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() in (begin, end):
            inside = line.strip() == begin
        elif inside:
            out.append(line)
    return out


def submission(master, wrong: dict[str, str] | None = None):
    """A student's notebook: the student version with every stub answered by the master's answer,
    except the exercises in ``wrong``, answered by the given code."""
    nb = A.student_notebook(master)
    answers = {A.grade_id(c): c.source for c in _solution_cells(master)}
    for cell in _solution_cells(nb):
        gid = A.grade_id(cell)
        source = answers[gid]
        if wrong and gid in wrong:
            lines = wrong[gid].strip().splitlines()
            source = A._replace_regions(
                source,
                A.BEGIN_SOLUTION,
                A.END_SOLUTION,
                lambda ind, lines=lines: [ind + s for s in lines],
                gid,
            )
        else:  # the master's answer without the markers, as a student would write it
            source = "\n".join(
                s
                for s in source.splitlines()
                if s.strip() not in (A.BEGIN_SOLUTION, A.END_SOLUTION)
            )
        cell.source = source
    return nb


# -- structure of the masters and the student versions (no kernel) ------------------------------


def test_there_is_a_master_per_core_topic():
    assert NAMES == [
        "01_spike_slab",
        "02_central_limit",
        "03_gbp",
        "04_credit_assignment",
        "05_temporal",
    ]


@pytest.mark.parametrize("path", MASTERS, ids=NAMES)
def test_master_metadata_is_consistent(path):
    nb = nbformat.read(path, as_version=4)
    ids = [A.grade_id(c) for c in nb.cells if A.grade_id(c)]
    assert len(ids) == len(set(ids)), f"duplicate grade_ids: {ids}"
    tests = [c for c in nb.cells if A.is_test(c)]
    assert len(tests) >= 2 and len(_solution_cells(nb)) >= 2
    for cell in tests:
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] and not meta["solution"] and meta["schema_version"] == 3
        assert meta["points"] > 0
        # the points the self-check prints are the points the grader gives
        calls = re.findall(r'^check\("([^"]+)", (\d+(?:\.\d+)?),', cell.source, flags=re.M)
        assert calls == [(meta["grade_id"], f"{meta['points']:g}")], cell.source[-200:]
        assert A.BEGIN_HIDDEN in cell.source and A.END_HIDDEN in cell.source
    for cell in _solution_cells(nb):
        meta = cell.metadata["nbgrader"]
        assert not meta["grade"] and not meta["locked"]
        assert cell.source.count(A.BEGIN_SOLUTION) == 1 == cell.source.count(A.END_SOLUTION)
        assert cell.source.lstrip().startswith("def "), "exercises are functions to implement"
    assert all(not c.get("outputs") for c in nb.cells), "masters are committed without outputs"
    assert nb.cells[-1].source.rstrip().endswith("score()")


def test_student_versions_are_up_to_date_and_reproducible(tmp_path):
    first = A.generate_all(out_dir=tmp_path / "a")
    second = A.generate_all(out_dir=tmp_path / "b")
    assert [p.name for p in first] == [f"{n}.ipynb" for n in NAMES]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: generation is not deterministic"
        committed = A.ASSIGNMENTS / a.name
        assert committed.is_file(), f"{committed.name} missing: run `make student`"
        assert committed.read_bytes() == a.read_bytes(), (
            f"book/assignments/{a.name} is out of date with its master: run `make student`"
        )


@pytest.mark.parametrize("name", NAMES)
def test_student_versions_hold_no_solutions_or_hidden_tests(name):
    master = nbformat.read(A.MASTERS / f"{name}.ipynb", as_version=4)
    text = (A.ASSIGNMENTS / f"{name}.ipynb").read_text(encoding="utf8")
    student = nbformat.reads(text, as_version=4)
    for marker in (A.BEGIN_SOLUTION, A.END_SOLUTION, A.BEGIN_HIDDEN, A.END_HIDDEN):
        assert marker not in text
    outside = set()  # lines of the master outside solution and hidden regions
    secret = []
    for cell in master.cells:
        solution = _region(cell.source, A.BEGIN_SOLUTION, A.END_SOLUTION)
        hidden = _region(cell.source, A.BEGIN_HIDDEN, A.END_HIDDEN)
        secret += solution + hidden
        inside = False
        for line in cell.source.splitlines():
            if line.strip() in (A.BEGIN_SOLUTION, A.BEGIN_HIDDEN, A.END_SOLUTION, A.END_HIDDEN):
                inside = line.strip() in (A.BEGIN_SOLUTION, A.BEGIN_HIDDEN)
            elif not inside:
                outside.add(line.strip())
    secret = {s.strip() for s in secret if len(s.strip()) > 12} - outside
    assert len(secret) > 10
    student_lines = {s.strip() for c in student.cells for s in c.source.splitlines()}
    assert not secret & student_lines, f"leaked: {sorted(secret & student_lines)[:3]}"
    # every exercise is a stub that names its grade_id, below the kept signature
    for m_cell, s_cell in zip(master.cells, student.cells, strict=True):
        assert m_cell.metadata == s_cell.metadata
        if A.is_solution(m_cell):
            gid = A.grade_id(m_cell)
            assert s_cell.source.splitlines()[0] == m_cell.source.splitlines()[0]  # def ...
            assert s_cell.source.endswith(
                f'    raise NotImplementedError("Student exercise: {gid}")'
            )
    assert student.metadata["mystnb"] == {"execution_mode": "off"}
    assert all(c.get("execution_count") is None and not c.get("outputs") for c in student.cells)


def test_toc_lists_every_student_version_and_no_master():
    import yaml

    toc = (A.ROOT / "_toc.yml").read_text(encoding="utf8")
    files = re.findall(r"file:\s*(\S+)", toc)
    part = yaml.safe_load(toc)["parts"]
    captions = [p["caption"] for p in part]
    assert captions.index("Assignments") == captions.index("Chapters") + 1
    assert "book/assignments/index" in files
    for name in NAMES:
        assert f"book/assignments/{name}" in files, f"{name} is not in _toc.yml"
    assert not [f for f in files if "/master/" in f], "the masters (solutions) must stay out"


def test_student_notebook_rules():
    md = nbformat.v4.new_markdown_cell(f"Explain.\n{A.BEGIN_SOLUTION}\nBecause.\n{A.END_SOLUTION}")
    md.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "why"}
    code = nbformat.v4.new_code_cell(f"def f():\n    {A.BEGIN_SOLUTION}\n    return 1\n")
    code.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "f"}
    nb = nbformat.v4.new_notebook(cells=[md])
    assert A.student_notebook(nb).cells[0].source == "Explain.\nYOUR ANSWER HERE"
    nb.cells = [code]
    with pytest.raises(ValueError, match="without '### END SOLUTION'"):
        A.student_notebook(nb)
    code.source = "def f():\n    return 1\n"
    with pytest.raises(ValueError, match="solution cell without"):
        A.student_notebook(nb)


def test_grading_notebook_restores_deleted_and_weakened_tests():
    master = nbformat.read(MASTERS[0], as_version=4)
    student = A.student_notebook(master)
    tests = [i for i, c in enumerate(student.cells) if A.is_test(c)]
    deleted = A.grade_id(student.cells[tests[1]])
    student.cells[tests[0]].source = "pass  # weakened"
    extra = nbformat.v4.new_code_cell("pass  # a test cell of the student's own")
    extra.metadata["nbgrader"] = {"grade": True, "grade_id": "mine", "points": 5}
    student.cells.append(extra)
    del student.cells[tests[1]]
    nb = A.grading_notebook(student, master)
    graded = {A.grade_id(c): c.source for c in nb.cells if A.is_test(c)}
    assert graded == {A.grade_id(c): c.source for c in master.cells if A.is_test(c)}
    assert A.grade_id(nb.cells[-1]) == deleted, "a deleted test cell is appended at the end"
    assert all(A.BEGIN_HIDDEN in source for source in graded.values()), "hidden tests are graded"
    setup = next(c for c in nb.cells if A.grade_id(c) == "setup")
    assert setup.source == next(c for c in master.cells if A.grade_id(c) == "setup").source


@pytest.mark.parametrize("path", MASTERS, ids=NAMES)
def test_grading_notebook_restores_a_deleted_setup_cell_in_its_place(path):
    master = nbformat.read(path, as_version=4)
    student = A.student_notebook(master)
    at = next(i for i, c in enumerate(student.cells) if A.grade_id(c) == "setup")
    del student.cells[at]
    nb = A.grading_notebook(student, master)
    assert [A.grade_id(c) for c in nb.cells] == [A.grade_id(c) for c in master.cells]
    assert nb.cells[at].source == master.cells[at].source
    # a set-up cell whose metadata was changed (no longer read-only) is restored too
    student = A.student_notebook(master)
    student.cells[at].metadata["nbgrader"] = {"grade_id": "mine"}
    student.cells[at].source = "pass"
    nb = A.grading_notebook(student, master)
    ids = [A.grade_id(c) for c in nb.cells]
    first = A.grade_id(_solution_cells(master)[0])
    assert ids.count("setup") == 1 and ids.index("setup") < ids.index(first)
    assert nb.cells[ids.index("setup")].source == master.cells[at].source


# -- the helpers the test cells call (no kernel) ------------------------------------------------


def _message(fn) -> str:
    with pytest.raises(AssertionError) as info:
        fn()
    return str(info.value)


def test_assert_close_names_the_usual_slips():
    want = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=torch.float64)
    A.assert_close(want.clone(), want, "G")
    msg = _message(lambda: A.assert_close(want * 4, want, "G", n=16))
    assert msg == "G is too large by a factor sqrt(N) = 4: did you scale by 1/sqrt(N_in)?"
    assert "1/N instead of 1/sqrt(N)" in _message(lambda: A.assert_close(want / 4, want, "G", n=16))
    assert "wrong sign" in _message(lambda: A.assert_close(-want, want, "d_pi"))
    delta = want.abs()
    assert "a variance where a standard deviation is expected" in _message(
        lambda: A.assert_close(delta**2, delta, "Delta")
    )
    assert "a standard deviation where a variance" in _message(
        lambda: A.assert_close(delta.sqrt(), delta, "Var")
    )
    assert "(transposed?)" in _message(lambda: A.assert_close(want.T, want, "G"))
    msg = _message(lambda: A.assert_close(want + 0.1 * (want > 1), want, "G", hint="Look at G."))
    assert msg.startswith("G is wrong: largest error 0.1 at index (0, 2)") and msg.endswith(
        "Look at G."
    )
    assert "must be a torch.Tensor" in _message(lambda: A.assert_close([1.0], want, "G"))
    mask = torch.tensor([True, False])
    assert "wrong in 1 of 2" in _message(lambda: A.assert_close(~mask & mask, mask, "vip"))


def test_check_and_score_record_each_exercise_once(capsys):
    A.reset()
    A.check("a", 2, lambda: None)
    with pytest.raises(AssertionError, match="boom"):
        A.check("b", 3, lambda: A.assert_close(torch.ones(1), torch.zeros(1), "x", hint="boom"))

    def stub():
        raise NotImplementedError("Student exercise: c")

    with pytest.raises(NotImplementedError):
        A.check("c", 1, stub)
    A.check("a", 2, lambda: None)  # re-running a cell replaces its record
    out = capsys.readouterr().out
    assert "[PASS] a: 2/2 points" in out and "[FAIL] b: 0/3 points. x is wrong" in out
    assert "not answered yet" in out
    assert A.score() == 2.0
    assert "total  2/6" in capsys.readouterr().out
    A.reset()
    assert A.score() == 0.0


def test_assert_own_code_rejects_the_package():
    from mfbook import gbp
    from mfbook.moments import preactivation_moments
    from mfbook.nn import MeanFieldMLP

    env = {"torch": torch, "gbp": gbp, "pm": preactivation_moments, "MeanFieldMLP": MeanFieldMLP}
    own, cheat_module, cheat_function = (
        eval(src, env)
        for src in (
            "lambda h: isinstance(h, MeanFieldMLP) or torch.relu(h)",
            "lambda h: gbp.layer_forward(h)",
            "lambda h: pm(h)",
        )
    )
    A.assert_own_code(own)
    assert "uses gbp from mfbook.gbp" in _message(lambda: A.assert_own_code(cheat_module))
    assert "uses pm from mfbook.moments" in _message(lambda: A.assert_own_code(cheat_function))

    # a student's module: its own helpers are looked into, torch and math stay allowed
    student = {"__name__": "student_module", **env}
    exec(STUDENT_CODE, student)
    for name in ("legit", "legit_nested", "recursive"):
        A.assert_own_code(student[name])
    cheats = {
        "cheat_local_import": "imports mfbook.moments",
        "cheat_local_from_package": "imports mfbook",
        "cheat_dunder_import": "names the module 'mfbook.moments'",
        "cheat_helper": "uses pm from mfbook.moments (through helper)",
        "cheat_deep_helper": "uses gbp from mfbook.gbp (through outer -> inner)",
        "cheat_helper_import": "imports mfbook.moments (through helper_import)",
        "cheat_lambda": "uses pm from mfbook.moments",
        "cheat_inner_function": "uses gbp from mfbook.gbp",
        "cheat_comprehension": "uses pm from mfbook.moments",
        "cheat_default": "uses the default of p from mfbook.moments",
        "cheat_closure": "uses p from mfbook.moments",
    }
    for name, phrase in cheats.items():
        message = _message(lambda f=student[name]: A.assert_own_code(f))
        assert message.startswith(f"{name} ") and message.endswith(": write it yourself")
        assert phrase in message, (name, message)


STUDENT_CODE = """
import math


def legit(h):
    return torch.relu(h) * math.sqrt(2) + helper_ok(h)


def helper_ok(h):
    return torch.tanh(h) if isinstance(h, MeanFieldMLP) is False else h


def legit_nested(h):
    f = lambda x: x**2
    return sum(f(v) for v in [h, -h]) + torch.stack([torch.sin(v) for v in (h, h)]).sum()


def recursive(h, k=3):
    return h if k == 0 else other(h, k - 1)


def other(h, k):
    return recursive(torch.relu(h), k)


def cheat_local_import(h):
    from mfbook.moments import preactivation_moments as p

    return p(h)


def cheat_local_from_package(h):
    from mfbook import moments

    return moments.preactivation_moments(h)


def cheat_dunder_import(h):
    return __import__("mfbook.moments", fromlist=["x"]).preactivation_moments(h)


def helper(h):
    return pm(h)


def cheat_helper(h):
    return helper(h) + torch.relu(h)


def inner(h):
    return gbp.layer_forward(h)


def outer(h):
    return inner(h)


def cheat_deep_helper(h):
    return outer(h)


def helper_import(h):
    import mfbook.moments

    return mfbook.moments.preactivation_moments(h)


def cheat_helper_import(h):
    return helper_import(h)


def cheat_lambda(h):
    f = lambda x: pm(x)
    return f(h)


def cheat_inner_function(h):
    def f(x):
        return gbp.layer_forward(x)

    return f(h)


def cheat_comprehension(hs):
    return [pm(h) for h in hs]


def cheat_default(h, p=pm):
    return p(h)


def _make_closure():
    p = pm

    def cheat_closure(h):
        return p(h)

    return cheat_closure


cheat_closure = _make_closure()
"""


def test_cli_parses_the_assign_commands():
    args = _parser().parse_args(["assign", "grade", "subs", "--out", "g.csv", "--jobs", "2"])
    assert (args.command, args.assign_command, args.submissions, args.out, args.jobs) == (
        "assign",
        "grade",
        "subs",
        "g.csv",
        2,
    )
    assert _parser().parse_args(["assign", "student"]).assign_command == "student"
    args = _parser().parse_args(["assign", "nbgrader-course", "course"])
    assert (args.assign_command, args.folder) == ("nbgrader-course", "course")


# -- grading in kernels: one folder of fake submissions, graded once ----------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade alice (the masters), bob (the student versions) and carol (one mistake each)."""
    root = tmp_path_factory.mktemp("submissions")
    for name, path in zip(NAMES, MASTERS, strict=True):
        master = nbformat.read(path, as_version=4)
        versions = {
            "alice": master,
            "bob": A.student_notebook(master),
            "carol": submission(master, WRONG[name]["code"]),
        }
        for student, nb in versions.items():
            (root / student).mkdir(exist_ok=True)
            nbformat.write(nb, root / student / f"{name}.ipynb")
    (root / "dave").mkdir()  # submitted nothing
    (root / "dave" / "notes.txt").write_text("no notebooks\n")
    results = {}
    real_grade = A.grade

    def recording_grade(notebook, master, **kw):
        path = Path(kw["name"])
        results[(path.parent.name, path.stem)] = result = real_grade(notebook, master, **kw)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(A, "grade", recording_grade)
        csv_path = root / "grades.csv"
        rows = A.grade_folder(root, csv_path=csv_path, timeout=60, jobs=2)
    return {"rows": rows, "csv": csv_path, "results": results}


@pytest.mark.parametrize("name", NAMES)
def test_master_scores_full_marks(graded, name):
    result = graded["results"][("alice", name)]
    assert result.errors == [], result.errors
    assert result.total == result.max_total > 0
    expected = A.test_points(nbformat.read(A.MASTERS / f"{name}.ipynb", as_version=4))
    assert result.points() == expected


@pytest.mark.parametrize("name", NAMES)
def test_student_version_runs_up_to_the_first_stub_and_scores_zero(graded, name):
    result = graded["results"][("bob", name)]
    assert result.total == 0 and result.max_total > 0
    student = nbformat.read(A.ASSIGNMENTS / f"{name}.ipynb", as_version=4)
    first_test = next(i for i, c in enumerate(student.cells) if A.is_test(c))
    first_stub = A.grade_id(_solution_cells(student)[0])
    # the first failing cell is the first test cell, failing on the first exercise's stub
    assert result.errors[0] == (first_test, f"NotImplementedError: Student exercise: {first_stub}")
    for exercise in result.exercises:
        assert exercise.message.startswith("NotImplementedError: Student exercise: ex")


@pytest.mark.parametrize("name", NAMES)
def test_wrong_answer_loses_points_with_a_helpful_message(graded, name):
    result = graded["results"][("carol", name)]
    lost = WRONG[name]["lost"]
    for exercise in result.exercises:
        if exercise.grade_id in lost:
            assert exercise.points == 0, exercise
            assert lost[exercise.grade_id] in exercise.message, exercise.message
        else:
            assert exercise.points == exercise.max_points, exercise
    assert result.total < result.max_total


def test_grade_folder_writes_the_table(graded):
    with open(graded["csv"], newline="", encoding="utf8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["student"], r["assignment"]) for r in rows] == [
        (s, n) for s in ("alice", "bob", "carol", "dave") for n in NAMES
    ]
    ids = [gid for p in MASTERS for gid in A.test_points(nbformat.read(p, as_version=4))]
    assert list(rows[0]) == ["student", "assignment", *ids, "total", "max", "feedback", "error"]
    assert all(row["error"] == "" for row in rows), "no notebook failed as a whole"
    for row in rows:
        name = row["assignment"]
        points = A.test_points(nbformat.read(A.MASTERS / f"{name}.ipynb", as_version=4))
        maximum = sum(points.values())
        lost = sum(points[g] for g in WRONG[name]["lost"])
        want = {"alice": maximum, "bob": 0.0, "carol": maximum - lost, "dave": 0.0}
        assert float(row["total"]) == want[row["student"]], row
        assert float(row["max"]) == maximum
        assert float(row["total"]) == sum(float(row[g]) for g in points)
        assert all(row[g] == "" for g in ids if g not in points), "other assignments' columns"
        if row["student"] == "dave":
            assert row["feedback"] == "not submitted"
        if row["student"] == "carol":
            assert all(f"{g}: " in row["feedback"] for g in WRONG[name]["lost"])
    assert graded["rows"][0]["total"] == float(rows[0]["total"])
    # every row returned is the row written, field by field
    assert len(graded["rows"]) == len(rows)
    for got, written in zip(graded["rows"], rows, strict=True):
        assert got["total"] == float(written["total"]), (got, written)
        assert {k: str(v) for k, v in got.items()} == written


def test_cli_grade_writes_a_csv(tmp_path, capsys):
    (tmp_path / "subs" / "erin").mkdir(parents=True)  # nothing submitted: no kernel needed
    out = tmp_path / "g.csv"
    assert main(["assign", "grade", str(tmp_path / "subs"), "--out", str(out)]) == 0
    assert "erin" in capsys.readouterr().out
    assert len(out.read_text(encoding="utf8").splitlines()) == 1 + len(NAMES)


def test_grade_scores_a_cell_that_times_out_zero_and_goes_on(tmp_path):
    def solution(gid, value):
        c = nbformat.v4.new_code_cell(
            f"def {gid}():\n    {A.BEGIN_SOLUTION}\n    return {value}\n    {A.END_SOLUTION}"
        )
        c.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": gid}
        return c

    def test(gid, points, source):
        c = nbformat.v4.new_code_cell(source)
        c.metadata["nbgrader"] = {"grade": True, "grade_id": gid, "points": points, "locked": True}
        return c

    hidden = f"assert fast() == 2\n{A.BEGIN_HIDDEN}\nassert fast() != 3\n{A.END_HIDDEN}"
    master = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import time"),
            solution("slow", 1),
            test("t-slow", 1, "assert slow() == 1"),
            solution("fast", 2),
            test("t-fast", 2, hidden),
        ]
    )
    nbformat.write(master, tmp_path / "master.ipynb")
    student = A.student_notebook(master)
    student.cells[1].source = "def slow():\n    while True:\n        time.sleep(0.01)"
    student.cells[3].source = "def fast():\n    return 2"
    nbformat.write(student, tmp_path / "student.ipynb")
    result = A.grade(tmp_path / "student.ipynb", tmp_path / "master.ipynb", timeout=3)
    assert [(e.grade_id, e.points, e.max_points) for e in result.exercises] == [
        ("t-slow", 0.0, 1.0),
        ("t-fast", 2.0, 2.0),
    ]
    assert result.exercises[0].message == "Timeout: the cell ran longer than 3 s"


def test_hints_point_to_equations_of_the_book_that_exist():
    """The assignments' hints and statements name the book's equations ("chapter 3,
    eq. (3.7)") instead of printing the answer; each named equation must exist: the k-th
    numbered display equation of chapter N."""
    book = A.MASTERS.parents[1]
    chapters = {int(p.name[:2]): p for p in book.glob("[0-9][0-9]_*.ipynb")}
    numbered = {
        n: len(re.findall(r"\$\$ \(eq-[\w-]+\)", p.read_text())) for n, p in chapters.items()
    }
    cited = []
    for path in MASTERS:
        cited += [
            (path.name, *map(int, m))
            for m in re.findall(r"eq\. \((\d+)\.(\d+)\)", path.read_text())
        ]
    assert len(cited) >= 8
    for name, chapter, k in cited:
        assert 1 <= k <= numbered[chapter], (
            f"{name} cites eq. ({chapter}.{k}), which does not exist"
        )
