"""The spike-and-slab ensemble of one weight layer (chapter 1).

Every connection w_ik is a random variable (Li & Huang 2020, eq. (1); book chapter 1)::

    P(w) = pi * delta(w) + (1 - pi) * Normal(w | m, xi)

pi is the probability that the connection is ABSENT, m the slab mean and xi the slab VARIANCE.
Drawing every connection once gives one concrete, sparse network: a sub-network.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mfbook import _checks

# The entropy's conventions and constants live in mfbook.entropy (chapter 1); re-exported here.
from mfbook.entropy import ENTROPY_CONVENTIONS as ENTROPY_CONVENTIONS
from mfbook.entropy import SPIKE_BOX_WIDTH as SPIKE_BOX_WIDTH
from mfbook.entropy import XI_FLOOR as XI_FLOOR
from mfbook.entropy import connection_entropy


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

    # --- entropy (chapters 1 and 6) --------------------------------------------------------
    def entropy(
        self,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 22,
        convention: str = "reference",
    ) -> torch.Tensor:
        """Per-connection entropy in nats, relative to the reference measure of ``convention``
        (chapter 1, "No entropy without a reference measure"); see
        :func:`mfbook.entropy.connection_entropy` for the formulas.

        * ``"reference"`` (default, eq-ch01-entropy-reference): the estimator of the paper's
          entropy analysis (Li & Huang 2020): the spike term -pi ln(pi + (1-pi) N(0|m,xi) + 1e-6)
          exactly, the slab term by Monte Carlo with ``n_samples`` draws (default 100);
        * ``"counting"`` (eq-ch01-entropy-counting): H_b(pi) + (1-pi) ln(2 pi e xi) / 2, exact,
          relative to counting measure at 0 plus Lebesgue measure (ignores the other arguments);
        * ``"box"`` (eq-ch01-entropy-box): the spike as a uniform box of width 2e-4, Monte Carlo
          with ``n_samples`` draws (default 1000); about pi ln(1/b) below ``"reference"``.

        All three give 0 for pi == 1 and for deterministic weights (xi <= 1e-8 and m == 0 or
        pi == 0) and the Bernoulli entropy H_b(pi) for xi <= 1e-8, 0 < pi < 1, m != 0. Values can
        be negative: the slab part is a differential entropy. ``convention`` must be one of
        :data:`ENTROPY_CONVENTIONS`.
        """
        return connection_entropy(self.pi, self.m, self.xi, convention, n_samples, generator, chunk)
