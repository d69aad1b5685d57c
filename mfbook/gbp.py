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
def mean_and_variance(pi, m, xi):
    """mu = (1 - pi) m and Var[w] = rho - mu^2 = (1 - pi)(xi + pi m^2) (chapter 1)."""
    one_minus_pi = 1 - pi
    return one_minus_pi * m, one_minus_pi * torch.addcmul(xi, pi * m, m)


def layer_moments(h, mu, var, h2=None):
    """G = h mu^T / sqrt(N) and Delta = sqrt(h^2 var^T / N) (chapter 2); no input checks."""
    n = h.shape[1]
    h2 = h * h if h2 is None else h2
    G = h @ mu.T / math.sqrt(n)
    Delta = (h2 @ var.T / n).sqrt()
    return G, Delta


def layer_backward(K, h, pi, m, xi, eps, Delta, need_input_grad=True, cache=None):
    """gBP through one layer: given K = dC/dz, return (dC/dh or None, d_pi, d_m, d_xi).

    Chapter 3, equations eq-ch3-dvar and eq-ch3-grads. ``cache`` = (mu, var, h^2) from the
    forward pass, recomputed when not given. No input checks: callers validate.
    """
    n = h.shape[1]
    mu, var, h2 = cache if cache is not None else (*mean_and_variance(pi, m, xi), h * h)
    alive = Delta > 0
    # Q = dC/d(Delta^2) per example and unit; 0 where Delta = 0 (the variance path is switched off).
    Q = torch.where(alive, K * eps / (2 * torch.where(alive, Delta, 1)), 0)
    # The 1/sqrt(N) and 1/N factors go on the (B, N_out) signals, not on (N_out, N_in) matrices.
    K = K / math.sqrt(n)
    Q = Q / n
    d_mu = K.T @ h  # dC/dmu
    d_var = Q.T @ h2  # dC/dVar
    one_minus_pi, pi_m = 1 - pi, pi * m
    d_m = one_minus_pi * torch.addcmul(d_mu, pi_m, d_var, value=2)  # (1-pi)(d_mu + 2 pi m d_var)
    d_xi = one_minus_pi * d_var
    # -m d_mu + ((1 - 2 pi) m^2 - xi) d_var
    d_pi = torch.addcmul((m * torch.add(m, pi_m, alpha=-2) - xi) * d_var, m, d_mu, value=-1)
    dh = None
    if need_input_grad:
        dh = torch.addcmul(K @ mu, h, Q @ var, value=2)  # K mu / sqrt(N) + 2 h (Q var) / N
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


def _forward(params, x, eps) -> Forward:
    hs, Gs, Deltas, zs = [x], [], [], []
    for l, ((pi, m, xi), e) in enumerate(zip(params, eps, strict=True)):
        G, Delta = layer_moments(hs[-1], *mean_and_variance(pi, m, xi))
        z = torch.addcmul(G, e, Delta)  # G + eps * Delta
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
    fw = _forward(params, x, eps)
    B = x.shape[0]
    K = fw.probs.clone()
    K[torch.arange(B, device=x.device), y] -= 1
    K /= B
    grads = []
    for l in reversed(range(len(params))):
        dh, *g = layer_backward(K, fw.h[l], *params[l], eps[l], fw.Delta[l], need_input_grad=l > 0)
        grads.append(tuple(g))
        if l > 0:
            K = dh * (fw.z[l - 1] > 0)  # ReLU'(z)
    return grads[::-1]
