"""Generalized backpropagation (gBP), derived by hand, no autograd (chapter 3).

The network: z^{l+1} = G^l + eps^l * Delta^l (the moment equations of :mod:`mfbook.moments`),
h = ReLU(z) in hidden layers, softmax at the output, loss C = batch-mean cross-entropy.
With K^l = dC/dz^l the error signal, K^L = (softmax(z^L) - onehot(y)) / B, and
S_ik = eps_i h_k^2 / (N Delta_i), the gradients of one layer are (Li & Huang 2020; book
chapter 3, equations eq-ch3-dzdh to eq-ch3-grads)::

    dz_i/dh_k  = mu_ik / sqrt(N) + eps_i (rho_ik - mu_ik^2) h_k / (N Delta_i)
    K^l_k      = f'(z^l_k) * sum_i K^{l+1}_i dz_i/dh_k
    dC/dm_ik   = K_i [ (1 - pi_ik) h_k / sqrt(N) + pi_ik mu_ik S_ik ]
    dC/dxi_ik  = K_i [ (1/2) (1 - pi_ik) S_ik ]
    dC/dpi_ik  = K_i [ -m_ik h_k / sqrt(N) - (1/2) (xi_ik + (2 pi_ik - 1) m_ik^2) S_ik ]

summed over the batch (K already carries the 1/B). The "variance path" terms (those with S) are
set to 0 where Delta = 0. Organised as matrix products: two forward (mean and variance paths)
and four backward per layer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mfbook import _checks, kernels, noise

Params = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Forward(NamedTuple):
    """Everything the mean-field forward pass computes, layer by layer (chapter 3)."""

    h: list[torch.Tensor]  # inputs of each layer: h[0] = x, h[l] = ReLU(z[l-1])
    G: list[torch.Tensor]  # means of the pre-activations
    Delta: list[torch.Tensor]  # standard deviations of the pre-activations
    z: list[torch.Tensor]  # noisy pre-activations G + eps * Delta; z[-1] are the logits
    probs: torch.Tensor  # softmax(z[-1])


# --- one layer: the package's single implementation, also used by mfbook.nn -------------------
# The four elementwise steps below (mean_and_variance, preactivation_, backward_signals,
# weight_grads_) are written as torch expressions; on the CPU each runs as ONE fused pass of
# mfbook/_kernels.cpp when mfbook.kernels applies (same formulas; the tests compare the two).
class LayerCache(NamedTuple):
    """What the forward pass of one layer keeps for gBP (chapter 3), each computed once."""

    mu: torch.Tensor  # (1 - pi) m, the mean weight
    var: torch.Tensor  # (1 - pi)(xi + pi m^2), the weight variance rho - mu^2
    h2: torch.Tensor  # h^2, elementwise
    r: torch.Tensor  # eps / Delta, 0 where Delta = 0


def mean_weight(pi, m):
    """mu = (1 - pi) m (chapter 1), as m - pi m: the same arithmetic as :func:`mean_and_variance`
    and its fused kernel, so the mean network's numbers are the same whichever computed mu."""
    return torch.sub(m, pi * m)


def mean_and_variance(pi, m, xi):
    """mu = (1 - pi) m and Var[w] = rho - mu^2 = (1 - pi)(xi + pi m^2) (chapter 1)."""
    if kernels.applies(pi, m, xi):
        return kernels.ops().mean_and_variance(pi, m, xi)
    pi_m = pi * m
    s = torch.addcmul(xi, pi_m, m)
    return torch.sub(m, pi_m), torch.addcmul(s, pi, s, value=-1)


def mean_preactivation(h, mu):
    """G = h mu^T / sqrt(N) (chapter 2): the mean network's pre-activation; no input checks."""
    return torch.mm(h, mu.T).mul_(1 / math.sqrt(h.shape[1]))


def layer_moments(h, mu, var, h2=None):
    """G = h mu^T / sqrt(N) and Delta = sqrt(h^2 var^T / N) (chapter 2); no input checks."""
    n = h.shape[1]
    h2 = h * h if h2 is None else h2
    G = mean_preactivation(h, mu)
    Delta = torch.mm(h2, var.T).mul_(1 / n).sqrt_()
    return G, Delta


def preactivation_(G, D, eps, a: float, b: float, ratio: bool, relu: bool = False):
    """In place G <- a G and D <- Delta = sqrt(b D); returns (z = G + eps Delta, r) with r the
    noise ratio eps / Delta (:func:`noise_ratio`) when ``ratio``, else None (chapters 2-3).
    With ``relu``, ReLU(z) in place of z (a hidden layer's output h)."""
    if kernels.applies(G, D, eps):
        z, r = kernels.ops().preactivation_(G, D, eps, a, b, ratio, relu)
        return z, r if ratio else None
    Delta = D.mul_(b).sqrt_()
    z = torch.addcmul(G.mul_(a), eps, Delta)
    if relu:
        z.clamp_min_(0.0)
    return z, noise_ratio(eps, Delta) if ratio else None


def layer_forward(h, pi, m, xi, eps, keep: bool = False, relu: bool = False):
    """One noisy mean-field layer (chapters 2-3): (G, Delta, z = G + eps * Delta, cache).

    G is the mean network's pre-activation, z a new tensor (with ``relu``: ReLU(z), the next
    layer's input). ``cache`` is the :class:`LayerCache` that gBP needs with ``keep``, else None
    (inference keeps nothing). No input checks: callers validate.
    """
    mu, var, h2, G, Delta = _products(h, pi, m, xi)
    z, r = preactivation_(G, Delta, eps, *_scales(h), keep, relu)
    return G, Delta, z, LayerCache(mu, var, h2, r) if keep else None


def _products(h, pi, m, xi, h2=None):
    """(mu, var, h^2, h mu^T, h^2 var^T): the weight moments and the two matrix products of
    one layer, unscaled (the pass that follows applies :func:`_scales`)."""
    mu, var = mean_and_variance(pi, m, xi)
    h2 = h * h if h2 is None else h2
    return mu, var, h2, torch.mm(h, mu.T), torch.mm(h2, var.T)


def _scales(h) -> tuple[float, float]:
    """(1 / sqrt(N), 1 / N) for the input h of N units: G = h mu^T / sqrt(N), Delta^2 =
    h^2 var^T / N."""
    n = h.shape[1]
    return 1 / math.sqrt(n), 1 / n


def noisy_layer(h, pi, m, xi, generator=None, relu: bool = False, h2=None):
    """Inference through one noisy layer, no autograd: (out, out * out), with out = z =
    G + eps * Delta, or ReLU(z) with ``relu``; the square is the next layer's h^2.

    eps is drawn from ``generator`` as :func:`mfbook.noise.standard_normal` (B, N_out) draws it,
    so the numbers are those of :func:`layer_forward` with that eps. On the CPU, where
    :mod:`mfbook.kernels` applies, one pass computes eps, out and its square in place of the two
    products, and eps is never stored. ``h2``: h * h when the caller has it already.
    """
    G, D = _products(h, pi, m, xi, h2)[3:]
    if kernels.applies(G, D) and (source := noise.block_source(generator)) is not None:
        key, fill = source
        kernels.ops().noisy_output_(G, D, *_scales(h), relu, fill, key)
        return G, D
    eps = noise.standard_normal(*G.shape, generator=generator, dtype=G.dtype, device=G.device)
    out, _ = preactivation_(G, D, eps, *_scales(h), False, relu)
    return out, out * out


def noise_ratio(eps, Delta):
    """r = eps / Delta, set to 0 where Delta = 0: there the variance path is switched off."""
    return torch.div(eps, Delta).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def backward_signals(K, r, a: float, c: float, out=None):
    """(a K, c K r): the error signal K = dC/dz scaled, and dC/d(Delta^2) = K r / 2 scaled.

    With ``out``, the layer's ReLU output, K arrives as dC/dh and goes through the ReLU first:
    K = dC/dh where out > 0, else 0."""
    if kernels.applies(K, r, *(() if out is None else (out,))):
        return kernels.ops().backward_signals(K, r, a, c, out)
    if out is not None:
        K = torch.where(out > 0, K, 0.0)
    return K * a, torch.mul(K, r).mul_(c)


def weight_grads_(d_mu, d_var, pi, m, xi):
    """(d_pi, d_m, d_xi) from dC/dmu and dC/dVar (chapter 3, eq-ch3-grads); d_m is written over
    ``d_mu`` and d_xi over ``d_var``. With s = xi + pi m^2::

        d_m  = (1 - pi)(d_mu + 2 pi m d_var)
        d_xi = (1 - pi) d_var
        d_pi = -m d_mu + ((1 - 2 pi) m^2 - xi) d_var,  where (1 - 2 pi) m^2 - xi = mu m - s
    """
    if kernels.applies(d_mu, d_var, pi, m, xi):
        return kernels.ops().weight_grads_(d_mu, d_var, pi, m, xi)
    pi_m = pi * m
    s = torch.addcmul(xi, pi_m, m)
    d_pi = torch.sub(m, pi_m).mul_(m).sub_(s).mul_(d_var).addcmul_(m, d_mu, value=-1)
    d_m = d_mu.addcmul_(pi_m, d_var, value=2)
    d_m.addcmul_(pi, d_m, value=-1)
    d_xi = d_var.addcmul_(pi, d_var, value=-1)
    return d_pi, d_m, d_xi


def layer_backward(K, h, pi, m, xi, eps, Delta, need_input_grad=True):
    """gBP through one layer: given K = dC/dz, return (dC/dh or None, d_pi, d_m, d_xi).

    Chapter 3, equations eq-ch3-dvar and eq-ch3-grads. No input checks: callers validate.
    """
    cache = LayerCache(*mean_and_variance(pi, m, xi), h * h, noise_ratio(eps, Delta))
    return layer_backward_cached(K, h, pi, m, xi, cache, need_input_grad)


def layer_backward_cached(K, h, pi, m, xi, cache: LayerCache, need_input_grad=True, out=None):
    """:func:`layer_backward` from the forward pass's :class:`LayerCache` (used by mfbook.nn);
    with ``out`` (the ReLU output of a ``relu`` forward), K is dC/dh of that output."""
    dh, d_mu, d_var = backward_products(K, h, cache, need_input_grad, out)
    return dh, *weight_grads_(d_mu, d_var, pi, m, xi)


def backward_products(K, h, cache: LayerCache, need_input_grad=True, out=None):
    """(dC/dh or None, dC/dmu, dC/dVar) of one layer: the four matrix products of gBP.

    With r = eps / Delta, dC/d(Delta^2) = K r / 2. The 1/sqrt(N) and 1/(2N) factors go on the
    (B, N_out) signals, not on the (N_out, N_in) matrices. :func:`weight_grads_` turns dC/dmu and
    dC/dVar into the gradients of pi, m, xi.
    """
    n = h.shape[1]
    mu, var, h2, r = cache
    # K / sqrt(N) and dC/d(Delta^2) / N
    K, Q = backward_signals(K, r, 1 / math.sqrt(n), 1 / (2 * n), out)
    dh = None
    if need_input_grad:
        dh = torch.mm(K, mu).addcmul_(h, torch.mm(Q, var), value=2)  # + 2 h (Q var)
    return dh, torch.mm(K.T, h), torch.mm(Q.T, h2)


# --- the whole network ---------------------------------------------------------------------
def check_params(params) -> None:
    """Validate a list of (pi, m, xi) layers whose shapes chain: (N1, N0), (N2, N1), ..."""
    if not isinstance(params, list | tuple) or len(params) == 0:
        raise TypeError("params must be a non-empty list of (pi, m, xi) tuples, one per layer")
    for l, layer in enumerate(params):
        if not isinstance(layer, list | tuple) or len(layer) != 3:
            raise TypeError(f"params[{l}] must be a (pi, m, xi) tuple")
        _checks.spike_slab_params(*layer, ndim=2)
        if l > 0 and layer[0].shape[1] != params[l - 1][0].shape[0]:
            raise ValueError(
                f"params[{l}] has N_in = {layer[0].shape[1]} but params[{l - 1}] has "
                f"N_out = {params[l - 1][0].shape[0]}; shapes must chain (N_out, N_in)"
            )
    _checks.same_dtype_device(
        tuple(f"params[{l}]" for l in range(len(params))), [p[0] for p in params]
    )


def _check_inputs(params, x, eps, y=None) -> None:
    check_params(params)
    _checks.tensor("x", x, ndim=2)
    _checks.same_dtype_device(("x", "params"), (x, params[0][0]))
    if x.shape[1] != params[0][0].shape[1]:
        raise ValueError(f"x must have shape (B, {params[0][0].shape[1]}), got {tuple(x.shape)}")
    if not isinstance(eps, list | tuple) or len(eps) != len(params):
        raise ValueError(f"eps must be a list of {len(params)} tensors, one per layer")
    for l, (e, (pi, _, _)) in enumerate(zip(eps, params, strict=True)):
        _checks.tensor(f"eps[{l}]", e, ndim=2)
        if e.shape != (x.shape[0], pi.shape[0]):
            raise ValueError(
                f"eps[{l}] must have shape (B, N_out) = {(x.shape[0], pi.shape[0])}, "
                f"got {tuple(e.shape)}"
            )
    if y is not None:
        check_labels(y, x.shape[0], params[-1][0].shape[0])


def check_labels(y, batch: int, n_classes: int) -> None:
    """Integer class labels of shape (B,) with values in [0, n_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of int64 labels, got {type(y).__name__}")
    if y.dtype != torch.int64:
        raise TypeError(f"y must have dtype int64 (class labels), got {y.dtype}")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape ({batch},) to match x, got {tuple(y.shape)}")
    if bool(((y < 0) | (y >= n_classes)).any()):
        raise ValueError(
            f"y must hold labels in [0, {n_classes}), got [{int(y.min())}, {int(y.max())}]"
        )


def forward(params: Params, x: torch.Tensor, eps: list[torch.Tensor]) -> Forward:
    """Mean-field forward pass with explicit noise ``eps`` (chapter 3, equation eq-ch3-forward)."""
    _check_inputs(params, x, eps)
    return _forward(params, x, eps)


def _forward(params, x, eps, caches=None) -> Forward:
    """The forward pass; with a list ``caches``, each layer's :class:`LayerCache` is appended."""
    hs, Gs, Deltas, zs = [x], [], [], []
    for l, ((pi, m, xi), e) in enumerate(zip(params, eps, strict=True)):
        G, Delta, z, cache = layer_forward(hs[-1], pi, m, xi, e, keep=caches is not None)
        if caches is not None:
            caches.append(cache)
        Gs.append(G)
        Deltas.append(Delta)
        zs.append(z)
        if l < len(params) - 1:
            hs.append(torch.relu(z))
    return Forward(hs, Gs, Deltas, zs, torch.softmax(zs[-1], dim=1))


def loss(params: Params, x: torch.Tensor, y: torch.Tensor, eps: list[torch.Tensor]) -> torch.Tensor:
    """Batch-mean cross-entropy C of the noisy mean-field network (chapter 3, eq-ch3-loss)."""
    _check_inputs(params, x, eps, y)
    logits = _forward(params, x, eps).z[-1]
    return -torch.log_softmax(logits, dim=1).gather(1, y[:, None]).mean()


def gradients(
    params: Params, x: torch.Tensor, y: torch.Tensor, eps: list[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """dC/d(pi, m, xi) for every layer by generalized backprop (chapter 3), same eps as forward."""
    _check_inputs(params, x, eps, y)
    caches: list[LayerCache] = []
    fw = _forward(params, x, eps, caches)
    B = x.shape[0]
    K = fw.probs.clone()
    K[torch.arange(B, device=x.device), y] -= 1
    K /= B
    grads = []
    for l in reversed(range(len(params))):
        dh, *g = layer_backward_cached(K, fw.h[l], *params[l], caches[l], need_input_grad=l > 0)
        grads.append(tuple(g))
        if l > 0:
            K = dh * (fw.z[l - 1] > 0)  # ReLU'(z)
    return grads[::-1]
