"""gBP itself, behind the interface of the other methods (Li & Huang, "Learning credit assignment",
Phys. Rev. Lett. 125, 178301, 2020).

The spike-and-slab ensemble of :class:`mfbook.nn.MeanFieldMLP` (chapters 3-4): each weight is 0
with probability pi, else Normal(m, Xi); the forward pass samples z = G + eps Delta from the
moments, the backward pass is gBP, and the objective is the ensemble-averaged data loss E_eps[C]
with no KL term, plus the decoupled weight decay on m and Xi. The optimiser is the book's
:class:`mfbook.optim.MeanFieldAdam` (Adam, decay, projection of pi to [0, 1] and Xi to >= 0), so
a training step here is exactly a step of chapter 4 (without the reset of Adam every epoch,
which the shared loop does not do). Prediction: the mean network (``n_samples=0``) or the mean
softmax over mean-field passes. Pruning criterion: 1 - pi, the probability that a connection is
present (the connections most often absent go first; ties, such as the many pi = 0, are broken
by |(1 - pi) m|, the size of the mean weight). A removed connection gets pi = 1.
"""

from __future__ import annotations

import torch

from mfbook.nn import M_VAR, XI_MAX, MeanFieldMLP
from mfbook.optim import MeanFieldAdam
from mfbook.relatives.base import Relative

#: The weight of the tie-break by |(1 - pi) m| in :meth:`GBP.prune_scores` (float64 scores).
TIE_BREAK = 1e-9


class GBP(Relative):
    """The mean-field ensemble of the book, trained by gBP."""

    def __init__(self, sizes=(784, 100, 100, 10), *, m_var=M_VAR, xi_max=XI_MAX, pi_init=0.0):
        super().__init__(sizes)
        self.net = MeanFieldMLP(list(self.sizes), m_var=m_var, xi_max=xi_max, pi_init=pi_init)

    def reset_parameters(self, generator=None) -> None:
        self.net.reset_parameters(generator)

    def forward(self, x, generator=None):
        return self.net.logits(x, "mf", None, generator)

    def mean_logits(self, x):
        return self.net.logits(x, "mean")

    def make_optimizer(self, lr: float, weight_decay: float = 0.0, scale_lr=None):
        """The book's optimiser (``scale_lr`` does not apply: Xi has the learning rate of m)."""
        return MeanFieldAdam(self.net, lr=lr, weight_decay=weight_decay)

    def prune_scores(self) -> list[torch.Tensor]:
        scores = []
        for layer in self.net.layers:
            present = 1 - layer.pi.detach().double()
            size = (present * layer.m.detach().double()).abs()
            scores.append(present + TIE_BREAK * size / size.max().clamp_min(1e-300))
        return scores

    def _prune_(self, keep) -> None:
        for layer, k in zip(self.net.layers, keep, strict=True):
            layer.pi.masked_fill_(~k, 1.0)
