"""Moment equations against Monte Carlo over many concretely sampled networks (chapter 2)."""

import math

import pytest
import torch

from mfbook.moments import gaussian_ks_distance, preactivation_moments, sample_preactivations

N_NETWORKS = 20_000


def layer(n_in, n_out, gen, pi_max=0.8):
    pi = pi_max * torch.rand(n_out, n_in, generator=gen, dtype=torch.float64)
    m = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
    xi = 0.3 * torch.rand(n_out, n_in, generator=gen, dtype=torch.float64)
    return pi, m, xi


def test_moments_agree_with_monte_carlo(gen):
    pi, m, xi = layer(300, 4, gen)
    h = torch.rand(3, 300, generator=gen, dtype=torch.float64)
    G, Delta = preactivation_moments(h, pi, m, xi)
    z = sample_preactivations(h, pi, m, xi, N_NETWORKS, generator=gen)
    assert z.shape == (N_NETWORKS, 3, 4)
    # Tolerance: 5 standard errors. SE of the mean is Delta / sqrt(n); SE of the sample std of a
    # near-Gaussian variable is Delta / sqrt(2 n).
    n = N_NETWORKS
    assert ((z.mean(0) - G).abs() <= 5 * Delta / math.sqrt(n)).all()
    assert ((z.std(0) - Delta).abs() <= 5 * Delta / math.sqrt(2 * n)).all()
    # and the distribution is Gaussian: KS distance at the level of sampling noise (~1/sqrt(n))
    assert float(gaussian_ks_distance(z, G, Delta).max()) < 0.02


def test_clt_is_poor_for_tiny_fan_in(gen):
    """Two inputs, mostly absent connections: the moments are still exact, the shape is not."""
    pi = torch.full((4, 2), 0.7, dtype=torch.float64)
    m = torch.ones(4, 2, dtype=torch.float64)
    xi = torch.full((4, 2), 0.01, dtype=torch.float64)
    h = torch.ones(1, 2, dtype=torch.float64)
    G, Delta = preactivation_moments(h, pi, m, xi)
    z = sample_preactivations(h, pi, m, xi, N_NETWORKS, generator=gen)
    assert ((z.mean(0) - G).abs() <= 5 * Delta / math.sqrt(N_NETWORKS)).all()
    ks = gaussian_ks_distance(z, G, Delta)
    assert float(ks.min()) > 0.2  # half the mass sits at exactly z = 0: far from a Gaussian


def test_ks_distance_detects_a_shifted_mean(gen):
    samples = torch.randn(20_000, 1, generator=gen, dtype=torch.float64)
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    assert float(gaussian_ks_distance(samples, zero, one)) < 0.02
    assert float(gaussian_ks_distance(samples, zero + 0.5, one)) > 0.15


def test_moments_are_exact_formulas(gen):
    pi, m, xi = layer(5, 2, gen)
    h = torch.rand(1, 5, generator=gen, dtype=torch.float64)
    G, Delta = preactivation_moments(h, pi, m, xi)
    mu, rho = (1 - pi) * m, (1 - pi) * (m**2 + xi)
    assert torch.allclose(G[0], (mu * h[0]).sum(1) / math.sqrt(5))
    assert torch.allclose(Delta[0] ** 2, ((rho - mu**2) * h[0] ** 2).sum(1) / 5)


@pytest.mark.parametrize(
    "h,match",
    [
        (torch.rand(3, 6, dtype=torch.float64), r"h must have shape \(B, N_in\) with N_in = 5"),
        (torch.rand(5, dtype=torch.float64), "h must be a 2-D tensor"),
        (torch.rand(0, 5, dtype=torch.float64), "h must not be empty"),
        (torch.full((2, 5), float("inf"), dtype=torch.float64), "h contains NaN or inf"),
        (torch.rand(2, 5), "must share dtype"),
    ],
)
def test_bad_inputs_are_named(h, match, gen):
    with pytest.raises((ValueError, TypeError), match=match):
        preactivation_moments(h, *layer(5, 2, gen))
