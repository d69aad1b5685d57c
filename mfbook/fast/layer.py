"""The fused CPU path of one mean-field layer: gBP's elementwise steps in one pass each.

Torch runs each expression of the reference :mod:`mfbook.gbp` as its own pass over memory; on
the CPU that costs about as much as the extra matrix products. Here the same formulas run in
the C++ kernels of ``_kernels.cpp`` (:mod:`mfbook.fast.kernels`): the weight moments, the noisy
pre-activation with its noise ratio and a hidden layer's ReLU, the two backward signals with the
ReLU's backward, the three weight gradients, and an inference pass that draws its own eps.

The functions have the signatures of their reference counterparts in :mod:`mfbook.gbp`, and
:mod:`mfbook.nn` calls them only where :func:`mfbook.fast.kernels.applies` (float32,
contiguous CPU tensors). The tests compare each with the reference to float32 rounding.
"""

from __future__ import annotations

import math

import torch

from mfbook.fast import kernels, noise
from mfbook.gbp import LayerCache


def mean_and_variance(pi, m, xi):
    """(mu, Var) of every weight (chapter 1) in one pass."""
    return kernels.ops().mean_and_variance(pi, m, xi)


def _scales(h) -> tuple[float, float]:
    """(1 / sqrt(N), 1 / N) for the input h of N units."""
    n = h.shape[1]
    return 1 / math.sqrt(n), 1 / n


def _products(h, pi, m, xi, h2=None):
    """(mu, var, h^2, h mu^T, h^2 var^T): the weight moments and the two matrix products of
    one layer, unscaled (the pass that follows applies :func:`_scales`)."""
    mu, var = mean_and_variance(pi, m, xi)
    h2 = h * h if h2 is None else h2
    return mu, var, h2, torch.mm(h, mu.T), torch.mm(h2, var.T)


def layer_forward(h, pi, m, xi, eps, keep: bool = False, relu: bool = False):
    """:func:`mfbook.gbp.layer_forward`: the two products, then ONE pass that scales them and
    computes Delta, z (or ReLU(z)) and, with ``keep``, the noise ratio r = eps / Delta."""
    mu, var, h2, G, D = _products(h, pi, m, xi)
    z, r = kernels.ops().preactivation_(G, D, eps, *_scales(h), keep, relu)
    return G, D, z, LayerCache(mu, var, h2, r) if keep else None


def mean_layer(h, pi, m, xi):
    """:func:`mfbook.gbp.mean_layer`, with mu from the fused moments."""
    mu = mean_and_variance(pi, m, xi)[0]
    return torch.mm(h, mu.T).mul_(_scales(h)[0])


def noisy_layer(h, pi, m, xi, generator=None, relu: bool = False, h2=None):
    """Inference through one noisy layer, no autograd: (out, out * out), with out = z =
    G + eps * Delta, or ReLU(z) with ``relu``; the square is the next layer's h^2.

    One pass computes eps, out and its square in place of the two products, and eps is never
    stored; its numbers are those that :func:`mfbook.fast.noise.standard_normal` would draw
    from ``generator`` for (B, N_out), so the result equals :func:`layer_forward` with them.
    ``h2``: h * h when the caller has it already.
    """
    G, D = _products(h, pi, m, xi, h2)[3:]
    source = noise.block_source(generator)
    if source is None:  # a generator on another device: draw eps first
        eps = noise.standard_normal(*G.shape, generator=generator)
        out, _ = kernels.ops().preactivation_(G, D, eps, *_scales(h), False, relu)
        return out, out * out
    key, fill = source
    kernels.ops().noisy_output_(G, D, *_scales(h), relu, fill, key)
    return G, D


def weight_grads_(d_mu, d_var, pi, m, xi):
    """:func:`mfbook.gbp.weight_grads` in one pass; d_m is written over ``d_mu`` and d_xi over
    ``d_var``."""
    return kernels.ops().weight_grads_(d_mu, d_var, pi, m, xi)


def backward_products(K, h, cache: LayerCache, need_input_grad=True, out=None):
    """(dC/dh or None, dC/dmu, dC/dVar) of one layer: the four matrix products of gBP, with
    the 1/sqrt(N) and 1/(2N) factors (and the ReLU's backward, with ``out``) applied to the
    (B, N_out) signals in one pass, not to the (N_out, N_in) matrices."""
    n = h.shape[1]
    mu, var, h2, r = cache
    K, Q = kernels.ops().backward_signals(K.contiguous(), r, 1 / math.sqrt(n), 1 / (2 * n), out)
    dh = None
    if need_input_grad:
        dh = torch.mm(K, mu).addcmul_(h, torch.mm(Q, var), value=2)  # + 2 h (Q var)
    return dh, torch.mm(K.T, h), torch.mm(Q.T, h2)


def layer_backward_cached(K, h, pi, m, xi, cache: LayerCache, need_input_grad=True, out=None):
    """:func:`mfbook.gbp.layer_backward_cached` on the fused path."""
    dh, d_mu, d_var = backward_products(K, h, cache, need_input_grad, out)
    return dh, *weight_grads_(d_mu, d_var, pi, m, xi)
