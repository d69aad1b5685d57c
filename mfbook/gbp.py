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

from mfbook import _checks

Params = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Forward(NamedTuple):
    """Everything the mean-field forward pass computes, layer by layer (chapter 3)."""

    h: list[torch.Tensor]  # inputs of each layer: h[0] = x, h[l] = ReLU(z[l-1])
    G: list[torch.Tensor]  # means of the pre-activations
    Delta: list[torch.Tensor]  # standard deviations of the pre-activations
    z: list[torch.Tensor]  # noisy pre-activations G + eps * Delta; z[-1] are the logits
    probs: torch.Tensor  # softmax(z[-1])


# --- one layer: the package's single implementation, also used by mfbook.nn -------------------
class LayerCache(NamedTuple):
    """What the forward pass of one layer keeps for gBP (chapter 3), each computed once."""

    mu: torch.Tensor  # (1 - pi) m, the mean weight
    var: torch.Tensor  # (1 - pi)(xi + pi m^2), the weight variance rho - mu^2
    pi_m: torch.Tensor  # pi m
    s: torch.Tensor  # xi + pi m^2, so that var = (1 - pi) s
    h2: torch.Tensor  # h^2, elementwise
    r: torch.Tensor  # eps / Delta, 0 where Delta = 0


def mean_weight(pi, m):
    """mu = (1 - pi) m (chapter 1), in one elementwise pass."""
    return torch.addcmul(m, pi, m, value=-1)


def weight_moments(pi, m, xi):
    """(mu, var, pi m, s) with s = xi + pi m^2 and var = (1 - pi) s: four elementwise passes."""
    mu = mean_weight(pi, m)
    pi_m = pi * m
    s = torch.addcmul(xi, pi_m, m)
    var = torch.addcmul(s, pi, s, value=-1)
    return mu, var, pi_m, s


def mean_and_variance(pi, m, xi):
    """mu = (1 - pi) m and Var[w] = rho - mu^2 = (1 - pi)(xi + pi m^2) (chapter 1)."""
    mu, var, _, _ = weight_moments(pi, m, xi)
    return mu, var


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


def layer_forward(h, pi, m, xi, eps, keep: bool = False):
    """One noisy mean-field layer (chapters 2-3): (G, Delta, z = G + eps * Delta, cache).

    G is the mean network's pre-activation, z a new tensor. ``cache`` is the
    :class:`LayerCache` that gBP needs with ``keep``, else None (inference keeps nothing).
    No input checks: callers validate.
    """
    mu, var, pi_m, s = weight_moments(pi, m, xi)
    h2 = h * h
    G, Delta = layer_moments(h, mu, var, h2)
    cache = LayerCache(mu, var, pi_m, s, h2, noise_ratio(eps, Delta)) if keep else None
    return G, Delta, torch.addcmul(G, eps, Delta), cache


def noise_ratio(eps, Delta):
    """r = eps / Delta, set to 0 where Delta = 0: there the variance path is switched off."""
    return torch.div(eps, Delta).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def layer_backward(K, h, pi, m, xi, eps, Delta, need_input_grad=True):
    """gBP through one layer: given K = dC/dz, return (dC/dh or None, d_pi, d_m, d_xi).

    Chapter 3, equations eq-ch3-dvar and eq-ch3-grads. No input checks: callers validate.
    """
    cache = LayerCache(*weight_moments(pi, m, xi), h * h, noise_ratio(eps, Delta))
    return layer_backward_cached(K, h, pi, m, cache, need_input_grad)


def layer_backward_cached(K, h, pi, m, cache: LayerCache, need_input_grad=True):
    """:func:`layer_backward` from the forward pass's :class:`LayerCache` (used by mfbook.nn).

    With r = eps / Delta, dC/d(Delta^2) = K r / 2. The 1/sqrt(N) and 1/(2N) factors go on the
    (B, N_out) signals, not on the (N_out, N_in) matrices; then four matrix products and seven
    elementwise passes over the weights.
    """
    n = h.shape[1]
    mu, var, pi_m, s, h2, r = cache
    Q = torch.mul(K, r).mul_(1 / (2 * n))  # dC/d(Delta^2) / N
    K = K * (1 / math.sqrt(n))
    d_mu = torch.mm(K.T, h)  # dC/dmu
    d_var = torch.mm(Q.T, h2)  # dC/dVar
    d_m = torch.addcmul(d_mu, pi_m, d_var, value=2)  # d_mu + 2 pi m d_var ...
    d_m.addcmul_(pi, d_m, value=-1)  # ... times (1 - pi)
    d_xi = torch.addcmul(d_var, pi, d_var, value=-1)  # (1 - pi) d_var
    # -m d_mu + ((1 - 2 pi) m^2 - xi) d_var, with (1 - 2 pi) m^2 - xi = mu m - s
    d_pi = torch.mul(mu, m).sub_(s).mul_(d_var).addcmul_(m, d_mu, value=-1)
    dh = None
    if need_input_grad:
        dh = torch.addcmul(torch.mm(K, mu), h, torch.mm(Q, var), value=2)  # + 2 h (Q var)
    return dh, d_pi, d_m, d_xi


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
        pi, m, _ = params[l]
        dh, *g = layer_backward_cached(K, fw.h[l], pi, m, caches[l], need_input_grad=l > 0)
        grads.append(tuple(g))
        if l > 0:
            K = dh * (fw.z[l - 1] > 0)  # ReLU'(z)
    return grads[::-1]
