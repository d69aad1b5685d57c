"""SpikeSlab: moments against samples, sampling, entropy conventions, categories."""

import math

import pytest
import torch

from mfbook.spike_slab import ENTROPY_CONVENTIONS, SPIKE_BOX_WIDTH, XI_FLOOR, SpikeSlab

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


@pytest.mark.parametrize("convention", ENTROPY_CONVENTIONS)
def test_entropy_edge_cases(convention, gen):
    pi = torch.tensor([1.0, 0.0, 0.3, 0.3, 1.0, 0.3], dtype=torch.float64)
    m = torch.tensor([0.4, 0.4, 0.0, 1.5, 0.0, -2.0], dtype=torch.float64)
    xi = torch.tensor([0.2, 0.0, 0.0, 0.0, 0.0, XI_FLOOR], dtype=torch.float64)
    S = SpikeSlab(pi, m, xi).entropy(generator=gen, convention=convention)
    bernoulli = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    assert S[0] == 0  # pi = 1: always absent
    assert S[1] == 0  # pi = 0, xi = 0: deterministic weight m
    assert S[2] == 0  # xi = 0, m = 0: the slab sits on the spike
    assert S[3] == pytest.approx(bernoulli, abs=1e-12)  # present or not, each a point
    assert S[4] == 0
    assert S[5] == pytest.approx(bernoulli, abs=1e-12)  # xi at the floor counts as 0


@pytest.mark.parametrize("convention", ["reference", "box"])
def test_entropy_of_a_pure_slab_is_the_gaussian_differential_entropy(convention, gen):
    xi = 0.5
    S = constant(0.0, 0.3, xi, n=50).entropy(n_samples=4000, generator=gen, convention=convention)
    exact = 0.5 * math.log(2 * math.pi * math.e * xi)
    assert float(S.mean()) == pytest.approx(exact, abs=0.01)


def test_entropy_of_a_mixture_counts_the_spike_as_a_box(gen):
    pi, xi = 0.4, 0.5
    S = constant(pi, 1.0, xi, n=50).entropy(n_samples=4000, generator=gen, convention="box")
    # the box and the slab barely overlap: -pi ln(pi / w) + (1 - pi) [-ln(1 - pi) + H_gauss]
    h_gauss = 0.5 * math.log(2 * math.pi * math.e * xi)
    approx = -pi * math.log(pi / SPIKE_BOX_WIDTH) + (1 - pi) * (-math.log(1 - pi) + h_gauss)
    assert float(S.mean()) == pytest.approx(approx, abs=0.02)
    assert float(S.mean()) < 0  # the spike's box makes it negative: a differential entropy


def h_binary(p):
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def h_gauss(xi):
    return 0.5 * math.log(2 * math.pi * math.e * xi)


def reference_direct(pi, m, xi, z):
    """The reference convention for one connection, written out from its formula (chapter 1,
    eq-ch01-entropy-reference), with the slab's standard-normal draws ``z`` given."""
    if pi == 1:
        return 0.0
    if xi <= 1e-8:
        return 0.0 if (m == 0 or pi == 0) else h_binary(pi)
    norm = 1 / math.sqrt(2 * math.pi * xi)
    spike = -pi * math.log(pi + (1 - pi) * norm * math.exp(-(m**2) / (2 * xi)) + 1e-6)
    total = 0.0
    for zj in z:
        v = m + math.sqrt(xi) * zj
        box = 5000.0 if abs(v) < 1e-4 else 0.0
        total += math.log(pi * box + (1 - pi) * norm * math.exp(-(zj**2) / 2))
    return spike - (1 - pi) * total / len(z)


def test_reference_matches_its_formula_draw_by_draw():
    # pi = 0 (no spike term), a slab far from 0, and narrow slabs on 0 whose draws hit the box
    pi = [0.0, 0.2, 0.5, 0.9, 0.5, 0.3, 1 - 1e-9]
    m = [0.7, -1.0, 0.0, 0.3, 0.0, 2e-5, 1.0]
    xi = [0.3, 0.05, 1e-6, 0.2, 0.01, 4e-8, 0.1]
    ss = SpikeSlab(*(torch.tensor(v, dtype=torch.float64) for v in (pi, m, xi)))
    S = ss.entropy(n_samples=300, generator=torch.Generator().manual_seed(9))
    # the estimator draws one (connections, n_samples) array of standard normals
    z = torch.randn((len(pi), 300), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    hits = [sum(abs(m[i] + math.sqrt(xi[i]) * zj) < 1e-4 for zj in z[i].tolist()) for i in (2, 5)]
    assert min(hits) >= 10  # the box term is exercised
    for i in range(len(pi)):
        direct = reference_direct(pi[i], m[i], xi[i], z[i].tolist())
        assert float(S[i]) == pytest.approx(direct, rel=1e-12, abs=1e-12)  # sees the 1e-6
    assert float(S[6]) == pytest.approx(0.0, abs=1e-6)  # continuous at pi = 1


def test_reference_defaults_to_the_authors_100_draws_and_box_to_1000():
    ss = constant(0.4, 0.2, 0.1, n=30)
    for convention, n in (("reference", 100), ("box", 1000)):
        a = ss.entropy(generator=torch.Generator().manual_seed(3), convention=convention)
        b = ss.entropy(n, torch.Generator().manual_seed(3), convention=convention)
        c = ss.entropy(n + 1, torch.Generator().manual_seed(3), convention=convention)
        assert torch.equal(a, b) and not torch.equal(a, c)
    default = ss.entropy(generator=torch.Generator().manual_seed(3))
    assert torch.equal(default, ss.entropy(100, torch.Generator().manual_seed(3)))


def quadrature(f, lo, hi, n=2_000_001):
    v = torch.linspace(lo, hi, n, dtype=torch.float64)
    return float(torch.trapezoid(f(v), v))


def slab_density(m, xi):
    return lambda v: torch.exp(-((v - m) ** 2) / (2 * xi)) / math.sqrt(2 * math.pi * xi)


@pytest.mark.parametrize("pi,m,xi", [(0.3, 1.0, 0.05), (0.5, 0.0, 0.01), (0.8, -0.02, 0.02)])
def test_reference_converges_to_its_integral(pi, m, xi, gen):
    n = 200_000
    S = constant(pi, m, xi, n=2).entropy(n_samples=n, generator=gen)
    dens = slab_density(m, xi)
    box = lambda v: torch.where(v.abs() < 1e-4, 5000.0, 0.0)  # noqa: E731
    sd = math.sqrt(xi)
    n0 = float(dens(torch.tensor(0.0, dtype=torch.float64)))
    spike = -pi * math.log(pi + (1 - pi) * n0 + 1e-6)
    slab = quadrature(
        lambda v: dens(v) * torch.log(pi * box(v) + (1 - pi) * dens(v)), m - 12 * sd, m + 12 * sd
    )
    exact = spike - (1 - pi) * slab
    # 5 standard errors: sd of ln((1 - pi) N) is sqrt(1/2); the box adds < 0.3 in these cases
    assert float(S.max() - exact) < 5 / math.sqrt(n) and float(exact - S.min()) < 5 / math.sqrt(n)


@pytest.mark.parametrize("pi,m,xi", [(0.3, 1.0, 0.05), (0.5, 0.0, 0.01), (0.9, -0.4, 2.0)])
def test_counting_is_the_closed_form_of_its_integral(pi, m, xi):
    s = float(constant(pi, m, xi, n=1).entropy(convention="counting")[0])
    dens = slab_density(m, xi)
    sd = math.sqrt(xi)
    # density pi at the atom 0 (counting measure), (1 - pi) N elsewhere (Lebesgue measure)
    slab = -quadrature(
        lambda v: (1 - pi) * dens(v) * torch.log((1 - pi) * dens(v)), m - 12 * sd, m + 12 * sd
    )
    assert s == pytest.approx(-pi * math.log(pi) + slab, abs=1e-8)
    assert s == pytest.approx(h_binary(pi) + (1 - pi) * h_gauss(xi), rel=1e-12)


def test_counting_limits_and_point_masses():
    pi = torch.tensor([0.0, 1.0, 1 - 1e-12, 0.4, 0.4, 0.4, 0.0, 0.4], dtype=torch.float64)
    m = torch.tensor([0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    xi = torch.tensor([0.3, 0.3, 0.3, 0.0, 0.0, XI_FLOOR, 0.0, 2 * XI_FLOOR], dtype=torch.float64)
    S = SpikeSlab(pi, m, xi).entropy(convention="counting").tolist()
    assert S[0] == pytest.approx(h_gauss(0.3), rel=1e-12)  # pi -> 0: the slab's own entropy
    assert S[1] == 0 and S[2] == pytest.approx(0.0, abs=1e-10)  # continuous at pi = 1
    assert S[3] == pytest.approx(h_binary(0.4)) and S[5] == S[3]  # two atoms, 0 and m
    assert S[4] == 0 and S[6] == 0  # one atom
    assert S[7] == pytest.approx(h_binary(0.4) + 0.6 * h_gauss(2 * XI_FLOOR))  # just above


def test_counting_ignores_the_monte_carlo_arguments():
    ss = constant(0.3, 0.2, 0.1, n=5)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    a = ss.entropy(convention="counting")
    b = ss.entropy(7, gen, 1, convention="counting")
    assert torch.equal(a, b) and torch.equal(gen.get_state(), state)


def test_box_lies_about_pi_ln_b_below_the_reference():
    # a slab far from 0 (N(0 | m, xi) ~ 1e-4): neither the box nor the 1e-6 matter elsewhere
    pi = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64).repeat_interleave(20)
    ss = SpikeSlab(pi, torch.ones_like(pi), torch.full_like(pi, 0.05))
    n = 20_000
    gen = torch.Generator().manual_seed(2)
    box = ss.entropy(n, gen, convention="box").reshape(6, 20).mean(1)
    ref = ss.entropy(n, gen, convention="reference").reshape(6, 20).mean(1)
    count = ss.entropy(convention="counting").reshape(6, 20).mean(1)
    shift = pi.reshape(6, 20)[:, 0] * math.log(1 / SPIKE_BOX_WIDTH)
    # tolerance: 5 standard errors of 20 x 20,000 draws; the sd of -ln P is below 4.5 for the
    # box (spike draws near ln(b / pi), slab draws near 0) and below 1 for the reference
    tol = 5 * (4.5 + 1) / math.sqrt(20 * n)
    assert torch.allclose(box - ref, -shift, rtol=0, atol=tol), (box - ref + shift).tolist()
    assert torch.allclose(ref, count, rtol=0, atol=5 / math.sqrt(20 * n))
    assert shift[-1] > 7.5  # ln(1 / b) = 8.52 nats per absent connection


def test_reference_lies_below_counting_when_the_slab_covers_the_spike():
    pi, m, xi = 0.5, 0.0, 0.01
    n0 = 1 / math.sqrt(2 * math.pi * xi)
    ss = constant(pi, m, xi, n=20)
    ref = float(ss.entropy(20_000, torch.Generator().manual_seed(4)).mean())
    count = float(ss.entropy(convention="counting").mean())
    # the spike term adds the slab density at 0 to pi: -pi ln(1 + (1 - pi) N(0) / pi), up to
    # the 1e-6 and the overlap of box and slab (below 0.01 here) plus Monte-Carlo noise
    assert ref - count == pytest.approx(-pi * math.log(1 + (1 - pi) * n0 / pi), abs=0.02)


def test_entropy_keeps_shape_and_dtype():
    pi, m, xi = torch.full((3, 4), 0.3), torch.full((3, 4), 0.5), torch.full((3, 4), 0.1)
    for convention in ENTROPY_CONVENTIONS:
        S = SpikeSlab(pi, m, xi).entropy(convention=convention)
        assert S.shape == (3, 4) and S.dtype == torch.float32 and bool(torch.isfinite(S).all())


def test_bad_entropy_arguments_are_named():
    ss = constant(0.3, 0.2, 0.1, n=3)
    assert ENTROPY_CONVENTIONS == ("reference", "counting", "box")
    with pytest.raises(
        ValueError, match="convention must be one of 'reference', 'counting', 'box'"
    ):
        ss.entropy(convention="shannon")
    with pytest.raises(ValueError, match="n_samples must be positive"):
        ss.entropy(0, convention="reference")


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
