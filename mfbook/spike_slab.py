"""The spike-and-slab ensemble of one weight layer (chapter 1).

Every connection w_ik is a random variable (Li & Huang 2020, eq. (1); book chapter 1)::

    P(w) = pi * delta(w) + (1 - pi) * Normal(w | m, xi)

pi is the probability that the connection is ABSENT, m the slab mean and xi the slab VARIANCE.
Drawing every connection once gives one concrete, sparse network: a sub-network.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mfbook import _checks

#: The entropy's box convention (chapters 1 and 6): the spike is a box of this width.
SPIKE_BOX_WIDTH = 2e-4
#: Below this slab variance a connection counts as deterministic in the entropy.
XI_FLOOR = 1e-8


def mean_weight(pi: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """mu = E[w] = (1 - pi) m, elementwise (chapter 1, eq-ch01-mu).

    Computed as m - pi m, the arithmetic of the fused kernels too, so the mean network gives
    the same numbers on every path."""
    return m - pi * m


def weight_variance(pi: torch.Tensor, m: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """Var[w] = rho - mu^2 = (1 - pi)(xi + pi m^2), elementwise (chapter 1, eq-ch01-var).

    Written as a product of non-negative factors, so it is never negative; rho - mu^2 computed
    as written could be, by rounding."""
    return (1 - pi) * (xi + pi * m**2)


class Categories(NamedTuple):
    """Boolean masks of the three kinds of connection (chapter 5); they partition the layer."""

    vip: torch.Tensor  # very important: pi == 0 and xi == 0, always present, weight m
    uip: torch.Tensor  # unimportant: pi == 1, always absent
    variable: torch.Tensor  # everything else


class SpikeSlab:
    """Spike-and-slab distribution over a weight tensor, one independent factor per connection.

    ``pi``, ``m`` and ``xi`` are tensors of one shape, (N_out, N_in) for a layer. They are used as
    given (no copy, no gradient tracking is added or removed).
    """

    def __init__(self, pi: torch.Tensor, m: torch.Tensor, xi: torch.Tensor):
        _checks.spike_slab_params(pi, m, xi)
        self.pi, self.m, self.xi = pi, m, xi

    def __repr__(self) -> str:
        return f"SpikeSlab(shape={tuple(self.pi.shape)}, dtype={self.pi.dtype})"

    @property
    def shape(self) -> torch.Size:
        return self.pi.shape

    # --- moments (chapter 1) -----------------------------------------------------------
    def mean(self) -> torch.Tensor:
        """mu = E[w] = (1 - pi) m (:func:`mean_weight`)."""
        return mean_weight(self.pi, self.m)

    def second_moment(self) -> torch.Tensor:
        """rho = E[w^2] = (1 - pi)(m^2 + xi)."""
        return (1 - self.pi) * (self.m**2 + self.xi)

    def variance(self) -> torch.Tensor:
        """Var[w] = rho - mu^2 (:func:`weight_variance`)."""
        return weight_variance(self.pi, self.m, self.xi)

    # --- sampling --------------------------------------------------------------------------
    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One concrete weight tensor: exactly 0 with probability pi, else Normal(m, xi).

        Draws uniforms for the spike first, then standard normals for the slab, from ``generator``
        (which must live on the parameters' device), so a seed fixes the sub-network.
        """
        kw = {"generator": generator, "dtype": self.pi.dtype, "device": self.pi.device}
        absent = torch.rand(self.shape, **kw) < self.pi
        slab = self.m + self.xi.sqrt() * torch.randn(self.shape, **kw)
        return torch.where(absent, torch.zeros_like(slab), slab)

    # --- credit assignment (chapter 5) -----------------------------------------------------
    def categories(self, atol: float = 0.0) -> Categories:
        """VIP / UIP / variable masks.

        With the paper's projection step pi and xi reach 0 and 1 exactly, so the default compares
        exactly (``atol=0``). For other parameterisations pass a tolerance: VIP is then
        ``pi <= atol and xi <= atol`` and UIP ``pi >= 1 - atol``.
        """
        if not (0.0 <= atol < 0.5):
            raise ValueError(f"atol must lie in [0, 0.5), got {atol!r}")
        vip = (self.pi <= atol) & (self.xi <= atol)
        uip = self.pi >= 1 - atol
        return Categories(vip, uip, ~(vip | uip))

    # --- entropy (chapter 1 and 6) ---------------------------------------------------------
    def entropy(
        self,
        n_samples: int = 1000,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 22,
    ) -> torch.Tensor:
        """Per-connection entropy in nats, with the spike as a box of width 2e-4 (chapters 1, 6).

        * 0 if pi == 1 (always absent);
        * 0 if xi <= 1e-8 and (m == 0 or pi == 0) (deterministic weight);
        * the Bernoulli entropy -pi ln pi - (1-pi) ln(1-pi) if xi <= 1e-8 and 0 < pi < 1;
        * otherwise a Monte-Carlo estimate of -E[ln P(w)] with ``n_samples`` draws, the spike
          treated as a uniform box of width 2e-4 around 0 (so values can be negative: the slab
          part is a differential entropy).
        """
        n_samples = _checks.positive_int("n_samples", n_samples)
        pi, m, xi = (t.detach().reshape(-1) for t in (self.pi, self.m, self.xi))
        out = torch.zeros_like(pi)
        tiny = xi <= XI_FLOOR
        bern = tiny & (pi > 0) & (pi < 1) & (m != 0)
        p = pi[bern]
        out[bern] = -(p * p.log() + (1 - p) * (1 - p).log())
        mc = ~tiny & (pi < 1)
        idx = mc.nonzero().squeeze(1)
        step = max(1, chunk // n_samples)
        for start in range(0, idx.numel(), step):
            sel = idx[start : start + step]
            out[sel] = _mc_entropy(pi[sel], m[sel], xi[sel], n_samples, generator)
        return out.reshape(self.shape)


def _mc_entropy(pi, m, xi, n_samples, generator):
    """-E[ln P(w)] by Monte Carlo for 0 <= pi < 1, xi > 0 (spike = box of width SPIKE_BOX_WIDTH)."""
    kw = {"generator": generator, "dtype": pi.dtype, "device": pi.device}
    shape = (pi.numel(), n_samples)
    pi, m, xi = pi[:, None], m[:, None], xi[:, None]
    spike = torch.rand(shape, **kw) < pi
    box = (torch.rand(shape, **kw) - 0.5) * SPIKE_BOX_WIDTH
    w = torch.where(spike, box, m + xi.sqrt() * torch.randn(shape, **kw))
    log_slab = (1 - pi).log() - 0.5 * (2 * math.pi * xi).log() - (w - m) ** 2 / (2 * xi)
    in_box = w.abs() <= SPIKE_BOX_WIDTH / 2
    log_spike = torch.where(
        in_box, pi.log() - math.log(SPIKE_BOX_WIDTH), torch.full_like(w, -math.inf)
    )
    return -torch.logaddexp(log_spike, log_slab).mean(dim=1)
