"""The entropy of one spike-and-slab connection, in three conventions (chapter 1).

A connection with P(w) = pi delta(w) + (1 - pi) N(w | m, xi) (chapter 1, eq-ch01-sas) has a point
mass and a density at once, so it has no entropy until a reference measure is chosen, and the
number depends on the choice (chapter 1, "No entropy without a reference measure"). Per
connection, in nats:

* ``"reference"`` (eq-ch01-entropy-reference): the estimator behind the per-layer entropy profile
  of Li & Huang, Phys. Rev. Lett. 125, 178301 (2020); it weighs the spike against counting
  measure and the slab against Lebesgue measure with the spike as a box;
* ``"counting"`` (eq-ch01-entropy-counting): exact, relative to counting measure at 0 plus
  Lebesgue measure elsewhere;
* ``"box"`` (eq-ch01-entropy-box, approximated by eq-ch01-entropy): the spike smeared into a
  uniform box of width ``SPIKE_BOX_WIDTH`` = b, relative to Lebesgue measure, by Monte Carlo.

The three share the connections without a slab density (chapter 1, cases 1-3): S = 0 if pi == 1;
S = 0 if xi <= ``XI_FLOOR`` and (m == 0 or pi == 0); S = H_b(pi) if xi <= ``XI_FLOOR``,
0 < pi < 1 and m != 0. Where the slab is far from 0 (pi >> (1 - pi) N(0 | m, xi)) the reference
and counting values agree and the box value is lower by about pi ln(1/b) (eq-ch01-entropy-shift).
"""

from __future__ import annotations

import math

import torch

from mfbook import _checks

#: The conventions of :func:`connection_entropy`, the default first (chapter 1).
ENTROPY_CONVENTIONS = ("reference", "counting", "box")
#: The spike's box (chapters 1 and 6): width b of the box, height 1/b.
SPIKE_BOX_WIDTH = 2e-4
#: At or below this slab variance a connection counts as deterministic in the entropy.
XI_FLOOR = 1e-8
#: The constant added inside the spike's logarithm by the reference convention.
REFERENCE_EPS = 1e-6
#: Monte-Carlo draws per connection when ``n_samples`` is None; "reference" uses the authors' 100.
DEFAULT_SAMPLES = {"reference": 100, "box": 1000}


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H_b(p) = -p ln p - (1 - p) ln(1 - p) in nats, with 0 ln 0 = 0 (chapter 1)."""
    h = -(p * p.log() + (1 - p) * (1 - p).log())
    return torch.where((p == 0) | (p == 1), torch.zeros_like(h), h)


def connection_entropy(
    pi: torch.Tensor,
    m: torch.Tensor,
    xi: torch.Tensor,
    convention: str = "reference",
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 1 << 22,
) -> torch.Tensor:
    """Per-connection entropy in nats, a tensor of the shape of ``pi`` (chapter 1).

    ``convention`` is one of :data:`ENTROPY_CONVENTIONS`:

    * ``"reference"`` (chapter 1, eq-ch01-entropy-reference), for a connection with 0 <= pi < 1
      and xi > XI_FLOOR::

          S = -pi ln(pi + (1 - pi) N(0 | m, xi) + 1e-6)
              - (1 - pi) E_{v ~ N(m, xi)}[ ln(pi d(v) + (1 - pi) N(v | m, xi)) ]

      with d(v) = 1/b on the open interval |v| < b/2 and 0 elsewhere (b = SPIKE_BOX_WIDTH,
      height 5000). The first term is exact: it adds the probability pi of the spike and the
      slab's density at 0, two quantities of different units, and is 0 when pi == 0. The
      expectation is a Monte-Carlo mean over ``n_samples`` draws v = m + sqrt(xi) z (default 100,
      as in the paper's analysis of Li & Huang 2020); no draw comes from the spike. The draws
      are one standard-normal array (connections, n_samples) per chunk, a row per connection.
    * ``"counting"`` (chapter 1, eq-ch01-entropy-counting), exact, no Monte Carlo: relative to
      counting measure at 0 plus Lebesgue measure elsewhere the density is pi at 0 and
      (1 - pi) N(w | m, xi) elsewhere, so S = H_b(pi) + (1 - pi) ln(2 pi e xi) / 2. A slab with
      xi <= XI_FLOOR is taken as the point mass at m, counted like the spike (the reference
      measure gains counting measure at m): S = H_b(pi) for m != 0 and 0 for m == 0, the cases
      the other conventions share. The price is a jump of about 7.8 (1 - pi) nats at the floor.
    * ``"box"`` (chapter 1, eq-ch01-entropy-box): -E[ln P_b(w)] under
      P_b(w) = (pi / b) 1[|w| <= b/2] + (1 - pi) N(w | m, xi), a density against Lebesgue
      measure, by Monte Carlo with ``n_samples`` draws of w from P_b (default 1000), box included.

    All three give the shared cases of the module docstring (0 for pi == 1 and for deterministic
    weights, H_b(pi) for a coin-flip weight). ``generator`` and ``chunk`` (draws per batch) matter
    only to the Monte-Carlo conventions; ``"counting"`` ignores them and ``n_samples``.
    """
    _checks.choice("convention", convention, ENTROPY_CONVENTIONS)
    shape = pi.shape
    pi, m, xi = (t.detach().reshape(-1) for t in (pi, m, xi))
    out = torch.zeros_like(pi)
    tiny = xi <= XI_FLOOR
    coin = tiny & (pi > 0) & (pi < 1) & (m != 0)
    out[coin] = binary_entropy(pi[coin])
    slab = ~tiny & (pi < 1)  # the connections with a slab density
    if convention == "counting":
        p, x = pi[slab], xi[slab]
        out[slab] = binary_entropy(p) + (1 - p) * 0.5 * torch.log(2 * math.pi * math.e * x)
        return out.reshape(shape)
    if n_samples is None:
        n_samples = DEFAULT_SAMPLES[convention]
    n_samples = _checks.positive_int("n_samples", n_samples)
    estimate = _reference_mc if convention == "reference" else _box_mc
    idx = slab.nonzero().squeeze(1)
    step = max(1, chunk // n_samples)
    for start in range(0, idx.numel(), step):
        sel = idx[start : start + step]
        out[sel] = estimate(pi[sel], m[sel], xi[sel], n_samples, generator)
    return out.reshape(shape)


def _log_mixture(w, pi, m, xi, in_box):
    """ln(pi / b [in_box] + (1 - pi) N(w | m, xi)): the box density of eq-ch01-entropy-box."""
    log_slab = (1 - pi).log() - 0.5 * (2 * math.pi * xi).log() - (w - m) ** 2 / (2 * xi)
    log_spike = torch.where(
        in_box, pi.log() - math.log(SPIKE_BOX_WIDTH), torch.full_like(w, -math.inf)
    )
    return torch.logaddexp(log_spike, log_slab)


def _box_mc(pi, m, xi, n_samples, generator):
    """The box convention for 0 <= pi < 1, xi > 0: draws from the spike's box and the slab."""
    kw = {"generator": generator, "dtype": pi.dtype, "device": pi.device}
    shape = (pi.numel(), n_samples)
    pi, m, xi = pi[:, None], m[:, None], xi[:, None]
    spike = torch.rand(shape, **kw) < pi
    box = (torch.rand(shape, **kw) - 0.5) * SPIKE_BOX_WIDTH
    w = torch.where(spike, box, m + xi.sqrt() * torch.randn(shape, **kw))
    return -_log_mixture(w, pi, m, xi, w.abs() <= SPIKE_BOX_WIDTH / 2).mean(dim=1)


def _reference_mc(pi, m, xi, n_samples, generator):
    """The reference convention for 0 <= pi < 1, xi > 0: exact spike term, slab by Monte Carlo."""
    kw = {"generator": generator, "dtype": pi.dtype, "device": pi.device}
    z = torch.randn((pi.numel(), n_samples), **kw)
    w = m[:, None] + xi.sqrt()[:, None] * z
    log_p = _log_mixture(w, pi[:, None], m[:, None], xi[:, None], w.abs() < SPIKE_BOX_WIDTH / 2)
    density_at_0 = torch.exp(-(m**2) / (2 * xi)) / torch.sqrt(2 * math.pi * xi)
    spike = -pi * torch.log(pi + (1 - pi) * density_at_0 + REFERENCE_EPS)
    return spike - (1 - pi) * log_p.mean(dim=1)
