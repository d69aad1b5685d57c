"""The trainable recurrent ensemble of chapter 9 as a torch module.

:class:`MeanFieldRNN` holds (pi, m, xi) of the input, recurrent and readout connections as
parameters; its forward pass is the noisy mean-field pass of :func:`mfbook.rnn.forward` and its
backward pass is the hand-derived gBPTT of :func:`mfbook.rnn.backward` (through
:class:`_GBPTT`), so ``loss.backward()`` and any torch optimiser train it, as
:class:`mfbook.nn.MeanFieldMLP` does for the feed-forward network.
"""

from __future__ import annotations

import torch

from mfbook import _checks
from mfbook.rnn import (
    GROUPS,
    RecurrentForward,
    RecurrentParams,
    backward,
    forward,
    init_params,
    run_network,
    sample_weights,
)


class _GBPTT(torch.autograd.Function):
    """The noisy pass through time, with gBPTT as its backward: ``loss.backward()`` of any
    loss of the logits gives the hand-derived gradients of :func:`backward`."""

    @staticmethod
    def forward(ctx, x, eps, eps_out, noise, alpha, *flat):
        params = RecurrentParams(*(flat[3 * g : 3 * g + 3] for g in range(3)))
        fw = forward(params, x, eps, eps_out, alpha, noise)
        ctx.save_for_backward(x, eps, eps_out, *flat, *fw)
        ctx.alpha = alpha
        return fw.z

    @staticmethod
    def backward(ctx, K):
        x, eps, eps_out, *rest = ctx.saved_tensors
        flat, fw = rest[:9], RecurrentForward(*rest[9:])
        params = RecurrentParams(*(tuple(flat[3 * g : 3 * g + 3]) for g in range(3)))
        grads = backward(params, x, eps, eps_out, ctx.alpha, fw, K)
        return None, None, None, None, None, *(t for group in grads for t in group)


class MeanFieldRNN(torch.nn.Module):
    """The trainable recurrent ensemble (chapter 9): parameters ``pi_inp``, ``m_inp``,
    ``xi_inp`` and the same for ``rec`` and ``out``, initialised by :func:`init_params`;
    ``alpha`` is the leak 1/tau; ``readout`` is "last" (logits (B, N_out)) or "every" step
    ((B, T, N_out)); ``sigma_rec`` > 0 adds the units' private noise sqrt(2 alpha) sigma_rec
    n_t. ``forward(x)`` gives the noisy mean-field pass (fresh eps and n from ``generator``),
    whose backward is gBPTT; ``mode="mean"`` runs the mean network (no noise at all). After each
    optimiser step, :meth:`project_` keeps pi in [0, 1] and xi >= 0, as for the feed-forward
    model."""

    def __init__(
        self,
        n_in,
        n_rec,
        n_out,
        alpha,
        identity=True,
        xi_max=0.1,
        generator=None,
        readout="last",
        sigma_rec=0.0,
    ):
        super().__init__()
        if not 0 < float(alpha) <= 1:
            raise ValueError(f"alpha (the leak 1/tau) must lie in (0, 1], got {alpha}")
        _checks.choice("readout", readout, ("last", "every"))
        if not 0 <= float(sigma_rec) < float("inf"):
            raise ValueError(f"sigma_rec must be a finite number >= 0, got {sigma_rec}")
        self.alpha, self.readout, self.sigma_rec = float(alpha), readout, float(sigma_rec)
        init = init_params(n_in, n_rec, n_out, identity, xi_max, generator)
        for group, triple in zip(GROUPS, init, strict=True):
            for name, t in zip(("pi", "m", "xi"), triple, strict=True):
                self.register_parameter(f"{name}_{group}", torch.nn.Parameter(t))

    def params(self) -> RecurrentParams:
        return RecurrentParams(
            *(
                (getattr(self, f"pi_{g}"), getattr(self, f"m_{g}"), getattr(self, f"xi_{g}"))
                for g in GROUPS
            )
        )

    def forward(self, x, mode: str = "mf", generator=None):
        _checks.choice("mode", mode, ("mf", "mean"))
        _checks.tensor("x", x, ndim=3)
        params = self.params()
        B, T = x.shape[:2]
        n_rec, n_out = params.rec[0].shape[0], params.out[0].shape[0]
        out_shape = (B, T, n_out) if self.readout == "every" else (B, n_out)
        if mode == "mean":
            eps, eps_out, noise = x.new_zeros(B, T, n_rec), x.new_zeros(out_shape), None
        else:
            eps, eps_out = (self._randn(s, x, generator) for s in ((B, T, n_rec), out_shape))
            noise = self._unit_noise(eps.shape, x, generator)
        flat = (t for p in params for t in p)
        return _GBPTT.apply(x, eps, eps_out, noise, self.alpha, *flat)

    @staticmethod
    def _randn(shape, x, generator):
        return torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)

    def _unit_noise(self, shape, x, generator):
        """sqrt(2 alpha) sigma_rec n_t, or None without private noise."""
        if self.sigma_rec == 0:
            return None
        return (2 * self.alpha) ** 0.5 * self.sigma_rec * self._randn(shape, x, generator)

    @torch.no_grad()
    def project_(self) -> None:
        for g in GROUPS:
            getattr(self, f"pi_{g}").clamp_(0.0, 1.0)
            getattr(self, f"xi_{g}").clamp_(min=0.0)

    def sample_network(self, generator=None):
        """The last step's logits function of one concrete recurrent sub-network (weights drawn
        once; with ``sigma_rec`` > 0 the units' private noise is drawn afresh at each call)."""
        with torch.no_grad():
            weights = sample_weights(
                tuple(tuple(t.detach() for t in p) for p in self.params()), generator
            )

        def logits(x):
            noise = self._unit_noise((*x.shape[:2], weights[1].shape[0]), x, generator)
            return run_network(weights, x, self.alpha, noise)

        return logits
