"""Adam, the decoupled weight decay and the projection in ONE pass per tensor, on the CPU.

With torch, the update after a step is three kinds of pass over every parameter tensor (Adam's
fused kernel, the decay, the clamps). Where :mod:`mfbook.fast.kernels` applies, :func:`step_`
does all three in one pass per tensor, one kernel call for all of them, with torch's Adam
arithmetic, reading and writing the optimizer's own state (``exp_avg``, ``exp_avg_sq``,
``step``), so checkpoints, resumes and a later torch step carry on as if torch had done it.
:class:`mfbook.optim.MeanFieldAdam` calls it; the tests compare it with torch to float32
rounding.
"""

from __future__ import annotations

import math

import torch

from mfbook.fast import kernels


def _state(opt, p) -> dict:
    """The optimizer state of ``p``, initialised as torch.optim.Adam does on first use."""
    state = opt.state[p]
    if not state:
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def _state_tensors(opt, params) -> list[torch.Tensor]:
    states = [opt.state.get(p, {}) for p in params]
    return [s[k] for s in states for k in ("exp_avg", "exp_avg_sq") if k in s]


def applies(opt, entries) -> bool:
    """Whether :func:`step_` can update ``entries`` ((parameter, group) pairs with gradients):
    the kernels apply to the parameters, gradients, state and learning rates, and no group asks
    for an Adam option the kernel leaves out (amsgrad, maximize, capturable, differentiable)."""
    for group in opt.param_groups:
        if group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"]:
            return False
    params = [p for p, _ in entries]
    lrs = [g["lr"] for g in opt.param_groups if isinstance(g["lr"], torch.Tensor)]
    return kernels.applies(*params, *(p.grad for p in params), *_state_tensors(opt, params), *lrs)


@torch.no_grad()
def step_(opt, entries, decays) -> None:
    """One update of ``entries`` ((parameter, group) pairs): count the step, then one kernel
    call does Adam, the multiplication by ``decays`` (one factor per entry) and the clamp to
    the group's ``mf_bounds`` for every tensor."""
    states = [_state(opt, p) for p, _ in entries]
    torch._foreach_add_([s["step"] for s in states], 1)
    hyper: list[float] = []
    for (_, group), state, decay in zip(entries, states, decays, strict=True):
        lo, hi = group["mf_bounds"] or (-math.inf, math.inf)
        lr = float(group["lr"])
        hyper += [float(state["step"]), lr, *group["betas"], group["eps"], float(decay), lo, hi]
    params = [p for p, _ in entries]
    avgs, sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
    kernels.ops().adam_steps_(params, [p.grad for p in params], avgs, sqs, hyper)
