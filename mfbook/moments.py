"""Central-limit moment equations of one layer (chapter 2).

Given the layer input h (B, N_in) and spike-and-slab weights (N_out, N_in), the pre-activation
z_i = (1/sqrt(N_in)) sum_k w_ik h_k is a sum of N_in independent terms; by the central limit
theorem it is Gaussian with (Li & Huang 2020, eq. (2); book chapter 2)::

    G_i     = (1/sqrt(N_in)) sum_k mu_ik h_k
    Delta_i = sqrt( (1/N_in) sum_k (rho_ik - mu_ik^2) h_k^2 )      (a standard deviation)

and z = G + eps * Delta with eps ~ Normal(0, 1): the noise lives on the pre-activations.
"""

from __future__ import annotations

import math

import torch

from mfbook import _checks
from mfbook.spike_slab import SpikeSlab, mean_weight, weight_variance


def _check_layer(h, pi, m, xi) -> SpikeSlab:
    _checks.tensor("h", h, ndim=2)
    _checks.spike_slab_params(pi, m, xi, ndim=2)
    _checks.same_dtype_device(("h", "pi"), (h, pi))
    if h.shape[1] != pi.shape[1]:
        raise ValueError(
            f"h must have shape (B, N_in) with N_in = {pi.shape[1]} (the parameters' second "
            f"dimension), got h of shape {tuple(h.shape)}"
        )
    return SpikeSlab(pi, m, xi)


def mean_preactivation(h: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """G = h mu^T / sqrt(N_in) (chapter 2, eq-ch02-G), from the mean weights mu; no input checks.

    The scale is applied as a product with 1 / sqrt(N_in), as the fused kernels of
    :mod:`mfbook.fast` apply it, so the mean network computes the same numbers on every path."""
    return (h @ mu.T) * (1 / math.sqrt(h.shape[1]))


def preactivation_std(h: torch.Tensor, var: torch.Tensor, h2=None) -> torch.Tensor:
    """Delta = sqrt(h^2 Var^T / N_in) (chapter 2, eq-ch02-Delta), from the weight variances;
    ``h2``: h * h when the caller has it already. No input checks."""
    h2 = h * h if h2 is None else h2
    return ((h2 @ var.T) * (1 / h.shape[1])).sqrt()


def preactivation_moments(
    h: torch.Tensor, pi: torch.Tensor, m: torch.Tensor, xi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean G and standard deviation Delta of the pre-activations, both (B, N_out).

    Book chapter 2. ``h`` is (B, N_in); ``pi``, ``m``, ``xi`` are (N_out, N_in).
    """
    _check_layer(h, pi, m, xi)
    G = mean_preactivation(h, mean_weight(pi, m))
    return G, preactivation_std(h, weight_variance(pi, m, xi))


def sample_preactivations(
    h: torch.Tensor,
    pi: torch.Tensor,
    m: torch.Tensor,
    xi: torch.Tensor,
    n_networks: int,
    generator: torch.Generator | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Pre-activations of ``n_networks`` concretely sampled sub-networks, (n_networks, B, N_out).

    The Monte-Carlo counterpart of :func:`preactivation_moments` (chapter 2): every network draws
    all of its weights from the spike-and-slab distribution, then computes
    z = (1/sqrt(N_in)) w h exactly. Sampled ``chunk`` networks at a time to bound memory.
    """
    ss = _check_layer(h, pi, m, xi)
    n_networks = _checks.positive_int("n_networks", n_networks)
    chunk = _checks.positive_int("chunk", chunk)
    n_in = h.shape[1]
    stacked = SpikeSlab(*(t.detach().expand(chunk, *t.shape) for t in (ss.pi, ss.m, ss.xi)))
    out = []
    for start in range(0, n_networks, chunk):
        w = stacked.sample(generator)[: n_networks - start]  # (c, N_out, N_in)
        out.append(torch.einsum("cok,bk->cbo", w, h) / math.sqrt(n_in))
    return torch.cat(out)


def gaussian_ks_distance(
    samples: torch.Tensor, G: torch.Tensor, Delta: torch.Tensor
) -> torch.Tensor:
    """Kolmogorov-Smirnov distance between samples and Normal(G, Delta^2), per variable.

    ``samples`` is (n, *shape), ``G`` and ``Delta`` have ``shape``; returns a tensor of ``shape``:
    sup_z |F_n(z) - Phi((z - G) / Delta)|. Chapter 2 uses it to show where the CLT holds.
    """
    _checks.tensor("samples", samples)
    if samples.shape[1:] != G.shape or G.shape != Delta.shape:
        raise ValueError(
            f"samples must have shape (n, *G.shape) and Delta the shape of G, got samples "
            f"{tuple(samples.shape)}, G {tuple(G.shape)}, Delta {tuple(Delta.shape)}"
        )
    n = samples.shape[0]
    x = samples.sort(dim=0).values
    cdf = 0.5 * (1 + torch.erf((x - G) / (Delta * math.sqrt(2))))
    ranks = torch.arange(1, n + 1, dtype=x.dtype, device=x.device).reshape(-1, *[1] * G.ndim)
    return torch.maximum(ranks / n - cdf, cdf - (ranks - 1) / n).amax(dim=0)
