"""Credit-assignment read-outs: fractions, perturbations, sub-network ensembles."""

import pytest
import torch

from mfbook import analysis
from mfbook.nn import MeanFieldMLP


def crafted_model(gen):
    """One layer, 2 classes: class c is read by 5 VIP connections; the rest is noise or absent."""
    model = MeanFieldMLP([20, 2], dtype=torch.float64)
    with torch.no_grad():
        lay = model.layers[0]
        lay.pi.fill_(0.5)
        lay.m.zero_()
        lay.xi.fill_(0.01)
        for c in (0, 1):
            cols = slice(5 * c, 5 * c + 5)
            lay.pi[c, cols], lay.xi[c, cols], lay.m[c, cols] = 0.0, 0.0, 3.0
        lay.pi[:, 15:] = 1.0  # UIP: inputs 15-19 are never read
    x = torch.zeros(200, 20, dtype=torch.float64)
    y = torch.randint(0, 2, (200,), generator=gen)
    for i, c in enumerate(y.tolist()):
        x[i, 5 * c : 5 * c + 5] = 1.0
    x[:, 10:] = torch.rand(200, 10, generator=gen, dtype=torch.float64)
    return model, x, y


def test_category_fractions_partition_every_layer(gen):
    model, _, _ = crafted_model(gen)
    (frac,) = analysis.category_fractions(model)
    assert frac == {"vip": 10 / 40, "uip": 10 / 40, "variable": 20 / 40}
    big = MeanFieldMLP([30, 20, 5])
    for f in analysis.category_fractions(big):
        assert sum(f.values()) == pytest.approx(1.0)


def test_perturbed_changes_exactly_the_chosen_connections(gen):
    model, _, _ = crafted_model(gen)
    before = model.layers[0].spike_slab().categories()
    removed = analysis.perturbed(model, 0, "vip", 4, torch.Generator().manual_seed(0))
    after = removed.layers[0].spike_slab().categories()
    assert int(after.vip.sum()) == int(before.vip.sum()) - 4
    assert int(after.uip.sum()) == int(before.uip.sum()) + 4
    assert torch.equal(model.layers[0].spike_slab().categories().vip, before.vip)  # a copy
    on = analysis.perturbed(model, 0, "uip", 3, torch.Generator().manual_seed(0))
    assert int(on.layers[0].spike_slab().categories().uip.sum()) == int(before.uip.sum()) - 3


def test_vip_removal_hurts_more_than_random_removal(gen):
    model, x, y = crafted_model(gen)
    curves = analysis.perturbation_curves(model, x, y, 0, fractions=(0.0, 1.0), n_networks=5)
    assert curves["count_vip"] == [0, 10] and curves["count_random"] == [0, 10]
    assert curves["error_vip"][0] < 0.05
    assert curves["error_vip"][1] > curves["error_random"][1] + 0.2


def test_subnetwork_errors_and_entropy(gen):
    model, x, y = crafted_model(gen)
    errs = analysis.subnetwork_errors(model, x, y, 7, gen)
    assert errs.shape == (7,) and float(errs.max()) <= 1
    (S,) = analysis.layer_entropy(model, n_samples=100)
    assert S < 0  # spike boxes of variable connections dominate: negative by convention


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: analysis.perturbed(m, 3, "vip", 1), "layer must be an int in"),
        (lambda m: analysis.perturbed(m, 0, "all", 1), "kind must be one of"),
        (lambda m: analysis.perturbed(m, 0, "vip", 11), r"count must be an int in \[0, 10\]"),
        (lambda m: analysis.category_fractions("model"), "must be a MeanFieldMLP"),
    ],
)
def test_bad_arguments_are_named(call, match, gen):
    model, _, _ = crafted_model(gen)
    with pytest.raises((ValueError, TypeError), match=match):
        call(model)


def test_removed_takes_out_exactly_the_masked_connections(gen):
    model, x, y = crafted_model(gen)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, :5] = True  # the VIP connections that read class 0
    new = analysis.removed(model, 0, mask)
    assert torch.equal(new.layers[0].pi.detach()[mask], torch.ones(5, dtype=torch.float64))
    assert torch.equal(new.layers[0].pi.detach()[~mask], model.layers[0].pi.detach()[~mask])
    assert float(model.layers[0].pi.detach()[0, 0]) == 0.0  # the original is untouched
    before = analysis.subnetwork_errors(model, x, y, 20, torch.Generator().manual_seed(0))
    after = analysis.subnetwork_errors(new, x, y, 20, torch.Generator().manual_seed(0))
    assert float(after.mean()) > float(before.mean()) + 0.05  # class 0 is read by noise only
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(2, 20\)"):
        analysis.removed(model, 0, mask.float())
