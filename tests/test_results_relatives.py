"""The stored result of chapter 10 (``relatives``): current, complete, and within its budget."""

import pytest

from mfbook import relatives, reproduce
from mfbook.relatives import experiment

FIELDS = ("test_error", "nll", "ece", "sparsity", "step_ratio", "cpu_seconds", "per_seed")


@pytest.fixture(scope="module")
def summary():
    return reproduce.load_summary("relatives")


def test_stored_relatives_is_current():
    assert reproduce.stale_reason("relatives") is None


@pytest.mark.parametrize("setting", ["paper", "full"])
def test_every_method_has_its_row_and_per_seed_values(summary, setting):
    methods = summary["settings"][setting]["methods"]
    assert set(methods) == set(relatives.METHODS)
    n_gbp = len(reproduce.load_summary(setting)["kept"])
    for name, row in methods.items():
        assert all(field in row for field in FIELDS), name
        n = n_gbp if name == "gbp" else len(experiment.SETTINGS[setting].seeds)
        for key in ("test_error", "nll", "ece", "sparsity"):
            values = list(row["per_seed"][key].values())
            assert len(values) == n >= 1, (name, key)
            assert row[key] == pytest.approx(sum(values) / n)
        assert 0 < row["test_error"] < 0.2 and 0 <= row["sparsity"] <= 1
    assert methods["bp"]["step_ratio"] == 1.0
    if setting == "paper":
        assert summary["methods"] == methods


def test_the_experiment_fits_its_hour_on_the_cpu(summary):
    assert summary["seconds"] < 3600
    assert summary["environment"]  # the machine it ran on is recorded
