"""MC dropout: dropout in training and at test time, predictions averaged over masks (Gal &
Ghahramani, "Dropout as a Bayesian approximation", ICML 2016; dropout: Srivastava et al., JMLR
2014).

The baseline network (:mod:`mfbook.relatives.plain`) with inverted dropout on the input of every
layer: rate ``p_input`` on the image, ``p`` on the hidden units. As chapter 7 shows, a dropped
input is a spike-and-slab weight with pi = p FIXED, slab mean m/(1 - p) and Xi = 0; the objective
is E_mask[C] plus the decoupled weight decay (Gal and Ghahramani's prior length-scale), where
gBP learns pi per connection. Prediction: the mean softmax over ``n_samples`` masks
(:meth:`~mfbook.relatives.base.Relative.predict`), or, with ``n_samples=0``, the weight-scaled
network without masks. Pruning criterion: |w|, as for plain backprop.
"""

from __future__ import annotations

import math

import torch

from mfbook.nn import M_VAR
from mfbook.relatives.base import check_rate
from mfbook.relatives.plain import Backprop


def drop(h, p: float, generator=None):
    """Inverted dropout: each entry kept with probability 1 - p and then divided by 1 - p."""
    if p == 0:
        return h
    keep = torch.rand(h.shape, generator=generator, dtype=h.dtype, device=h.device) >= p
    return h * keep / (1 - p)


class MCDropout(Backprop):
    """Plain weights, dropout rate ``p`` on hidden units and ``p_input`` on the image."""

    stochastic = True

    def __init__(self, sizes=(784, 100, 100, 10), *, p=0.2, p_input=0.0, m_var: float = M_VAR):
        super().__init__(sizes, m_var=m_var)
        self.p, self.p_input = check_rate("p", p), check_rate("p_input", p_input)

    def forward(self, x, generator=None):
        def layer(l, h):
            h = drop(h, self.p_input if l == 0 else self.p, generator)
            w = self.weights[l]
            return h @ w.T / math.sqrt(w.shape[1])

        return self.stack(x, layer)
