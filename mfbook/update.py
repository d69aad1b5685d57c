"""The parameter update after each minibatch of the reference protocol (chapter 4, PAPER.md
section 4): an Adam step, the decoupled weight decay p <- (1 - lr * weight_decay) p, and, for
gBP, the projection pi <- clip(pi, 0, 1), xi <- max(xi, 0).

With torch these are three kinds of pass over every parameter tensor (Adam's fused kernel, the
decay, the clamps). On the CPU, where :mod:`mfbook.kernels` applies, :func:`update_` does all
three in ONE pass per tensor with torch's Adam arithmetic, reading and writing the optimizer's
own state (``exp_avg``, ``exp_avg_sq``, ``step``), so checkpoints, resumes and a later
``opt.step()`` carry on as if torch had done it. Plain backprop gets the same fused update (Adam
and decay, no bounds), so the two methods are compared on equal terms.
"""

from __future__ import annotations

import math

import torch

from mfbook import kernels

Bounds = list[tuple[torch.Tensor, float, float]]  # (tensor, lo, hi): clamp after the update


@torch.no_grad()
def update_(opt: torch.optim.Adam, decayed: list[torch.Tensor], decay, bounds: Bounds = ()):
    """``opt.step()``; then every tensor in ``decayed`` times ``decay`` (a float or a 0-d
    tensor); then each tensor of ``bounds`` clamped to its [lo, hi]. Fused per tensor where the
    kernels apply."""
    if not _fusable(opt):
        opt.step()
        torch._foreach_mul_(decayed, decay)
        for t, lo, hi in bounds:
            t.clamp_(lo, hi)
        return
    decays = {id(t) for t in decayed}
    limits = {id(t): (lo, hi) for t, lo, hi in bounds}
    for group in opt.param_groups:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = opt.state[p]
            if not state:  # as torch.optim.Adam initialises it
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            lo, hi = limits.get(id(p), (-math.inf, math.inf))
            kernels.ops().adam_step_(
                p,
                p.grad,
                state["exp_avg"],
                state["exp_avg_sq"],
                float(state["step"]),
                float(group["lr"]),  # a float, or a 0-d CPU tensor (mfbook.graphs)
                beta1,
                beta2,
                group["eps"],
                float(decay) if id(p) in decays else 1.0,
                lo,
                hi,
            )


def _fusable(opt) -> bool:
    """Plain Adam (no amsgrad, maximize, weight decay of its own or capturable state) whose
    parameters, gradients, state and learning rate the kernels apply to."""
    if type(opt) is not torch.optim.Adam:
        return False
    tensors = []
    for group in opt.param_groups:
        if group["amsgrad"] or group["maximize"] or group["weight_decay"] or group["capturable"]:
            return False
        if group["differentiable"]:
            return False
        if isinstance(group["lr"], torch.Tensor):
            tensors.append(group["lr"])
        for p in group["params"]:
            if p.grad is not None:
                state = opt.state.get(p, {})
                tensors += [p, p.grad, *(state[k] for k in ("exp_avg", "exp_avg_sq") if k in state)]
    return bool(tensors) and kernels.applies(*tensors)
