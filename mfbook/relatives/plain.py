"""Plain backprop: the book's baseline network, one set of weights (Rumelhart, Hinton & Williams,
Nature 1986).

The network of the ``paper_bp`` preset (:class:`mfbook.nn.PlainMLP`): z = (1/sqrt(N_in)) w h, no
bias, ReLU hidden, w ~ Normal(0, m_var) at the start. The objective is the data loss alone, the
cross-entropy C; in the book's symbols this is gBP's network with pi = 0 and Xi = 0 everywhere
(chapter 7), so E_eps[C] = C. Pruning criterion: |w|.
"""

from __future__ import annotations

import torch

from mfbook.nn import M_VAR, PlainMLP
from mfbook.relatives.base import Relative


class Backprop(Relative):
    """Plain backprop on :class:`mfbook.nn.PlainMLP` (same initialisation and forward pass)."""

    stochastic = False

    def __init__(self, sizes=(784, 100, 100, 10), *, m_var: float = M_VAR):
        super().__init__(sizes)
        self.net = PlainMLP(list(self.sizes), m_var=m_var)

    @property
    def weights(self) -> list[torch.nn.Parameter]:
        return list(self.net.weights)

    def reset_parameters(self, generator=None) -> None:
        self.net.reset_parameters(generator)

    def forward(self, x, generator=None):
        return self.net.logits(x)

    def mean_logits(self, x):
        return self.net.logits(x)

    def prune_scores(self) -> list[torch.Tensor]:
        return [w.detach().abs() for w in self.weights]

    def _prune_(self, keep) -> None:
        for w, k in zip(self.weights, keep, strict=True):
            w.mul_(k.to(w.dtype))
