"""The optimiser of the paper's protocol: Adam, decoupled weight decay, projection (chapter 4).

After every minibatch the authors' code takes an Adam step on pi, m and xi, shrinks m and xi by
the decoupled weight decay p <- (1 - lr * weight_decay) p (pi is never decayed), and projects:
pi <- clip(pi, 0, 1), xi <- max(xi, 0). The projection is what makes the exact 0s and 1s of the
VIP and UIP connections (chapter 5). :class:`MeanFieldAdam` is that whole update as one
``torch.optim.Optimizer``, so a reader's own loop::

    opt = MeanFieldAdam(model, lr=0.1)
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()   # gBP (chapter 3)
        opt.step()                                # Adam + decay + projection

trains exactly as :func:`mfbook.train.train` does. On the CPU the step is one fused pass per
tensor (:mod:`mfbook.fast.update`, the same numbers as torch's arithmetic); elsewhere it is
torch's Adam followed by the decay and the clamps.
"""

from __future__ import annotations

import math

import torch

from mfbook.fast import memory
from mfbook.fast import update as fast_update
from mfbook.nn import PI_BOUNDS, XI_BOUNDS, MeanFieldLinear


def param_groups(model: torch.nn.Module, weight_decay: float, decay_pi: bool = False) -> list:
    """One group per kind of parameter, as in the authors' code: pi (clipped to [0, 1], decayed
    only with ``decay_pi``), m (decayed, unbounded) and xi (decayed, >= 0) of every
    :class:`MeanFieldLinear` of ``model``; a model without mean-field layers (plain backprop)
    gets one decayed group."""
    layers = [mod for mod in model.modules() if isinstance(mod, MeanFieldLinear)]
    if not layers:
        return [{"params": list(model.parameters()), "mf_weight_decay": weight_decay}]
    pi_decay = weight_decay if decay_pi else 0.0
    kinds = (
        ("pi", pi_decay, PI_BOUNDS),
        ("m", weight_decay, None),
        ("xi", weight_decay, XI_BOUNDS),
    )
    return [
        {"params": [getattr(lay, k) for lay in layers], "mf_weight_decay": wd, "mf_bounds": b}
        for k, wd, b in kinds
    ]


def decay_factor(group: dict):
    """1 - lr * weight_decay: what one step multiplies a parameter of ``group`` by (a float,
    or a 0-d tensor when the learning rate is one)."""
    return 1 - group["lr"] * group["mf_weight_decay"]


class MeanFieldAdam(torch.optim.Adam):
    """Adam + decoupled weight decay + projection, one step per minibatch (chapter 4).

    ``model``: a :class:`mfbook.nn.MeanFieldMLP` (or any module holding
    :class:`~mfbook.nn.MeanFieldLinear` layers), or a plain network for backprop, whose
    parameters are all decayed and none projected. ``lr``, ``betas``, ``eps`` as in
    ``torch.optim.Adam`` (``lr`` may be a 0-d tensor with ``capturable=True``, for CUDA graphs);
    ``weight_decay`` is decoupled, applied to pi only with ``decay_pi`` (the 2022 version of the
    authors' code). Defaults: the paper's protocol.
    Param groups (pi, m, xi) carry their decay and bounds as ``mf_weight_decay`` and
    ``mf_bounds``; ``state_dict`` / ``load_state_dict`` are torch's.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float | torch.Tensor = 0.1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-4,
        *,
        decay_pi: bool = False,
        capturable: bool = False,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not (0 <= weight_decay < 1 and math.isfinite(weight_decay)):
            raise ValueError(f"weight_decay must lie in [0, 1), got {weight_decay!r}")
        for group in (groups := param_groups(model, weight_decay, decay_pi)):
            group.setdefault("mf_bounds", None)
        # fused: torch's one-kernel Adam wherever the CPU kernels do not apply (CUDA, float64)
        super().__init__(groups, lr=lr, betas=betas, eps=eps, fused=True, capturable=capturable)
        memory.keep_freed_memory()  # this process trains: keep freed memory for the next step

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        entries = [(p, g) for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not entries:
            return loss
        if fast_update.applies(self, entries):
            decays = [decay_factor(g) if g["mf_weight_decay"] else 1.0 for _, g in entries]
            fast_update.step_(self, entries, decays)
            return loss
        super().step()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and group["mf_weight_decay"]:
                torch._foreach_mul_(params, decay_factor(group))
            if params and group["mf_bounds"] is not None:
                for p in params:
                    p.clamp_(*group["mf_bounds"])
        return loss
