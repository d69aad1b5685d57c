"""Bayes by Backprop with the local reparameterisation trick (Blundell, Cornebise, Kavukcuoglu &
Wierstra, "Weight uncertainty in neural networks", ICML 2015; Kingma, Salimans & Welling,
"Variational dropout and the local reparameterization trick", NeurIPS 2015).

A factorised Gaussian posterior q(w) = N(mu, sigma^2), sigma = softplus(rho) > 0, on the weights of
the baseline network (z = (1/sqrt(N_in)) w h, no bias), and a Gaussian prior p(w) = N(0, s^2).
Training minimises the negative evidence lower bound per training example,
E_q[C] + KL(q || p) / N_train, sampling pre-activations, z = G + eps Delta (:func:`~mfbook.
relatives.base.lrt`): gBP's forward pass for Gaussian weights, with pi = 0, m = mu and Xi =
sigma^2 (chapter 7), plus the KL term that gBP does not have. Its closed form (Blundell et al.,
equation of the Gaussian case), summed over the weights:

    KL = sum [ ln(s / sigma) + (sigma^2 + mu^2) / (2 s^2) - 1/2 ].

Prediction: the mean softmax over ``n_samples`` passes, or the posterior means (``n_samples=0``).
Pruning criterion: the signal-to-noise ratio |mu| / sigma (Blundell et al., section 5.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mfbook.nn import M_VAR
from mfbook.relatives.base import Relative, lrt


def gaussian_kl(mu, sigma, prior_sigma: float) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, prior_sigma^2)) summed over all entries, in nats."""
    s2 = prior_sigma**2
    return (math.log(prior_sigma) - torch.log(sigma) + (sigma**2 + mu**2) / (2 * s2) - 0.5).sum()


class BayesByBackprop(Relative):
    """Gaussian weights N(mu, softplus(rho)^2), prior N(0, prior_sigma^2), trained with the LRT."""

    def __init__(self, sizes=(784, 100, 100, 10), *, prior_sigma=1.0, sigma_init=1e-3, m_var=M_VAR):
        super().__init__(sizes)
        for name, v in (("prior_sigma", prior_sigma), ("sigma_init", sigma_init)):
            if not (isinstance(v, int | float) and 0 < v < math.inf):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        self.prior_sigma, self.sigma_init, self.m_var = prior_sigma, sigma_init, m_var
        shapes = list(zip(self.sizes[1:], self.sizes[:-1], strict=True))
        self.mu = nn.ParameterList(nn.Parameter(torch.empty(s)) for s in shapes)
        self.rho = nn.ParameterList(nn.Parameter(torch.empty(s)) for s in shapes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator=None) -> None:
        """mu ~ Normal(0, m_var) like the baseline's w; sigma = sigma_init everywhere."""
        for mu, rho in zip(self.mu, self.rho, strict=True):
            mu.normal_(0.0, math.sqrt(self.m_var), generator=generator)
            rho.fill_(math.log(math.expm1(self.sigma_init)))  # softplus(rho) = sigma_init

    def sigmas(self) -> list[torch.Tensor]:
        return [F.softplus(rho) for rho in self.rho]

    def decayed_parameters(self) -> list[nn.Parameter]:
        return []

    def scale_parameters(self) -> list[nn.Parameter]:
        return list(self.rho)

    def forward(self, x, generator=None):
        sig = self.sigmas()
        return self.stack(x, lambda l, h: lrt(h, self.mu[l], sig[l] ** 2, generator))

    def mean_logits(self, x):
        return self.stack(x, lambda l, h: h @ self.mu[l].T / math.sqrt(h.shape[1]))

    def kl(self) -> torch.Tensor:
        pairs = zip(self.mu, self.sigmas(), strict=True)
        return sum(gaussian_kl(mu, s, self.prior_sigma) for mu, s in pairs)

    def prune_scores(self) -> list[torch.Tensor]:
        return [(mu.abs() / s).detach() for mu, s in zip(self.mu, self.sigmas(), strict=True)]

    def _prune_(self, keep) -> None:
        for mu, rho, k in zip(self.mu, self.rho, keep, strict=True):
            mu.masked_fill_(~k, 0.0)
            rho.masked_fill_(~k, -math.inf)  # sigma = softplus(-inf) = 0: the weight is 0
