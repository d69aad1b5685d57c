"""The 2-D toy data of chapter 3 (mfbook.toy), its decision-region figure, and a tiny gBP model."""

import matplotlib
import pytest
import torch

from mfbook import plots, toy
from mfbook.config import TrainConfig
from mfbook.loop import make_optimizer, train_epoch
from mfbook.nn import MeanFieldMLP

GENERATORS = [toy.two_moons, toy.two_spirals]


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("n", [2, 7, 100])
def test_shapes_dtypes_and_balance(make, n):
    x, y = make(n, generator=seeded())
    assert x.shape == (n, 3) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert set(y.tolist()) == {0, 1}
    assert int((y == 0).sum()) == n - n // 2 and int((y == 1).sum()) == n // 2
    assert torch.equal(x[:, 2], torch.ones(n))  # the constant input
    x2, _ = make(n, generator=seeded(), bias=False, dtype=torch.float64)
    assert x2.shape == (n, 2) and x2.dtype == torch.float64


@pytest.mark.parametrize("make", GENERATORS)
def test_labels_are_shuffled(make):
    _, y = make(200, generator=seeded())
    assert 0 < int((y[:100] == 0).sum()) < 100


@pytest.mark.parametrize("make", GENERATORS)
def test_reproducible_with_a_seed(make):
    x1, y1 = make(50, generator=seeded(3))
    x2, y2 = make(50, generator=seeded(3))
    x3, _ = make(50, generator=seeded(4))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_moons_geometry_without_noise():
    x, y = toy.two_moons(400, noise=0.0, generator=seeded(), bias=False, dtype=torch.float64)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper = x[y == 0] + centre  # on the unit circle, upper half
    lower = x[y == 1] + centre - torch.tensor([1.0, 0.5], dtype=torch.float64)  # shifted circle
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(200, dtype=torch.float64))
    torch.testing.assert_close(lower.norm(dim=1), torch.ones(200, dtype=torch.float64))
    assert bool((upper[:, 1] >= 0).all()) and bool((lower[:, 1] <= 0).all())


def test_spirals_geometry_without_noise():
    x, y = toy.two_spirals(400, noise=0.0, generator=seeded(), bias=False, dtype=torch.float64)
    assert float(x.norm(dim=1).max()) <= 1 + 1e-12
    # class 1 is class 0 turned by pi: the same set of radii is reachable by both
    assert float(x[y == 0].norm(dim=1).mean()) == pytest.approx(
        float(x[y == 1].norm(dim=1).mean()), abs=0.1
    )


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must be positive"),
        ({"n": 1}, ValueError, "n must be at least 2"),
        ({"n": 10.0}, TypeError, "n must be an int"),
        ({"n": 10, "noise": -0.1}, ValueError, "noise must be a finite number >= 0"),
        ({"n": 10, "noise": float("nan")}, ValueError, "noise"),
        ({"n": 10, "noise": "0.1"}, TypeError, "noise must be a number"),
        ({"n": 10, "dtype": torch.int64}, TypeError, "dtype must be"),
        ({"n": 10, "generator": 0}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_arguments(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(**kwargs)


@pytest.mark.parametrize("turns", [0, -1.0, 11])
def test_spirals_bad_turns(turns):
    with pytest.raises(ValueError, match="turns must lie in"):
        toy.two_spirals(10, turns=turns)


def test_decision_grid():
    x, _ = toy.two_moons(50, generator=seeded())
    xx, yy, points = toy.decision_grid(x, n_grid=11, margin=0.5)
    assert xx.shape == yy.shape == (11, 11)
    assert points.shape == (121, 3) and points.dtype == x.dtype
    assert torch.equal(points[:, 2], torch.ones(121))
    assert float(xx.min()) == pytest.approx(float(x[:, 0].min()) - 0.5)
    assert float(yy.max()) == pytest.approx(float(x[:, 1].max()) + 0.5)
    x2, _ = toy.two_moons(50, generator=seeded(), bias=False)
    assert toy.decision_grid(x2, n_grid=5)[2].shape == (25, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\) or \(n, 3\)"):
        toy.decision_grid(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="margin must be >= 0"):
        toy.decision_grid(x, margin=-1.0)


def test_plot_decision_regions_draws():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = toy.two_moons(40, generator=seeded())
    fig, ax = plt.subplots()
    out = plots.plot_decision_regions(
        ax, lambda p: torch.stack([p[:, 0], -p[:, 0]], 1), x, y, n_grid=20, title="t"
    )
    assert out is ax and ax.get_title() == "t" and len(ax.collections) >= 2
    plt.close(fig)


def test_tiny_gbp_model_beats_chance():
    x, y = toy.two_moons(400, noise=0.1, generator=seeded(0))
    xt, yt = toy.two_moons(1000, noise=0.1, generator=seeded(1))
    config = TrainConfig(
        name="toy",
        sizes=(3, 16, 16, 2),
        n_train=400,
        batch_size=50,
        epochs=15,
        lr=0.05,
        lr_halve_every=10,
    )
    model = MeanFieldMLP(list(config.sizes))
    model.reset_parameters(seeded(2))
    order_gen, noise_gen = seeded(3), seeded(4)
    for epoch in range(config.epochs):
        opt = make_optimizer(model, config, config.lr_at(epoch))
        train_epoch(model, x, y, opt, config, order_gen, noise_gen)
    with torch.no_grad():
        acc = float((model(xt, mode="mean").argmax(1) == yt).double().mean())
        acc_sub = float((model.sample_network(noise_gen)(xt).argmax(1) == yt).double().mean())
    assert acc >= 0.85, acc  # chance is 0.5
    assert acc_sub >= 0.75, acc_sub
