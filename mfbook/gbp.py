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

This module is the reference: plain torch expressions that read like the equations. The model
of :mod:`mfbook.nn` runs it, or, on the CPU, the fused kernels of :mod:`mfbook.fast.layer`,
which compute the same formulas in fewer passes over memory and are tested against these.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mfbook import _checks
from mfbook.moments import mean_preactivation, preactivation_std
from mfbook.spike_slab import mean_weight, weight_variance

Params = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Forward(NamedTuple):
    """Everything the mean-field forward pass computes, layer by layer (chapter 3)."""

    h: list[torch.Tensor]  # inputs of each layer: h[0] = x, h[l] = ReLU(z[l-1])
    G: list[torch.Tensor]  # means of the pre-activations
    Delta: list[torch.Tensor]  # standard deviations of the pre-activations
    z: list[torch.Tensor]  # noisy pre-activations G + eps * Delta; z[-1] are the logits
    probs: torch.Tensor  # softmax(z[-1])


class LayerCache(NamedTuple):
    """What the forward pass of one layer keeps for its backward pass (chapter 3)."""

    mu: torch.Tensor  # (1 - pi) m, the mean weight
    var: torch.Tensor  # (1 - pi)(xi + pi m^2), the weight variance rho - mu^2
    h2: torch.Tensor  # h^2, elementwise
    r: torch.Tensor  # eps / Delta, 0 where Delta = 0


# --- one layer -----------------------------------------------------------------------------
def noise_ratio(eps, Delta):
    """r = eps / Delta, set to 0 where Delta = 0: there the variance path is switched off."""
    return torch.div(eps, Delta).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def layer_forward(h, pi, m, xi, eps, keep: bool = False, relu: bool = False):
    """One noisy mean-field layer (chapters 2-3, eq-ch3-forward): (G, Delta, z, cache).

    z = G + eps * Delta, or with ``relu`` ReLU(z), the next layer's input. ``cache`` is the
    :class:`LayerCache` that the backward pass needs with ``keep``, else None. No input checks:
    callers validate.
    """
    mu, var = mean_weight(pi, m), weight_variance(pi, m, xi)
    h2 = h * h
    G, Delta = mean_preactivation(h, mu), preactivation_std(h, var, h2)
    z = G + eps * Delta
    out = torch.relu(z) if relu else z
    return G, Delta, out, LayerCache(mu, var, h2, noise_ratio(eps, Delta)) if keep else None


def mean_layer(h, pi, m, xi):
    """The mean network's pre-activation G = h mu^T / sqrt(N) of one layer (chapter 2); xi is
    not used (it is part of the signature that :mod:`mfbook.fast.layer` shares)."""
    return mean_preactivation(h, mean_weight(pi, m))


def weight_grads(d_mu, d_var, pi, m, xi):
    """(d_pi, d_m, d_xi) from dC/dmu and dC/dVar by the chain rule through mu = (1 - pi) m and
    Var = (1 - pi)(xi + pi m^2) (chapter 3, eq-ch3-grads)::

        d_m  = (1 - pi)(d_mu + 2 pi m d_var)
        d_xi = (1 - pi) d_var
        d_pi = -m d_mu + ((1 - 2 pi) m^2 - xi) d_var
    """
    d_m = (1 - pi) * (d_mu + 2 * pi * m * d_var)
    d_xi = (1 - pi) * d_var
    d_pi = -m * d_mu + ((1 - 2 * pi) * m**2 - xi) * d_var
    return d_pi, d_m, d_xi


def published_2020_variance(pi, m, xi):
    """The variance factor that the 2020 version of the authors' code puts in dC/dh in place of
    Var (chapter 8): (1 - pi) xi + (1 - pi)(1 - (1 - pi)^2) m^2, whose m^2 part is (2 - pi)
    times the exact pi (1 - pi) m^2. Only the ``as_published_2020`` variant uses it."""
    return (1 - pi) * xi + (1 - pi) * (1 - (1 - pi) ** 2) * m**2


def layer_backward_cached(K, h, pi, m, xi, cache: LayerCache, need_input_grad=True, out=None):
    """gBP through one layer from its forward :class:`LayerCache`: (dC/dh or None, d_pi, d_m,
    d_xi), given K = dC/dz (chapter 3, eq-ch3-dvar and eq-ch3-grads).

    With ``out``, the layer's ReLU output, K arrives as dC/dh and first goes through the ReLU:
    K = dC/dh where out > 0, else 0. The mean path gives dC/dmu = K^T h / sqrt(N); the variance
    path, through dC/d(Delta^2) = K r / 2 with r = eps / Delta, gives dC/dVar = Q^T h^2 / N.
    """
    n = h.shape[1]
    mu, var, h2, r = cache
    if out is not None:
        K = torch.where(out > 0, K, 0.0)
    Q = K * r / 2  # dC/d(Delta^2)
    dh = None
    if need_input_grad:  # dC/dh_k = sum_i K_i mu_ik / sqrt(N) + 2 h_k sum_i Q_i var_ik / N
        dh = (K @ mu) / math.sqrt(n) + 2 * h * (Q @ var) / n
    d_mu, d_var = (K.T @ h) / math.sqrt(n), (Q.T @ h2) / n
    return dh, *weight_grads(d_mu, d_var, pi, m, xi)


def layer_backward(K, h, pi, m, xi, eps, Delta, need_input_grad=True):
    """gBP through one layer: given K = dC/dz, return (dC/dh or None, d_pi, d_m, d_xi).

    Chapter 3, equations eq-ch3-dvar and eq-ch3-grads. No input checks: callers validate.
    """
    mu, var = mean_weight(pi, m), weight_variance(pi, m, xi)
    cache = LayerCache(mu, var, h * h, noise_ratio(eps, Delta))
    return layer_backward_cached(K, h, pi, m, xi, cache, need_input_grad)


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
