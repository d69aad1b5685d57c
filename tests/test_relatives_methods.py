"""The methods of the comparison (chapter 10): the registry, the common interface (prediction,
pruning, scores), the shared training loop and the step timer, and their clear errors."""

import math

import pytest
import torch

from mfbook import relatives
from mfbook.config import preset
from mfbook.loop import TrainingDiverged, build_model
from mfbook.relatives import mean_field, metrics
from mfbook.relatives import train as rtrain

NAMES = list(relatives.METHODS)
SIZES = (12, 8, 6, 3)


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, SIZES[0], generator=g), torch.randint(0, SIZES[-1], (n,), generator=g)


def test_the_registry_names_every_method_and_refuses_others():
    assert NAMES == ["bp", "mc_dropout", "bbb", "sparse_vd", "gbp"]
    with pytest.raises(ValueError, match="unknown method 'dropout'.*bp, mc_dropout, bbb"):
        relatives.build("dropout")
    with pytest.raises(ValueError, match="unknown method"):
        relatives.method(None)
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['q'\].*takes p, p_input"):
        relatives.build("mc_dropout", q=0.5)
    with pytest.raises(ValueError, match="p must lie in"):
        relatives.build("mc_dropout", p=1.0)
    with pytest.raises(ValueError, match="prior_sigma must be a positive"):
        relatives.build("bbb", prior_sigma=0)
    with pytest.raises(ValueError, match="seed"):
        relatives.build("bp", seed=-1)


def test_the_baselines_are_the_books_networks():
    x = torch.rand(5, 784)
    for name, p in (("bp", "paper_bp"), ("gbp", "paper")):
        ours, book = relatives.build(name, seed=3), build_model(preset(p), 3)
        mode = {} if name == "bp" else {"mode": "mean"}
        assert torch.equal(ours.mean_logits(x), book.logits(x, **mode))
    g1, g2 = (torch.Generator().manual_seed(9) for _ in range(2))
    gbp = relatives.build("gbp", seed=3)
    with torch.no_grad():
        assert torch.equal(gbp(x, g1), build_model(preset("paper"), 3).logits(x, "mf", None, g2))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_model(name):
    a, b, c = (relatives.build(name, SIZES, seed=s) for s in (1, 1, 2))
    x = data()[0]
    assert torch.equal(a.mean_logits(x), b.mean_logits(x))
    assert not torch.equal(a.mean_logits(x), c.mean_logits(x))


@pytest.mark.parametrize("name", NAMES)
def test_predict_gives_probabilities_and_checks_its_input(name):
    model = relatives.build(name, SIZES, seed=0)
    x = data()[0]
    g = torch.Generator().manual_seed(0)
    for n in (0, 3):
        p = model.predict(x, n, g)
        assert p.shape == (64, 3) and torch.allclose(p.sum(1), torch.ones(64))
    if model.stochastic:
        g1, g2 = (torch.Generator().manual_seed(4) for _ in range(2))
        assert torch.equal(model.predict(x, 2, g1), model.predict(x, 2, g2))
        assert not torch.equal(model.predict(x, 1, g1), model.predict(x, 0))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 12\)"):
        model.predict(torch.rand(4, 11))
    with pytest.raises(TypeError, match="dtype"):
        model.predict(x.double())
    with pytest.raises(ValueError, match="n_samples"):
        model.predict(x, -1)
    with pytest.raises(ValueError, match="NaN"):
        model.predict(torch.full((2, 12), math.nan))


@pytest.mark.parametrize("name", NAMES)
def test_pruning_removes_exactly_the_masked_weights(name):
    model = relatives.build(name, SIZES, seed=0)
    x = data()[0]
    scores = model.prune_scores()
    assert [tuple(s.shape) for s in scores] == [(8, 12), (6, 8), (3, 6)]
    assert model.n_weights() == 12 * 8 + 8 * 6 + 6 * 3
    everything = [torch.ones_like(s, dtype=torch.bool) for s in scores]
    same = model.pruned(everything)
    assert torch.equal(same.mean_logits(x), model.mean_logits(x))
    empty = model.pruned([~k for k in everything])
    g = torch.Generator().manual_seed(0)
    for p in (empty.predict(x, 0), empty.predict(x, 3, g)):  # every weight 0: logits 0
        assert torch.allclose(p, torch.full_like(p, 1 / 3))
    # the first hidden unit loses all its inputs: its pre-activation is 0 in every pass
    keep = [k.clone() for k in everything]
    keep[0][0] = False
    g1, g2 = (torch.Generator().manual_seed(0) for _ in range(2))
    with torch.no_grad():
        assert first_layer(model)(x, g1)[:, 0].abs().min() > 0
        assert torch.equal(first_layer(model.pruned(keep))(x, g2)[:, 0], torch.zeros(64))
    with pytest.raises(ValueError, match="keep must be bool tensors of shapes"):
        model.pruned(everything[:2])
    with pytest.raises(ValueError, match="bool"):
        model.pruned([k.float() for k in everything])


def first_layer(model):
    """A one-layer model of the same method with ``model``'s first weight matrix."""
    name = next(k for k, v in relatives.METHODS.items() if type(model) is v)
    one = relatives.build(name, SIZES[:2], seed=0)
    state = {k: v for k, v in model.state_dict().items() if k.endswith(".0") or ".0." in k}
    assert set(state) == set(one.state_dict())
    one.load_state_dict(state)
    return one


def test_the_scores_are_each_methods_own_criterion():
    bp = relatives.build("bp", SIZES, seed=0)
    assert torch.equal(bp.prune_scores()[0], bp.weights[0].detach().abs())
    bbb = relatives.build("bbb", SIZES, seed=0)
    assert torch.allclose(
        bbb.prune_scores()[1], bbb.mu[1].detach().abs() / bbb.sigmas()[1].detach()
    )
    svd = relatives.build("sparse_vd", SIZES, seed=0)
    assert torch.equal(svd.prune_scores()[2], -svd.log_alphas()[2].detach())
    gbp = relatives.build("gbp", (4, 1), seed=0)
    with torch.no_grad():
        gbp.net.layers[0].pi.copy_(torch.tensor([[0.0, 0.0, 0.5, 1.0]]))
        gbp.net.layers[0].m.copy_(torch.tensor([[0.1, 2.0, 9.0, 9.0]]))
    s = gbp.prune_scores()[0][0]
    assert s.argsort().tolist() == [3, 2, 0, 1]  # by 1 - pi first, ties by |(1 - pi) m|
    assert float((s - (1 - gbp.net.layers[0].pi.detach()[0].double())).abs().max()) <= 1e-9
    assert mean_field.TIE_BREAK <= 1e-9


def test_only_the_variational_methods_have_a_kl_term():
    for name in NAMES:
        kl = relatives.build(name, SIZES, seed=0).kl()
        assert (float(kl.detach()) > 0) == (name in ("bbb", "sparse_vd"))


# -------------------------------------------------------------------------- the training loop


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_repeatable_and_records_every_epoch(name):
    x, y = data(120)
    xt, yt, xv, yv = rtrain.split(x, y, 20)
    runs = [
        rtrain.fit(
            relatives.build(name, SIZES, seed=0),
            xt,
            yt,
            epochs=2,
            batch_size=32,
            lr=0.01,
            warmup_epochs=1,
            seed=5,
            val=(xv, yv),
        )
        for _ in range(2)
    ]
    h = runs[0].history
    assert set(h) == {"epoch", "loss", "nll", "kl", "beta", "val_error", "val_nll", "seconds"}
    assert h["epoch"] == [1, 2] and h["beta"][-1] == 1.0 and 0 < h["beta"][0] <= 1.0
    assert {k: v for k, v in h.items() if k != "seconds"} == {
        k: v for k, v in runs[1].history.items() if k != "seconds"
    }
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(a, b)
    if name not in ("bbb", "sparse_vd"):
        assert h["loss"] == h["nll"] and h["kl"] == [0.0, 0.0]


def test_fit_minimises_the_elbo_per_example():
    x, y = data(100)
    model = relatives.build("bbb", SIZES, seed=0)
    h = rtrain.fit(model, x, y, epochs=3, batch_size=100, lr=0.01, kl_weight=0.5, seed=0).history
    assert h["loss"][-1] == pytest.approx(h["nll"][-1] + 0.5 * h["kl"][-1] / 100, rel=1e-6)
    assert h["loss"][-1] < h["loss"][0]


def test_gbp_keeps_its_projection_in_the_shared_loop():
    x, y = data(100)
    model = relatives.build("gbp", SIZES, seed=0)
    rtrain.fit(model, x, y, epochs=3, batch_size=20, lr=0.5, seed=0)
    for layer in model.net.layers:
        pi, xi = layer.pi.detach(), layer.xi.detach()
        assert float(pi.min()) >= 0 and float(pi.max()) <= 1 and float(xi.min()) >= 0
    assert any(float(lay.xi.detach().min()) == 0 for lay in model.net.layers)  # projected


def test_weight_decay_shrinks_only_the_weights():
    x, y = data()
    for name in ("bp", "bbb"):
        a, b = (relatives.build(name, SIZES, seed=0) for _ in range(2))
        rtrain.fit(a, x, y, epochs=1, batch_size=64, lr=1e-9, seed=0)
        rtrain.fit(b, x, y, epochs=1, batch_size=64, lr=1e-9, weight_decay=1e6, seed=0)
        first_a, first_b = next(a.parameters()), next(b.parameters())
        ratio = float(first_b.detach().norm() / first_a.detach().norm())
        assert ratio == pytest.approx(1 - 1e-3 if name == "bp" else 1.0, rel=1e-5)


def test_fit_and_split_check_their_input():
    x, y = data()
    model = relatives.build("bp", SIZES, seed=0)
    with pytest.raises(ValueError, match="labels of x must be int64"):
        rtrain.fit(model, x, y.int())
    with pytest.raises(ValueError, match="labels of x"):
        rtrain.fit(model, x, y[:10])
    with pytest.raises(ValueError, match="lr must be a positive"):
        rtrain.fit(model, x, y, lr=0)
    with pytest.raises(ValueError, match="epochs must be positive"):
        rtrain.fit(model, x, y, epochs=0)
    with pytest.raises(ValueError, match="kl_weight"):
        rtrain.fit(model, x, y, kl_weight=-1)
    with pytest.raises(ValueError, match="labels of val"):
        rtrain.fit(model, x, y, val=(x, y[:3]))
    with pytest.raises(TypeError, match="model must be a Relative"):
        rtrain.fit(torch.nn.Linear(12, 3), x, y)
    with pytest.raises(ValueError, match="n_val"):
        rtrain.split(x, y, 64)
    a, b, c, d = rtrain.split(x, y, 10)
    assert torch.equal(c, x[-10:]) and a.shape == (54, 12) and torch.equal(b, y[:54])


def test_a_diverging_run_is_named():
    x, y = data()
    with pytest.raises(TrainingDiverged, match="Backprop diverged in epoch .*smaller lr"):
        rtrain.fit(relatives.build("bp", SIZES, seed=0), x * 1e30, y, epochs=2, lr=1e30)


def test_step_seconds_times_every_model_on_the_same_batch():
    x, y = data(32)
    models = {n: relatives.build(n, SIZES, seed=0) for n in NAMES}
    before = [p.clone() for p in models["bp"].parameters()]
    t = rtrain.step_seconds(models, x, y, n_train=1000, repeats=3, warmup=1)
    assert list(t) == NAMES and all(0 < v < 1 for v in t.values())
    assert all(torch.equal(a, b) for a, b in zip(before, models["bp"].parameters(), strict=True))
    with pytest.raises(ValueError, match="non-empty dict"):
        rtrain.step_seconds({}, x, y, 1000)
    with pytest.raises(ValueError, match="labels of xb"):
        rtrain.step_seconds(models, x, y[:3], 1000)


def test_metrics_accept_every_methods_predictions():
    x, y = data()
    for name in NAMES:
        p = relatives.build(name, SIZES, seed=0).predict(x, 2, torch.Generator().manual_seed(0))
        r = metrics.reliability(p, y)
        assert 0 <= r.ece <= 1 and sum(r.count) == 64 and metrics.nll(p, y) > 0
