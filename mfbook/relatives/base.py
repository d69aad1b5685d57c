"""What every relative of gBP offers the shared training loop and metrics (chapter 10).

Every method is a :class:`Relative`: the network of the book's baseline (chapter 4), bias-free
layers z = (1/sqrt(N_in)) w h with ReLU between them, whose weights are random in one way or
another. One interface serves them all:

* ``forward(x, generator)``: logits of ONE stochastic pass (dropout masks, or the local
  reparameterisation's eps, drawn from ``generator``): the training pass, always stochastic,
  whatever ``train()``/``eval()`` say; plain backprop is deterministic;
* ``mean_logits(x)``: the method's deterministic network (plain weights, weight scaling for
  dropout, the posterior means, sparse VD's thresholded means, gBP's mean network);
* :meth:`Relative.predict`: class probabilities, from ``mean_logits`` (``n_samples=0``) or the
  average of the softmax of ``n_samples`` stochastic passes;
* ``kl()``: the KL term of a variational method, in nats (0 for the others);
* ``prune_scores()``: per weight matrix, each weight's importance by the method's own criterion
  (the lowest go first), and :meth:`Relative.pruned`, a copy without the weights of a mask.

:func:`lrt` is the local reparameterisation trick (Kingma, Salimans & Welling, NeurIPS 2015):
for independent Gaussian weights w ~ N(mu, s^2) and a fixed input h, z = (1/sqrt N) w h is
Gaussian with mean G = (1/sqrt N) mu h and variance Delta^2 = (1/N) s^2 h^2, the same
z = G + eps Delta that gBP samples (chapter 7), exact here because the weights are Gaussian.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from mfbook import _checks


def check_sizes(sizes) -> tuple[int, ...]:
    if not isinstance(sizes, list | tuple) or len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output width, got {sizes!r}")
    return tuple(_checks.positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes))


def check_rate(name: str, value, upper_open: bool = True) -> float:
    """A probability in [0, 1) (or [0, 1] with ``upper_open=False``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not (0 <= value < 1 if upper_open else 0 <= value <= 1):
        raise ValueError(f"{name} must lie in [0, 1{')' if upper_open else ']'}, got {value!r}")
    return float(value)


def lrt(h, mean_w, var_w, generator=None):
    """One draw of z = G + eps * Delta for Gaussian weights N(mean_w, var_w), shape (n_out, n_in),
    with G = h mean_w^T / sqrt(N_in), Delta^2 = h^2 var_w^T / N_in, eps ~ N(0, 1) per example
    and unit, drawn from ``generator``. Delta = 0 exactly where Delta^2 = 0 (a unit whose weights
    were all removed), with a gradient of 0 there instead of sqrt's infinite one."""
    n = h.shape[1]
    G = h @ mean_w.T / math.sqrt(n)
    var = (h * h) @ var_w.T / n
    eps = torch.randn(G.shape, generator=generator, dtype=G.dtype, device=G.device)
    positive = var > 0
    delta = torch.where(positive, torch.where(positive, var, 1.0).sqrt(), 0.0)
    return G + eps * delta


class Relative(nn.Module):
    """The interface of a method of comparison (see the module docstring)."""

    #: Whether ``forward`` is random (then ``predict(x, n_samples >= 1)`` averages passes).
    stochastic = True

    def __init__(self, sizes):
        super().__init__()
        self.sizes = check_sizes(sizes)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def stack(self, x, layer):
        """``h <- layer(l, h)`` for l = 0 .. L-1 from h = x, ReLU between the layers."""
        h = x
        for l in range(self.n_layers):
            h = layer(l, h)
            if l < self.n_layers - 1:
                h = torch.relu(h)
        return h

    def forward(self, x, generator=None):  # pragma: no cover - every method defines it
        raise NotImplementedError

    def mean_logits(self, x):  # pragma: no cover
        raise NotImplementedError

    def reset_parameters(self, generator=None) -> None:  # pragma: no cover
        raise NotImplementedError

    def prune_scores(self) -> list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def _prune_(self, keep: list[torch.Tensor]) -> None:  # pragma: no cover
        raise NotImplementedError

    def kl(self) -> torch.Tensor:
        """The KL term in nats; 0 for a method without one."""
        return torch.zeros((), dtype=self.dtype)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def decayed_parameters(self) -> list[nn.Parameter]:
        """The parameters that the decoupled weight decay shrinks (the weights, not the noise
        scales); variational methods have their KL instead and decay nothing by default."""
        return list(self.parameters())

    def scale_parameters(self) -> list[nn.Parameter]:
        """The parameters of the noise's scale on a log-like axis (rho of Bayes by Backprop,
        ln sigma^2 of sparse VD), which may take their own learning rate; none by default."""
        return []

    def make_optimizer(
        self, lr: float, weight_decay: float = 0.0, scale_lr: float | None = None
    ) -> torch.optim.Optimizer:
        """Adam with decoupled weight decay (p <- (1 - lr * weight_decay) p, as the book's
        optimiser) on :meth:`decayed_parameters`, none on the others; ``scale_lr`` (default:
        ``lr``) for :meth:`scale_parameters`."""
        decayed = {id(p) for p in self.decayed_parameters()}
        scales = {id(p) for p in self.scale_parameters()}
        groups = [
            {"params": [], "weight_decay": weight_decay, "lr": lr},
            {"params": [], "weight_decay": 0.0, "lr": lr},
            {"params": [], "weight_decay": 0.0, "lr": lr if scale_lr is None else scale_lr},
        ]
        for p in self.parameters():
            groups[0 if id(p) in decayed else 2 if id(p) in scales else 1]["params"].append(p)
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)

    def check_input(self, x) -> None:
        _checks.tensor("x", x, ndim=2)
        if x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (B, {self.sizes[0]}), got {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"x must have dtype {self.dtype} like the model, got {x.dtype}")

    @torch.no_grad()
    def predict(self, x, n_samples: int = 0, generator=None) -> torch.Tensor:
        """Class probabilities (B, classes): softmax of :meth:`mean_logits` for ``n_samples=0``,
        else the mean of the softmax of ``n_samples`` passes of ``forward`` (noise from
        ``generator``); a deterministic method ignores ``n_samples``."""
        self.check_input(x)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
            raise ValueError(f"n_samples must be a non-negative int, got {n_samples!r}")
        if n_samples == 0 or not self.stochastic:
            return torch.softmax(self.mean_logits(x), dim=1)
        probs = torch.zeros(x.shape[0], self.sizes[-1], dtype=x.dtype, device=x.device)
        for _ in range(n_samples):
            probs += torch.softmax(self(x, generator), dim=1)
        return probs / n_samples

    def n_weights(self) -> int:
        return sum(s.numel() for s in self.prune_scores())

    @torch.no_grad()
    def pruned(self, keep: list[torch.Tensor]) -> Relative:
        """A copy of the model without the weights where ``keep`` (one bool tensor per weight
        matrix, the shapes of :meth:`prune_scores`) is False: each removed weight is exactly 0
        in every pass, deterministic or stochastic."""
        shapes = [tuple(s.shape) for s in self.prune_scores()]
        got = [tuple(k.shape) if isinstance(k, torch.Tensor) else None for k in keep]
        if not isinstance(keep, list | tuple) or got != shapes:
            raise ValueError(f"keep must be bool tensors of shapes {shapes}, got {got}")
        if any(k.dtype != torch.bool for k in keep):
            raise ValueError("keep must hold bool tensors (True: the weight stays)")
        new = copy.deepcopy(self)
        new._prune_(list(keep))
        return new
