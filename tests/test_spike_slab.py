"""SpikeSlab: moments against samples, sampling, entropy conventions, categories."""

import math

import pytest
import torch

from mfbook.spike_slab import SPIKE_BOX_WIDTH, SpikeSlab

N = 400_000


def constant(pi, m, xi, n=N):
    full = lambda v: torch.full((n,), float(v), dtype=torch.float64)  # noqa: E731
    return SpikeSlab(full(pi), full(m), full(xi))


@pytest.mark.parametrize("pi,m,xi", [(0.0, 0.7, 0.2), (0.3, -1.2, 0.5), (0.9, 2.0, 0.0)])
def test_moments_match_samples(pi, m, xi, gen):
    ss = constant(pi, m, xi)
    w = ss.sample(gen)
    mu, rho, var = ss.mean()[0], ss.second_moment()[0], ss.variance()[0]
    # 5 standard errors of the sample mean and of the sample second moment
    assert abs(w.mean() - mu) <= 5 * math.sqrt(var / N)
    assert abs((w**2).mean() - rho) <= 5 * float((w**2).std()) / math.sqrt(N)
    assert torch.isclose(var, rho - mu**2)
    assert abs(float((w == 0).double().mean()) - pi) <= 5 * math.sqrt(pi * (1 - pi) / N) + 1e-12


def test_sample_is_exact_at_the_edges(gen):
    pi = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    m = torch.tensor([[0.5, 0.5, -2.0]], dtype=torch.float64)
    xi = torch.tensor([[0.0, 0.3, 0.0]], dtype=torch.float64)
    for _ in range(20):
        w = SpikeSlab(pi, m, xi).sample(gen)
        assert w[0, 0] == 0.5 and w[0, 1] == 0 and w[0, 2] == -2.0


def test_sample_is_reproducible():
    ss = constant(0.4, 0.1, 0.3, n=1000)
    a = ss.sample(torch.Generator().manual_seed(7))
    b = ss.sample(torch.Generator().manual_seed(7))
    c = ss.sample(torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_entropy_edge_cases(gen):
    pi = torch.tensor([1.0, 0.0, 0.3, 0.3, 1.0], dtype=torch.float64)
    m = torch.tensor([0.4, 0.4, 0.0, 1.5, 0.0], dtype=torch.float64)
    xi = torch.tensor([0.2, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    S = SpikeSlab(pi, m, xi).entropy(generator=gen)
    bernoulli = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    assert S[0] == 0  # pi = 1: always absent
    assert S[1] == 0  # pi = 0, xi = 0: deterministic weight m
    assert S[2] == 0  # xi = 0, m = 0: the slab sits on the spike
    assert S[3] == pytest.approx(bernoulli, abs=1e-12)  # present or not, each a point
    assert S[4] == 0


def test_entropy_of_a_pure_slab_is_the_gaussian_differential_entropy(gen):
    xi = 0.5
    S = constant(0.0, 0.3, xi, n=50).entropy(n_samples=4000, generator=gen)
    exact = 0.5 * math.log(2 * math.pi * math.e * xi)
    assert float(S.mean()) == pytest.approx(exact, abs=0.01)


def test_entropy_of_a_mixture_counts_the_spike_as_a_box(gen):
    pi, xi = 0.4, 0.5
    S = constant(pi, 1.0, xi, n=50).entropy(n_samples=4000, generator=gen)
    # the box and the slab barely overlap: -pi ln(pi / w) + (1 - pi) [-ln(1 - pi) + H_gauss]
    h_gauss = 0.5 * math.log(2 * math.pi * math.e * xi)
    approx = -pi * math.log(pi / SPIKE_BOX_WIDTH) + (1 - pi) * (-math.log(1 - pi) + h_gauss)
    assert float(S.mean()) == pytest.approx(approx, abs=0.02)
    assert float(S.mean()) < 0  # the spike's box makes it negative: a differential entropy


def test_categories_partition_and_are_exact():
    pi = torch.tensor([[0.0, 1.0, 0.0, 1e-9, 0.5]])
    m = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]])
    xi = torch.tensor([[0.0, 0.3, 1e-9, 0.0, 0.0]])
    cats = SpikeSlab(pi, m, xi).categories()
    assert cats.vip.tolist() == [[True, False, False, False, False]]
    assert cats.uip.tolist() == [[False, True, False, False, False]]
    total = cats.vip.int() + cats.uip.int() + cats.variable.int()
    assert torch.equal(total, torch.ones_like(total))
    loose = SpikeSlab(pi, m, xi).categories(atol=1e-6)
    assert loose.vip.tolist() == [[True, False, True, True, False]]


@pytest.mark.parametrize(
    "pi,m,xi,match",
    [
        (torch.tensor([[1.5]]), torch.tensor([[0.0]]), torch.tensor([[0.1]]), "pi must lie in"),
        (torch.tensor([[-0.1]]), torch.tensor([[0.0]]), torch.tensor([[0.1]]), "pi must lie in"),
        (torch.tensor([[0.5]]), torch.tensor([[0.0]]), torch.tensor([[-0.1]]), "xi must be >= 0"),
        (torch.tensor([[0.5]]), torch.tensor([[float("nan")]]), torch.tensor([[0.1]]), "NaN"),
        (
            torch.tensor([[0.5, float("nan"), 0.2]]),  # a NaN among valid values
            torch.zeros(1, 3),
            torch.full((1, 3), 0.1),
            "pi contains NaN or inf",
        ),
        (
            torch.full((1, 3), 0.5),
            torch.zeros(1, 3),
            torch.tensor([[0.1, 0.1, -float("inf")]]),
            "xi contains NaN or inf",
        ),
        (torch.tensor([[0.5]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.1]]), "same shape"),
        (torch.tensor([[0.5]]), torch.tensor([[1]]), torch.tensor([[0.1]]), "float32 or float64"),
    ],
)
def test_bad_parameters_are_named(pi, m, xi, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SpikeSlab(pi, m, xi)
