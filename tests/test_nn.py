"""The trainable model: init, modes, projection, categories, exported sub-networks."""

import math

import pytest
import torch

from mfbook import gbp
from mfbook.nn import MeanFieldLinear, MeanFieldMLP, PlainMLP

SIZES = [784, 100, 100, 10]


def test_init_follows_the_reference_protocol(gen):
    model = MeanFieldMLP(SIZES)
    model.reset_parameters(gen)
    for ss in model.spike_slabs():
        assert ss.pi.dtype == torch.float32
        assert float(ss.pi.abs().max()) == 0
        assert float(ss.xi.min()) >= 0 and float(ss.xi.max()) < 0.01
        # m ~ Normal(0, 2/784) in every layer (784 even for the hidden ones)
        assert float(ss.m.var()) == pytest.approx(2 / 784, rel=0.1)
    assert [tuple(lay.pi.shape) for lay in model.layers] == [(100, 784), (100, 100), (10, 100)]


def test_seeded_init_is_reproducible():
    a, b = MeanFieldMLP([5, 4, 3]), MeanFieldMLP([5, 4, 3])
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_mean_mode_is_the_mean_network_and_mf_adds_noise(gen):
    model = MeanFieldMLP([6, 5, 3], dtype=torch.float64)
    x = torch.rand(4, 6, generator=gen, dtype=torch.float64)
    zeros = [torch.zeros(4, 5, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64)]
    torch.testing.assert_close(model(x, mode="mean"), model(x, eps=zeros))
    a = model(x, generator=torch.Generator().manual_seed(1))
    b = model(x, generator=torch.Generator().manual_seed(1))
    c = model(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("sizes", [[784, 100, 100, 10], [6, 3]])
def test_mean_and_mf_logits_equal_the_two_separate_passes(gen, sizes):
    model = MeanFieldMLP(sizes)
    model.reset_parameters(gen)
    with torch.no_grad():
        for lay in model.layers:  # partly absent, partly variable connections
            lay.pi.uniform_(0, 1, generator=gen)
    x = torch.rand(37, sizes[0], generator=gen)
    mean, mf = model.mean_and_mf_logits(x, torch.Generator().manual_seed(4))
    assert torch.equal(mean, model.logits(x, "mean"))
    assert torch.equal(mf, model.logits(x, "mf", generator=torch.Generator().manual_seed(4)))
    assert not torch.equal(mean, mf)


def test_project_makes_exact_zeros_and_ones_and_categories_partition(gen):
    model = MeanFieldMLP([8, 6, 4])
    with torch.no_grad():
        for layer in model.layers:
            layer.pi.uniform_(-0.5, 1.5, generator=gen)
            layer.xi.uniform_(-0.2, 0.2, generator=gen)
    model.project_()
    for layer in model.layers:
        pi, xi = layer.pi.detach(), layer.xi.detach()
        assert float(pi.min()) == 0 and float(pi.max()) == 1 and float(xi.min()) == 0
        assert int((pi == 0).sum()) > 0 and int((pi == 1).sum()) > 0 and int((xi == 0).sum()) > 0
        cats = layer.spike_slab().categories()
        counts = cats.vip.int() + cats.uip.int() + cats.variable.int()
        assert torch.equal(counts, torch.ones_like(counts))
        assert torch.equal(cats.uip, pi == 1)
        assert torch.equal(cats.vip, (pi == 0) & (xi == 0))


def test_sample_network_equals_a_hand_computation(gen):
    model = MeanFieldMLP([7, 5, 3], dtype=torch.float64)
    with torch.no_grad():
        for layer in model.layers:
            layer.pi.uniform_(0, 1, generator=gen)
    x = torch.rand(4, 7, generator=gen, dtype=torch.float64)
    net = model.sample_network(torch.Generator().manual_seed(11))
    # the same weights, drawn again from the same seed, then z = (1/sqrt(N)) w h by hand
    g = torch.Generator().manual_seed(11)
    w1, w2 = (ss.sample(g) for ss in model.spike_slabs())
    hidden = torch.relu(x @ w1.T / math.sqrt(7))
    torch.testing.assert_close(net(x), hidden @ w2.T / math.sqrt(5), rtol=1e-12, atol=1e-14)
    assert int((w1 == 0).sum()) > 0  # the sub-network is sparse
    kinds = [type(mod) for mod in net]
    assert kinds == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert all(mod.bias is None for mod in net if isinstance(mod, torch.nn.Linear))


def test_sampled_networks_average_to_the_mean_network(gen):
    """For a single linear layer E[w] = mu, so the average of sampled outputs is G."""
    model = MeanFieldMLP([20, 3], dtype=torch.float64)
    with torch.no_grad():
        model.layers[0].pi.fill_(0.5)
    x = torch.rand(2, 20, generator=gen, dtype=torch.float64)
    outs = torch.stack([model.sample_network(gen)(x) for _ in range(4000)])
    with torch.no_grad():
        fw = gbp.forward(model.params(), x, [torch.zeros(2, 3, dtype=torch.float64)])
    G, Delta = fw.G[0], fw.Delta[0]
    assert ((outs.mean(0) - G).abs() <= 5 * Delta / math.sqrt(4000)).all()


def test_plain_mlp_matches_its_sequential_export(gen):
    plain = PlainMLP([6, 4, 2], dtype=torch.float64)
    x = torch.rand(3, 6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(plain(x), plain.to_sequential()(x))


def test_the_same_eps_gives_gbp_gradients_for_float32(gen):
    model = MeanFieldMLP([6, 5, 3])
    x = torch.rand(4, 6, generator=gen)
    y = torch.tensor([0, 2, 1, 2])
    eps = [torch.randn(4, 5, generator=gen), torch.randn(4, 3, generator=gen)]
    torch.nn.functional.cross_entropy(model(x, eps=eps), y).backward()
    params = [tuple(t.detach() for t in layer) for layer in model.params()]
    for layer, grads in zip(model.layers, gbp.gradients(params, x, y, eps), strict=True):
        for p, g in zip((layer.pi, layer.m, layer.xi), grads, strict=True):
            torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: m(torch.rand(3, 5)), r"x must have shape \(B, 6\)"),
        (lambda m: m(torch.rand(6)), "x must be a 2-D tensor"),
        (lambda m: m(torch.rand(0, 6)), "x must not be empty"),
        (lambda m: m(torch.full((2, 6), float("nan"))), "x contains NaN"),
        (lambda m: m(torch.rand(2, 6).double()), "must share dtype"),
        (lambda m: m(torch.rand(2, 6), mode="noisy"), "mode must be one of"),
        (lambda m: m(torch.rand(2, 6), eps=[torch.rand(2, 5)]), "eps must be a list of 2"),
        (lambda m: m(torch.rand(2, 6), eps=[torch.rand(2, 4), torch.rand(2, 3)]), r"eps\[0\]"),
        (lambda m: m(torch.randint(0, 2, (2, 6))), "float32 or float64"),
    ],
)
def test_bad_model_inputs_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(MeanFieldMLP([6, 5, 3]))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: MeanFieldMLP([784]), "at least an input and an output"),
        (lambda: MeanFieldMLP([784, 0, 10]), r"sizes\[1\] must be positive"),
        (lambda: MeanFieldMLP([784, 2.5, 10]), r"sizes\[1\] must be an int"),
        (lambda: MeanFieldLinear(4, 3, pi_init=1.5), "pi_init must lie in"),
        (lambda: MeanFieldLinear(4, 3, xi_max=-1), "m_var and xi_max must be >= 0"),
    ],
)
def test_bad_sizes_and_init_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
