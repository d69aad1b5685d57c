"""mfbook.removal: rankings of connections, removal curves and the sharper controls."""

import pytest
import torch

from mfbook import analysis, removal
from mfbook.nn import MeanFieldMLP


@pytest.fixture
def model():
    """A small model whose first layer has VIPs, UIPs and variable connections."""
    gen = torch.Generator().manual_seed(0)
    net = MeanFieldMLP([12, 8, 3])
    net.reset_parameters(gen)
    with torch.no_grad():
        for lay in net.layers:
            u = torch.rand(lay.pi.shape, generator=gen)
            lay.pi.copy_(torch.where(u < 0.3, 0.0, torch.where(u < 0.5, 1.0, u)))
            lay.xi.copy_(torch.where(u < 0.3, 0.0, lay.xi))
            lay.m.normal_(0.0, 1.0, generator=gen)
    return net


def data(n=200, blank=(0, 5)):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(n, 12, generator=gen)
    x[:, list(blank)] = 0.0  # pixels blank in every image
    return x, torch.randint(0, 3, (n,), generator=gen)


def test_connections_on_blank_inputs_never_train(model):
    x, _ = data()
    active = removal.active_inputs(model, x, 0)
    assert active.tolist() == [i not in (0, 5) for i in range(12)]
    trained = removal.trained_variable(model, x, 0)
    variable = model.layers[0].spike_slab().categories().variable
    assert not trained[:, [0, 5]].any() and torch.equal(trained[:, 1], variable[:, 1])
    assert removal.active_inputs(model, x, 1).shape == (8,)


def test_rankings_put_the_most_important_connections_first(model):
    cats = model.layers[0].spike_slab().categories()
    n_vip = int(cats.vip.sum())
    order = removal.ranking(model, 0, "vip", torch.Generator().manual_seed(0))
    assert bool(cats.vip.reshape(-1)[order[:n_vip]].all())
    assert not cats.vip.reshape(-1)[order[n_vip:]].any()
    mu = model.layers[0].spike_slab().mean().abs().reshape(-1)
    assert bool((mu[removal.ranking(model, 0, "abs_mu")].diff() <= 0).all())
    snr = removal.scores(model, 0, "snr")
    assert bool(torch.isinf(snr[cats.vip & (model.layers[0].m != 0)]).all())
    assert torch.equal(removal.scores(model, 0, "presence"), 1 - model.layers[0].pi.detach())
    with pytest.raises(ValueError, match="criterion must be one of"):
        removal.scores(model, 0, "loud")


def test_removal_errors_start_at_the_models_error_and_end_at_chance(model):
    x, y = data()
    order = removal.ranking(model, 0, "abs_mu")
    errors = removal.removal_errors(model, x, y, 0, order, [0, order.numel()], n_networks=4)
    gen = torch.Generator().manual_seed(0)
    plain = float(analysis.subnetwork_errors(model, x, y, 4, gen).mean())
    assert errors[0] == pytest.approx(plain)
    # all first-layer connections gone: every logit is 0, argmax picks class 0
    assert errors[1] == pytest.approx(float((y != 0).double().mean()))


def test_uips_switched_on_at_the_trained_scale(model):
    cats = model.layers[0].spike_slab().categories()
    n_uip = int(cats.uip.sum())
    for scale in ("unit", "trained"):
        new = removal.switched_on(model, 0, n_uip, scale, torch.Generator().manual_seed(0))
        m = new.layers[0].m.detach()[cats.uip]
        assert bool((new.layers[0].pi.detach()[cats.uip] == 0).all())
        assert bool((new.layers[0].xi.detach()[cats.uip] == 0).all())
        if scale == "trained":
            s = float(model.layers[0].m.detach()[cats.vip].std())
            assert float(m.std()) == pytest.approx(s, rel=0.6)
    assert bool((model.layers[0].pi.detach()[cats.uip] == 1).all())  # the original untouched
    with pytest.raises(ValueError, match="count must lie in"):
        removal.switched_on(model, 0, n_uip + 1, "unit")
    with pytest.raises(ValueError, match="scale must be one of"):
        removal.switched_on(model, 0, 1, "huge")
