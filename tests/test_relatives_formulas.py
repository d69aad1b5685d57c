"""The relatives of gBP (chapter 10) against their papers' formulas: the Gaussian KL of Bayes by
Backprop, Molchanov et al.'s approximation of the KL of sparse variational dropout, the clipping of
ln alpha, the local reparameterisation trick against sampled weights, and inverted dropout."""

import math

import numpy as np
import pytest
import torch

from mfbook import relatives
from mfbook.relatives import base, bbb, dropout, sparse_vd

# ---------------------------------------------------------------- Bayes by Backprop: Gaussian KL


def kl_by_quadrature(mu, sigma, s, n=400_001):
    """KL(N(mu, sigma^2) || N(0, s^2)) = int q ln(q/p), by the trapezoid rule on +-12 sigma."""
    t = np.linspace(mu - 12 * sigma, mu + 12 * sigma, n)
    log_q = -0.5 * ((t - mu) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
    log_p = -0.5 * (t / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
    return float(np.trapezoid(np.exp(log_q) * (log_q - log_p), t))


@pytest.mark.parametrize(
    ("mu", "sigma", "s"), [(0.0, 1.0, 1.0), (0.3, 0.05, 1.0), (-2.0, 0.5, 0.3)]
)
def test_the_gaussian_kl_is_the_integral_of_q_ln_q_over_p(mu, sigma, s):
    got = bbb.gaussian_kl(torch.tensor([mu]), torch.tensor([sigma]), s)
    assert float(got) == pytest.approx(kl_by_quadrature(mu, sigma, s), rel=1e-5, abs=1e-7)


def test_the_gaussian_kl_sums_over_weights_and_matches_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 4, generator=g, dtype=torch.float64)
    sigma = 0.1 + torch.rand(5, 4, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, sigma)
    p = torch.distributions.Normal(0.0, torch.tensor(0.7, dtype=torch.float64))
    w = mu + sigma * torch.randn(200_000, 5, 4, generator=g, dtype=torch.float64)
    mc = (q.log_prob(w) - p.log_prob(w)).sum((1, 2))
    got = float(bbb.gaussian_kl(mu, sigma, 0.7))
    assert abs(got - float(mc.mean())) < 5 * float(mc.std()) / math.sqrt(w.shape[0])
    assert got == pytest.approx(float(torch.distributions.kl_divergence(q, p).sum()), rel=1e-12)


def test_the_kl_of_the_model_is_the_sum_over_its_layers():
    model = relatives.build("bbb", sizes=(6, 5, 3), seed=1, prior_sigma=0.5, sigma_init=0.2)
    want = sum(
        float(bbb.gaussian_kl(mu.detach(), s.detach(), 0.5))
        for mu, s in zip(model.mu, model.sigmas(), strict=True)
    )
    assert float(model.kl().detach()) == pytest.approx(want, rel=1e-6)
    assert [float(s.detach().max()) for s in model.sigmas()] == pytest.approx([0.2, 0.2], rel=1e-5)


# ------------------------------------------------------- sparse VD: the KL and its ln alpha


def expected_log_abs_normal(a, n=2_000_001, width=12.0):
    """E ln|X| for X ~ N(a, 1), by the midpoint rule (the log singularity at 0 is integrable)."""
    t = np.linspace(a - width, a + width, n)
    mid = (t[:-1] + t[1:]) / 2
    phi = np.exp(-0.5 * (mid - a) ** 2) / math.sqrt(2 * math.pi)
    return float(np.sum(phi * np.log(np.abs(mid))) * (t[1] - t[0]))


def test_the_integrator_gives_the_known_mean_of_ln_abs_eps():
    # E ln|eps| = -(gamma + ln 2) / 2 for eps ~ N(0, 1)
    assert expected_log_abs_normal(0.0) == pytest.approx(
        -(np.euler_gamma + math.log(2)) / 2, abs=1e-4
    )


def test_molchanovs_approximation_is_within_001_of_the_true_kl():
    """KL(N(theta, alpha theta^2) || log-uniform) = -ln(alpha)/2 + E ln|1 + sqrt(alpha) eps| + C
    with C = (gamma + ln 2)/2, so that KL -> 0 as alpha -> infinity (Molchanov et al. 2017)."""
    c = (np.euler_gamma + math.log(2)) / 2
    worst = 0.0
    for la in np.linspace(-8, 8, 33):
        # E ln|1 + sqrt(alpha) eps| = ln(alpha)/2 + E ln|eps + 1/sqrt(alpha)|
        true = -0.5 * la + (0.5 * la + expected_log_abs_normal(math.exp(-la / 2))) + c
        approx = float(sparse_vd.kl_approx(torch.tensor([la], dtype=torch.float64)))
        worst = max(worst, abs(approx - true))
    assert worst < 0.012  # the fit is good to about 0.01 nats per weight
    assert (sparse_vd.K1, sparse_vd.K2, sparse_vd.K3) == (0.63576, 1.87320, 1.48695)


def test_the_kl_approximation_has_the_papers_limits():
    la = torch.tensor([-50.0, 50.0], dtype=torch.float64)
    small, large = (float(sparse_vd.kl_approx(v[None])) for v in la)
    assert small == pytest.approx(sparse_vd.K1 + 25.0, rel=1e-9)  # k1 - ln(alpha)/2
    assert large == pytest.approx(0.0, abs=1e-12)


def test_log_alpha_is_ln_sigma2_over_theta2_clipped():
    theta = torch.tensor([0.5, 0.5, 1e-9, 3.0, 0.0], dtype=torch.float64)
    log_sigma2 = torch.tensor([math.log(0.25 * 0.02), 30.0, 0.0, -100.0, -math.inf])
    la = sparse_vd.log_alpha(theta, log_sigma2.double())
    lo, hi = sparse_vd.LOG_ALPHA_BOUNDS
    assert float(la[0]) == pytest.approx(math.log(0.02), rel=1e-6)
    assert la[1:].tolist() == [hi, hi, lo, lo]
    theta.requires_grad_(True)
    sparse_vd.log_alpha(theta, log_sigma2.double()).sum().backward()
    assert theta.grad[1:].abs().max() == 0  # no gradient through a clipped value


def test_the_deterministic_network_cuts_at_ln_alpha_3():
    model = relatives.build("sparse_vd", sizes=(4, 2), seed=0).double()
    with torch.no_grad():
        model.theta[0].fill_(1.0)
        model.log_sigma2[0].copy_(torch.tensor([[2.9, 3.1, -5.0, 10.0]] * 2))
    x = torch.eye(4, dtype=torch.float64)
    kept = (model.mean_logits(x) != 0).all(1)
    assert kept.tolist() == [True, False, True, False]


# ------------------------------------------------------ the local reparameterisation trick


@pytest.mark.parametrize("name", ["bbb", "sparse_vd"])
def test_lrt_draws_have_the_mean_and_variance_of_sampled_weights(name):
    n_in, n_out, n = 30, 3, 40_000
    model = relatives.build(name, sizes=(n_in, n_out), seed=2).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # noise of the same order as the signal
        if name == "bbb":
            model.rho[0].copy_(torch.randn(n_out, n_in, generator=g, dtype=torch.float64) - 3)
            mean_w, var_w = model.mu[0], model.sigmas()[0] ** 2
        else:
            model.log_sigma2[0].copy_(torch.randn(n_out, n_in, generator=g).double() - 6)
            mean_w, var_w = model.theta[0], model.log_sigma2[0].exp()
    h = torch.rand(1, n_in, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z_lrt = model(h.expand(n, n_in), g)
        w = mean_w + var_w.sqrt() * torch.randn(n, n_out, n_in, generator=g, dtype=torch.float64)
        z_w = torch.einsum("bok,k->bo", w, h[0]) / math.sqrt(n_in)
    G = (h @ mean_w.T / math.sqrt(n_in))[0]
    var = ((h * h) @ var_w.T / n_in)[0]
    for z in (z_lrt, z_w):
        assert (z.mean(0) - G).abs().max() < 5 * float(var.max().sqrt()) / math.sqrt(n)
        assert torch.allclose(z.var(0), var, rtol=0.05)


def test_lrt_has_no_noise_and_a_finite_gradient_where_the_variance_is_0():
    h = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    var_w = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    z = base.lrt(h, torch.ones(1, 2, dtype=torch.float64), var_w)
    assert z[:, 0].tolist() == [1 / math.sqrt(2), 0.0]  # Delta^2 = 0 for both rows
    z.sum().backward()
    assert torch.isfinite(var_w.grad).all()


def test_lrt_draws_fresh_noise_per_example_and_unit():
    g = torch.Generator().manual_seed(0)
    h = torch.ones(5000, 4, dtype=torch.float64)
    z = base.lrt(
        h, torch.zeros(2, 4, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64), g
    )
    r = torch.corrcoef(z.T)[0, 1]
    assert abs(float(r)) < 0.05 and float(z.std()) == pytest.approx(1.0, rel=0.05)


# ------------------------------------------------------------------------- dropout


def test_inverted_dropout_keeps_the_mean_and_drops_at_the_rate():
    g = torch.Generator().manual_seed(0)
    h = torch.ones(200_000, dtype=torch.float64)
    out = dropout.drop(h, 0.3, g)
    assert float((out == 0).double().mean()) == pytest.approx(0.3, abs=0.005)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.01)
    assert dropout.drop(h, 0.0, g) is h


def test_mc_dropout_of_one_layer_averages_to_the_weight_scaled_network():
    model = relatives.build("mc_dropout", sizes=(20, 3), seed=0, p_input=0.4).double()
    x = torch.rand(1, 20, dtype=torch.float64).expand(50_000, 20)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        z = model(x, g)
        exact = model.mean_logits(x[:1])[0]
    assert (z.mean(0) - exact).abs().max() < 5 * float(z.std(0).max()) / math.sqrt(x.shape[0])
    assert float(z.std(0).min()) > 0
