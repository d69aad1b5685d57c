"""Temporal credit assignment: a spike-and-slab recurrent network and gBPTT, by hand (chapter 9).

The model of Zou, Li and Huang, "Ensemble perspective for understanding temporal credit
assignment", Phys. Rev. E 107, 024307 (2023). Every input, recurrent and readout connection is
spike-and-slab (pi, m, xi), with mu = (1 - pi) m and Var = (1 - pi)(xi + pi m^2) (chapter 1). At
each step t = 1..T, for a batch of sequences x_t (B, N_in), with h_0 = 0::

    G_t       = r_{t-1} mu_rec^T + x_t mu_in^T
    Delta_t^2 = r_{t-1}^2 Var_rec^T + x_t^2 Var_in^T
    u_t       = G_t + eps_t * Delta_t               (eps drawn per step, unit and example)
    h_t       = (1 - alpha) h_{t-1} + alpha u_t + n_t   (leak alpha = 1 / tau)
    r_t       = ReLU(h_t)

where n_t is an optional private noise of the units (the multisensory task's sqrt(2 alpha)
sigma_rec white noise; it does not depend on the parameters, so gBPTT is unchanged), and a
mean-field readout z = r mu_out^T + eps_out * sqrt(r^2 Var_out^T): at the last step (r = r_T,
eps_out of shape (B, N_out); row-by-row MNIST, trained on the batch-mean cross-entropy of
softmax(z)), or at every step (eps_out of shape (B, T, N_out), z of shape (B, T, N_out); the
multisensory task). As in the authors' code there is no
1/sqrt(N) scaling: the recurrent mean starts at the identity (an IRNN), which a 1/sqrt(N) factor
would shrink; the initial variances below carry the fan-in instead.

gBPTT, by hand (no autograd). With a_t = dC/dh_t, k_t = dC/du_t = alpha a_t and
Q_t = k_t eps_t / (2 Delta_t), set to 0 where Delta_t = 0 (the mask of chapter 3)::

    dC/dr_t  = K_t mu_out + 2 r_t (Q_out,t Var_out)             the readout, K_t = dC/dz_t
    dC/dr_t += k_{t+1} mu_rec + 2 r_t (Q_{t+1} Var_rec)         mean and variance path, t < T
    a_t      = (1 - alpha) a_{t+1} + [h_t > 0] dC/dr_t          the leak, then the ReLU
    dC/dmu_rec = sum_t k_t^T r_{t-1},   dC/dVar_rec = sum_t Q_t^T r_{t-1}^2

(K_t = 0 for t < T with the last-step readout; the input connections alike, with x_t for
r_{t-1}), then (d_pi, d_m, d_xi) by the chain rule
of chapter 3 (:func:`mfbook.gbp.weight_grads`). With pi = xi = 0 everywhere the variance path
vanishes and this is backprop through time of the plain leaky RNN with weights m.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mfbook import _checks
from mfbook.gbp import check_labels, noise_ratio, weight_grads
from mfbook.spike_slab import SpikeSlab, mean_weight, weight_variance

#: the three groups of connections, in this order everywhere
GROUPS = ("inp", "rec", "out")


class RecurrentParams(NamedTuple):
    """(pi, m, xi) of the input (N_rec, N_in), recurrent (N_rec, N_rec) and readout
    (N_out, N_rec) connections."""

    inp: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    rec: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class RecurrentForward(NamedTuple):
    """What the forward pass keeps for gBPTT: per step t = 1..T (dimension 1 of each)."""

    h: torch.Tensor  # (B, T, N_rec) membrane states h_t
    r: torch.Tensor  # (B, T, N_rec) rates r_t = ReLU(h_t)
    Delta: torch.Tensor  # (B, T, N_rec) standard deviations of u_t
    Delta_out: torch.Tensor  # (B, N_out), or (B, T, N_out) at every step, of the readout
    z: torch.Tensor  # the noisy readout (the logits), of the shape of Delta_out


def init_params(
    n_in: int,
    n_rec: int,
    n_out: int,
    identity: bool = True,
    xi_max: float = 0.1,
    generator: torch.Generator | None = None,
    dtype=torch.float32,
) -> RecurrentParams:
    """The initial parameters: pi = 0; m_in ~ N(0, 1/N_in), m_out ~ N(0, 1/N_rec), and m_rec
    the identity (``identity``, for long sequences such as row-by-row MNIST) or
    ~ N(0, 1/N_rec); xi ~ Uniform[0, xi_max) / fan-in, so that the noise of u starts at a
    fraction of its signal."""
    sizes = {"inp": (n_rec, n_in), "rec": (n_rec, n_rec), "out": (n_out, n_rec)}
    for name, (a, b) in sizes.items():
        _checks.positive_int(f"{name} size", a)
        _checks.positive_int(f"{name} size", b)
    out = {}
    for name, shape in sizes.items():
        fan_in = shape[1]
        if name == "rec" and identity:
            m = torch.eye(n_rec, dtype=dtype)
        else:
            m = torch.randn(shape, generator=generator, dtype=dtype) / fan_in**0.5
        xi = xi_max * torch.rand(shape, generator=generator, dtype=dtype) / fan_in
        out[name] = (torch.zeros(shape, dtype=dtype), m, xi)
    return RecurrentParams(**out)


def check_inputs(params: RecurrentParams, x, eps, eps_out, alpha, noise=None) -> None:
    """Shapes and ranges at the public boundary: x (B, T, N_in), eps (B, T, N_rec), eps_out
    (B, N_out) or (B, T, N_out), noise None or (B, T, N_rec), 0 < alpha <= 1, and every
    (pi, m, xi) a valid spike-and-slab of its shape."""
    (pi_in, _, _), (pi_rec, _, _), (pi_out, _, _) = params
    for name, (pi, m, xi) in zip(GROUPS, params, strict=True):
        _checks.spike_slab_params(pi, m, xi, ndim=2, prefix=f"{name}.")
    n_rec, n_in = pi_in.shape
    if pi_rec.shape != (n_rec, n_rec) or pi_out.shape[1] != n_rec:
        raise ValueError(
            f"parameter shapes do not chain: inp {tuple(pi_in.shape)}, rec "
            f"{tuple(pi_rec.shape)}, out {tuple(pi_out.shape)}"
        )
    _checks.tensor("x", x, ndim=3)
    B, T, n = x.shape
    if n != n_in:
        raise ValueError(f"x must be (B, T, N_in={n_in}), got {tuple(x.shape)}")
    if not isinstance(eps, torch.Tensor) or eps.shape != (B, T, n_rec):
        raise ValueError(f"eps must have shape {(B, T, n_rec)}, got {_shape(eps)}")
    if T == 0:
        raise ValueError("x must hold at least one step (T >= 1), got T = 0")
    n_out = pi_out.shape[0]
    if not isinstance(eps_out, torch.Tensor) or eps_out.shape not in ((B, n_out), (B, T, n_out)):
        raise ValueError(
            f"eps_out must have shape {(B, n_out)} (readout at the last step) or "
            f"{(B, T, n_out)} (at every step), got {_shape(eps_out)}"
        )
    if noise is not None and (not isinstance(noise, torch.Tensor) or noise.shape != eps.shape):
        raise ValueError(f"noise must be None or of shape {(B, T, n_rec)}, got {_shape(noise)}")
    if not 0 < float(alpha) <= 1:
        raise ValueError(f"alpha (the leak 1/tau) must lie in (0, 1], got {alpha}")


def _shape(t):
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _moments(params: RecurrentParams):
    return [(mean_weight(pi, m), weight_variance(pi, m, xi)) for pi, m, xi in params]


def forward(params: RecurrentParams, x, eps, eps_out, alpha: float, noise=None) -> RecurrentForward:
    """The noisy mean-field pass through time (chapter 9): see the module docstring."""
    check_inputs(params, x, eps, eps_out, alpha, noise)
    (mu_in, var_in), (mu_rec, var_rec), (mu_out, var_out) = _moments(params)
    B, T, _ = x.shape
    h = x.new_zeros(B, mu_rec.shape[0])
    r = torch.zeros_like(h)
    hs, rs, Deltas = [], [], []
    for t in range(T):
        xt = x[:, t]
        G = r @ mu_rec.T + xt @ mu_in.T
        Delta = ((r * r) @ var_rec.T + (xt * xt) @ var_in.T).sqrt()
        h = (1 - alpha) * h + alpha * (G + eps[:, t] * Delta)
        if noise is not None:
            h = h + noise[:, t]
        r = torch.relu(h)
        hs.append(h)
        rs.append(r)
        Deltas.append(Delta)
    rs = torch.stack(rs, 1)
    r_out = rs if eps_out.dim() == 3 else r  # every step, or the last
    Delta_out = ((r_out * r_out) @ var_out.T).sqrt()
    z = r_out @ mu_out.T + eps_out * Delta_out
    return RecurrentForward(torch.stack(hs, 1), rs, torch.stack(Deltas, 1), Delta_out, z)


def loss(params: RecurrentParams, x, y, eps, eps_out, alpha: float) -> torch.Tensor:
    """Batch-mean cross-entropy of softmax(z) at the last step."""
    z = forward(params, x, eps, eps_out, alpha).z
    check_labels(y, x.shape[0], z.shape[1])
    return torch.nn.functional.cross_entropy(z, y)


def gradients(params: RecurrentParams, x, y, eps, eps_out, alpha: float) -> RecurrentParams:
    """gBPTT by hand: (d_pi, d_m, d_xi) of the input, recurrent and readout connections, for
    the batch-mean cross-entropy with labels ``y``."""
    fw = forward(params, x, eps, eps_out, alpha)
    B, n_out = fw.z.shape
    check_labels(y, B, n_out)
    K = (torch.softmax(fw.z, dim=1) - torch.nn.functional.one_hot(y, n_out)) / B
    return backward(params, x, eps, eps_out, alpha, fw, K)


def backward(params: RecurrentParams, x, eps, eps_out, alpha: float, fw, K) -> RecurrentParams:
    """gBPTT from K = dC/dz of the readout (of z's shape), for any loss of the logits (the
    module docstring's equations); ``fw`` is the :func:`forward` of the same inputs and noise."""
    (mu_in, var_in), (mu_rec, var_rec), (mu_out, var_out) = _moments(params)
    T, every = x.shape[1], K.dim() == 3
    r_out = fw.r if every else fw.r[:, -1]
    Q_out = K * noise_ratio(eps_out, fw.Delta_out) / 2
    n_out, n_rec = K.shape[-1], r_out.shape[-1]
    flat_K, flat_Q, flat_r = (
        K.reshape(-1, n_out),
        Q_out.reshape(-1, n_out),
        r_out.reshape(-1, n_rec),
    )
    d_out = (flat_K.T @ flat_r, flat_Q.T @ (flat_r * flat_r))
    dr_out = K @ mu_out + 2 * r_out * (Q_out @ var_out)  # dC/dr_t through the readout
    dr = torch.zeros_like(fw.r[:, -1])
    a = torch.zeros_like(dr)  # dC/dh_{t+1}, carried back through the leak
    d_mu_in, d_var_in = torch.zeros_like(mu_in), torch.zeros_like(var_in)
    d_mu_rec, d_var_rec = torch.zeros_like(mu_rec), torch.zeros_like(var_rec)
    # for every step at once: the ReLU's derivative, and eps / (2 Delta) with its mask
    active, half_ratio = (fw.h > 0).to(fw.h.dtype), noise_ratio(eps, fw.Delta) / 2
    for t in reversed(range(T)):
        if every or t == T - 1:
            dr = dr + (dr_out[:, t] if every else dr_out)
        a = (1 - alpha) * a + active[:, t] * dr
        k = alpha * a  # dC/du_t
        Q = k * half_ratio[:, t]  # dC/d(Delta_t^2)
        xt = x[:, t]
        r_prev = fw.r[:, t - 1] if t > 0 else torch.zeros_like(dr)
        d_mu_in += k.T @ xt
        d_var_in += Q.T @ (xt * xt)
        d_mu_rec += k.T @ r_prev
        d_var_rec += Q.T @ (r_prev * r_prev)
        dr = k @ mu_rec + 2 * r_prev * (Q @ var_rec)  # dC/dr_{t-1} through u_t
    grads = [(d_mu_in, d_var_in), (d_mu_rec, d_var_rec), d_out]
    return RecurrentParams(
        *(weight_grads(d_mu, d_var, *p) for (d_mu, d_var), p in zip(grads, params, strict=True))
    )


def sample_weights(params: RecurrentParams, generator=None) -> tuple[torch.Tensor, ...]:
    """One concrete recurrent sub-network: (w_in, w_rec, w_out), each connection drawn once
    from its spike-and-slab (chapter 1)."""
    return tuple(SpikeSlab(*p).sample(generator) for p in params)


def run_network(weights, x, alpha: float, noise=None) -> torch.Tensor:
    """The last step's logits of one concrete leaky ReLU network (w_in, w_rec, w_out) on x
    (B, T, N_in): the same dynamics without the mean-field noise eps (with the units' own
    ``noise`` (B, T, N_rec) if given), as a sampled sub-network runs them."""
    w_in, w_rec, w_out = weights
    h = x.new_zeros(x.shape[0], w_rec.shape[0])
    for t in range(x.shape[1]):
        h = (1 - alpha) * h + alpha * (torch.relu(h) @ w_rec.T + x[:, t] @ w_in.T)
        if noise is not None:
            h = h + noise[:, t]
    return torch.relu(h) @ w_out.T
