"""Reliability of the stored results: a malformed ``summary.json`` is a reason, never a crash, and
it is left out of the results index (with a warning and a line naming it)."""

import json

import pytest
import torch

from mfbook import fingerprint, reproduce
from mfbook.experiments import EXPERIMENTS


def _store(root, name, summary):
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "summary.json").write_text(json.dumps(summary))


def _valid_up_to_the_runs(name="paper"):
    exp = EXPERIMENTS[name]
    return {"config": exp.config().to_dict(), "seeds": list(exp.seeds)}


def _all_runs(name="paper", entry=None):
    return {r.label: entry or {"config": r.config.to_dict()} for r in EXPERIMENTS[name].runs()}


MALFORMED = {
    "empty object": {},
    "a list": [],
    "a number": 3,
    "environment null": {"environment": None},
    "config a list": {"config": [1, 2], "seeds": [0]},
    "a run null": {**_valid_up_to_the_runs(), "runs": {"0": None}},
    "runs a list": {**_valid_up_to_the_runs(), "runs": ["0"]},
    "files a list": {**_valid_up_to_the_runs(), "runs": _all_runs(), "files": ["seed0.npz"]},
    "threads not a number": {
        **_valid_up_to_the_runs(),
        "runs": _all_runs(),
        "files": {},
        "numerics": {
            "fingerprint": "0" * 16,
            "kernels": False,
            "threads": "many",
            "torch": torch.__version__,
            "cpu": fingerprint._cpu(),
        },
    },
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_summary_is_a_reason_not_an_exception(tmp_path, case):
    _store(tmp_path, "paper", MALFORMED[case])
    reason = reproduce.stale_reason("paper", root=tmp_path)  # the file, or what is stale
    path = tmp_path / "paper" / "summary.json"
    assert reason.startswith((f"stored result {path} is ", "stored result paper: it records"))
    assert reproduce.is_current("paper", root=tmp_path) is False


@pytest.mark.parametrize(
    "case,why",
    [
        ("empty object", "it lacks config, seeds, runs"),
        ("environment null", "it lacks config, seeds, runs"),
        ("a run null", "AttributeError: 'NoneType' object has no attribute 'get'"),
        ("threads not a number", "ValueError: invalid literal for int()"),
    ],
)
def test_the_reason_names_the_malformed_file_and_what_is_wrong(tmp_path, case, why):
    _store(tmp_path, "paper", MALFORMED[case])
    path = tmp_path / "paper" / "summary.json"
    assert reproduce.stale_reason("paper", root=tmp_path).startswith(
        f"stored result {path} is malformed ({why}"
    )


@pytest.mark.parametrize("top", [[], [1], "text", 3, None])
def test_load_summary_wants_an_object(tmp_path, top):
    _store(tmp_path, "paper", top)
    match = f"stored result {tmp_path / 'paper' / 'summary.json'} is not a JSON object"
    with pytest.raises(ValueError, match=match):
        reproduce.load_summary("paper", root=tmp_path)


def _good_summary():
    final = {"test_error_mean": 0.02, "test_error_mf": 0.03, "test_error_sample": 0.04}
    return {
        "environment": {"device": "cpu", "cpu_threads": 2},
        "runs": {"0": {"train_seconds": 12.0, "final": final}},
    }


def test_the_index_leaves_out_malformed_summaries_and_names_them(tmp_path):
    _store(tmp_path, "paper", _good_summary())
    _store(tmp_path, "paper_bp", {})
    _store(tmp_path, "paper_2022", [])
    _store(tmp_path, "full", {**_good_summary(), "environment": None})
    _store(tmp_path, "credit", {"fractions": "not a list of layers"})
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "summary.json").write_text("{ not json")
    with pytest.warns(UserWarning) as caught:
        path = reproduce.write_index(tmp_path)
    warned = "\n".join(str(w.message) for w in caught)
    for name in ("paper_bp", "paper_2022", "full", "credit", "deep"):
        assert f"stored result {tmp_path / name / 'summary.json'}" in warned
    text = path.read_text()
    assert "| paper | 1 | 4.00% | 3.00% | 2.00% | 12 | cpu (2 threads) |" in text
    assert "## Left out: malformed summaries" in text
    assert "- stored result paper_bp/summary.json is malformed (KeyError: 'environment')" in text
    assert "- stored result paper_2022/summary.json is not a JSON object (it holds a list)" in text
    assert "- stored result full/summary.json is malformed (AttributeError" in text
    assert "credit/summary.json is malformed" in text and "deep/summary.json is not valid" in text
    assert str(tmp_path) not in text  # no machine's paths in the index


def test_an_index_of_well_formed_summaries_has_no_left_out_section(tmp_path):
    _store(tmp_path, "paper", _good_summary())
    assert "Left out" not in reproduce.write_index(tmp_path).read_text()


@pytest.mark.parametrize("label", ["../../x", "../paper_bp/seed0", "/etc/passwd", "a/b", ".."])
def test_a_run_label_that_leaves_the_results_folder_is_refused(tmp_path, label):
    outside = tmp_path / "x.npz"
    outside.write_bytes(b"a file outside the stored result")
    summary = {**_valid_up_to_the_runs(), "runs": {label: {}}, "kept": [label], "files": {}}
    _store(tmp_path / "results", "paper", summary)
    with pytest.raises(ValueError, match="must be a plain file name") as err:
        reproduce.load_model("paper", root=tmp_path / "results", run=label)
    assert repr(label) in str(err.value) and "paper" in str(err.value)


@pytest.mark.parametrize("name", ["../../x.npz", "../paper_bp/seed0.npz", "/etc/passwd"])
def test_a_recorded_file_outside_the_results_folder_makes_the_result_stale(tmp_path, name):
    (tmp_path / "x.npz").write_bytes(b"a file outside the stored result")
    summary = {**_valid_up_to_the_runs(), "runs": _all_runs(), "files": {name: "0" * 64}}
    _store(tmp_path / "results", "paper", summary)
    reason = reproduce.stale_reason("paper", root=tmp_path / "results")
    assert "must be a plain file name" in reason and repr(name) in reason
