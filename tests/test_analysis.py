"""Credit-assignment read-outs: fractions, perturbations, sub-network ensembles."""

import pytest
import torch

from mfbook import analysis
from mfbook.nn import MeanFieldMLP
from mfbook.spike_slab import ENTROPY_CONVENTIONS


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
    # the same sub-network draws for every curve: nothing perturbed, the same errors
    assert curves["error_vip"][0] == curves["error_random"][0] == curves["error_uip"][0]
    # the standard error over the sampled networks of each point
    _, errors = analysis.perturbation_point(model, x, y, 0, "vip", 1.0, 5, 0)
    assert curves["sem_vip"][1] == pytest.approx(float(errors.std()) / 5**0.5)
    assert all(len(curves[f"sem_{k}"]) == 2 for k in analysis.KINDS)


def test_subnetwork_errors_and_entropy(gen):
    model, x, y = crafted_model(gen)
    errs = analysis.subnetwork_errors(model, x, y, 7, gen)
    assert errs.shape == (7,) and float(errs.max()) <= 1
    (S,) = analysis.layer_entropy(model, n_samples=100, convention="box")
    assert S < 0  # spike boxes of variable connections dominate: negative by convention


def test_layer_entropy_passes_the_convention_through(gen):
    model = MeanFieldMLP([30, 20, 5], dtype=torch.float64)
    with torch.no_grad():
        for lay, pi_mean in zip(model.layers, (0.2, 0.8), strict=True):
            lay.pi.copy_(pi_mean + 0.2 * (2 * torch.rand(lay.pi.shape, generator=gen) - 1))
            lay.m.normal_(0.0, 1.0, generator=gen)
            lay.xi.uniform_(0.02, 0.2, generator=gen)
    profiles = {}
    for convention in ENTROPY_CONVENTIONS:
        profiles[convention] = analysis.layer_entropy(model, 50, 3, convention=convention)
        # per-layer means of SpikeSlab.entropy, one generator shared by the layers in order
        g = torch.Generator().manual_seed(3)
        direct = [
            float(s.entropy(50, g, convention=convention).mean()) for s in model.spike_slabs()
        ]
        assert profiles[convention] == direct
    assert analysis.layer_entropy(model, 50, 3) == profiles["reference"]  # the default
    assert len({tuple(p) for p in profiles.values()}) == 3  # three different profiles
    # the box sits about pi ln(1/b) below the reference: far more in the layer with pi ~ 0.8
    gap = [r - b for r, b in zip(profiles["reference"], profiles["box"], strict=True)]
    assert 0 < gap[0] < gap[1] and gap[1] > 4
    with pytest.raises(ValueError, match="convention must be one of"):
        analysis.layer_entropy(model, convention="lebesgue")


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


def test_error_rate_is_the_fraction_of_wrong_argmaxes():
    logits = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    y = torch.tensor([1, 1, 1, 1])
    assert analysis.error_rate(logits, y) == 0.5
    assert isinstance(analysis.error_rate(logits, y), float)
    assert analysis.error_rate(logits, torch.tensor([1, 0, 1, 0])) == 0.0


def test_subnetwork_errors_are_error_rates_of_the_sampled_networks(gen):
    model, x, y = crafted_model(gen)
    errs = analysis.subnetwork_errors(model, x, y, 4, torch.Generator().manual_seed(3))
    again = torch.Generator().manual_seed(3)
    expected = [analysis.error_rate(model.sample_network(again)(x), y) for _ in range(4)]
    assert errs.dtype == torch.float64 and errs.device == x.device
    assert errs.tolist() == expected


def test_fraction_of_names_a_category_for_every_kind():
    assert tuple(analysis.FRACTION_OF) == analysis.KINDS
    assert set(analysis.FRACTION_OF.values()) <= {"vip", "uip", "variable"}


@pytest.mark.parametrize("kind", analysis.KINDS)
@pytest.mark.parametrize("fraction", [0.0, 0.35, 1.0])
def test_perturbation_point_is_one_point_of_the_curves(kind, fraction, gen):
    model, x, y = crafted_model(gen)
    with torch.no_grad():  # more VIP (20) than variable (10) connections: "random" is clamped
        model.layers[0].pi[:, 10:15] = 0.0
        model.layers[0].xi[:, 10:15] = 0.0
    curves = analysis.perturbation_curves(model, x, y, 0, (fraction,), n_networks=3, seed=4)
    count, errors = analysis.perturbation_point(model, x, y, 0, kind, fraction, 3, seed=4)
    assert count == curves[f"count_{kind}"][0]
    assert float(errors.mean()) == curves[f"error_{kind}"][0]  # exactly, not approximately
    assert errors.shape == (3,)
    if fraction == 1.0:
        assert count == {"vip": 20, "random": 10, "uip": 10}[kind]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"layer": 1}, "layer must be an int in"),
        ({"kind": "all"}, "kind must be one of"),
        ({"n_networks": 0}, "n_networks must be"),
    ],
)
def test_perturbation_point_names_bad_arguments(kwargs, match, gen):
    model, x, y = crafted_model(gen)
    args = {"layer": 0, "kind": "vip", "fraction": 0.5, "n_networks": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        analysis.perturbation_point(model, x, y, **args)


def test_perturbation_and_removal_draw_the_same_subnetworks(gen):
    """Removing all VIPs by the perturbation experiment and by a removal curve ranked by VIP
    membership removes the same connections and samples the same networks: one number."""
    from mfbook import removal

    model, x, y = crafted_model(gen)
    count, errors = analysis.perturbation_point(model, x, y, 0, "vip", 1.0, 4, seed=3)
    order = removal.ranking(model, 0, "vip", torch.Generator().manual_seed(0))
    assert removal.removal_errors(model, x, y, 0, order, [count], 4, seed=3) == [
        float(errors.mean())
    ]
