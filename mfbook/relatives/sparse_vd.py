"""Sparse variational dropout (Molchanov, Ashukha & Vetrov, "Variational dropout sparsifies deep
neural networks", ICML 2017).

Each weight of the baseline network (z = (1/sqrt(N_in)) w h, no bias) is Gaussian multiplicative
noise on a mean theta, w = theta (1 + sqrt(alpha) eps), in the additive parameterisation
w ~ N(theta, sigma^2) with alpha = sigma^2 / theta^2 (their section 4.4), trained with the local
reparameterisation z = G + eps Delta (:func:`~mfbook.relatives.base.lrt`): G from theta, Delta^2
from sigma^2. The prior is log-uniform, p(|w|) proportional to 1/|w|; the KL term depends on alpha
alone, and the paper's fit to it (their equation 14) is

    -KL(alpha) ~ k1 sigmoid(k2 + k3 ln alpha) - 0.5 ln(1 + 1/alpha) - k1,
    k1 = 0.63576, k2 = 1.87320, k3 = 1.48695,

summed over the weights. The objective is E_q[C] + KL / N_train per training example. A weight
with a large alpha is pure noise: the deterministic network keeps theta where ln alpha < 3 and
removes the rest (their section 4.5), "absent" reached by a cut, where gBP's projection sets pi = 1
exactly (chapter 7). Pruning criterion: ln alpha (the largest go first).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mfbook.nn import M_VAR
from mfbook.relatives.base import Relative, lrt

K1, K2, K3 = 0.63576, 1.87320, 1.48695
#: ln alpha is clipped to this range: ln(theta^2) is -inf at theta = 0, and the fit of the KL
#: was made on a bounded range.
LOG_ALPHA_BOUNDS = (-10.0, 10.0)
#: Weights with ln alpha >= THRESHOLD are removed in the deterministic network.
THRESHOLD = 3.0


def log_alpha(theta, log_sigma2) -> torch.Tensor:
    """ln alpha = ln sigma^2 - ln theta^2, clipped to :data:`LOG_ALPHA_BOUNDS`."""
    return torch.clamp(log_sigma2 - torch.log(theta * theta + 1e-8), *LOG_ALPHA_BOUNDS)


def kl_approx(la) -> torch.Tensor:
    """Molchanov et al.'s approximation of KL(q || log-uniform prior) summed over ``la`` = ln
    alpha: k1 - k1 sigmoid(k2 + k3 ln alpha) + 0.5 ln(1 + 1/alpha), in nats."""
    return (K1 - K1 * torch.sigmoid(K2 + K3 * la) + 0.5 * F.softplus(-la)).sum()


class SparseVD(Relative):
    """Weights N(theta, exp(log_sigma2)), log-uniform prior, LRT; the cut at ln alpha = 3."""

    def __init__(self, sizes=(784, 100, 100, 10), *, log_sigma2_init=-10.0, m_var=M_VAR):
        super().__init__(sizes)
        if not (isinstance(log_sigma2_init, int | float) and math.isfinite(log_sigma2_init)):
            raise ValueError(f"log_sigma2_init must be a finite number, got {log_sigma2_init!r}")
        self.log_sigma2_init, self.m_var = log_sigma2_init, m_var
        shapes = list(zip(self.sizes[1:], self.sizes[:-1], strict=True))
        self.theta = nn.ParameterList(nn.Parameter(torch.empty(s)) for s in shapes)
        self.log_sigma2 = nn.ParameterList(nn.Parameter(torch.empty(s)) for s in shapes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator=None) -> None:
        """theta ~ Normal(0, m_var) like the baseline's w; ln sigma^2 = log_sigma2_init."""
        for theta, ls2 in zip(self.theta, self.log_sigma2, strict=True):
            theta.normal_(0.0, math.sqrt(self.m_var), generator=generator)
            ls2.fill_(self.log_sigma2_init)

    def log_alphas(self) -> list[torch.Tensor]:
        return [log_alpha(t, s) for t, s in zip(self.theta, self.log_sigma2, strict=True)]

    def decayed_parameters(self) -> list[nn.Parameter]:
        return []

    def scale_parameters(self) -> list[nn.Parameter]:
        return list(self.log_sigma2)

    def forward(self, x, generator=None):
        th, ls2 = self.theta, self.log_sigma2
        return self.stack(x, lambda l, h: lrt(h, th[l], torch.exp(ls2[l]), generator))

    def mean_logits(self, x):
        kept = [t * (la < THRESHOLD) for t, la in zip(self.theta, self.log_alphas(), strict=True)]
        return self.stack(x, lambda l, h: h @ kept[l].T / math.sqrt(h.shape[1]))

    def kl(self) -> torch.Tensor:
        return sum(kl_approx(la) for la in self.log_alphas())

    def prune_scores(self) -> list[torch.Tensor]:
        return [-la.detach() for la in self.log_alphas()]

    def _prune_(self, keep) -> None:
        for theta, ls2, k in zip(self.theta, self.log_sigma2, keep, strict=True):
            theta.masked_fill_(~k, 0.0)
            ls2.masked_fill_(~k, -math.inf)  # sigma^2 = 0: the weight is exactly 0
