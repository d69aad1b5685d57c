"""Reliability of the model's checked forward: parameters set by hand outside their domain are
named (layer and parameter), while the unchecked ``logits`` of the training loops stays as is."""

import pytest
import torch

from mfbook.nn import MeanFieldMLP


@pytest.mark.parametrize(
    "layer,name,value,match",
    [
        (0, "pi", 1.5, r"layers\[0\]\.pi must lie in \[0, 1\]"),
        (1, "pi", -0.25, r"layers\[1\]\.pi must lie in \[0, 1\]"),
        (1, "xi", -1e-3, r"layers\[1\]\.xi must be >= 0"),
        (0, "pi", float("nan"), r"layers\[0\]\.pi contains NaN or inf"),
        (1, "m", float("inf"), r"layers\[1\]\.m contains NaN or inf"),
        (0, "xi", float("nan"), r"layers\[0\]\.xi contains NaN or inf"),
    ],
)
@pytest.mark.parametrize("mode,eps", [("mf", False), ("mean", False), ("mf", True)])
def test_forward_names_a_parameter_set_out_of_its_domain(layer, name, value, match, mode, eps):
    model = MeanFieldMLP([6, 5, 3])
    with torch.no_grad():
        getattr(model.layers[layer], name)[0, 0] = value
    noise = [torch.zeros(2, 5), torch.zeros(2, 3)] if eps else None
    with pytest.raises(ValueError, match=match):
        model(torch.rand(2, 6), mode=mode, eps=noise)


def test_logits_stays_unchecked_and_forward_accepts_the_domain_edges():
    model = MeanFieldMLP([6, 5, 3])
    with torch.no_grad():
        model.layers[0].pi[0, 0], model.layers[0].pi[0, 1], model.layers[1].xi[0, 0] = 0, 1, 0
    x = torch.rand(2, 6)
    assert torch.isfinite(model(x)).all() and torch.isfinite(model(x, mode="mean")).all()
    with torch.no_grad():
        model.layers[0].pi[0, 0] = 1.5
    assert model.logits(x, mode="mean").shape == (2, 3)  # no check, no host synchronisation
