"""The parameter update after each minibatch of the reference protocol (chapter 4, PAPER.md
section 4): an Adam step, the decoupled weight decay p <- (1 - lr * weight_decay) p, and, for
gBP, the projection pi <- clip(pi, 0, 1), xi <- max(xi, 0).

With torch these are three kinds of pass over every parameter tensor (Adam's fused kernel, the
decay, the clamps). On the CPU, where :mod:`mfbook.kernels` applies, :func:`update_` does all
three in ONE pass per tensor with torch's Adam arithmetic, reading and writing the optimizer's
own state (``exp_avg``, ``exp_avg_sq``, ``step``), so checkpoints, resumes and a later
``opt.step()`` carry on as if torch had done it. Plain backprop gets the same fused update (Adam
and decay, no bounds), so the two methods are compared on equal terms.

gBP goes one step further (:func:`folded`): a mean-field layer's backward pass computes
dC/dmu and dC/dVar and, inside a ``folded`` block, turns them into the weight gradients AND
applies this update to its pi, m, xi in the same pass, so the three gradients are never stored
and read back. The numbers are the same as from the gradients followed by :func:`update_`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import torch

from mfbook import kernels

Bounds = list[tuple[torch.Tensor, float, float]]  # (tensor, lo, hi): clamp after the update
_UNBOUNDED = (-math.inf, math.inf)


class _Plan:
    """One update: the optimizer, which tensors decay by how much, and the bounds."""

    def __init__(self, opt, decayed, decay, bounds: Bounds):
        self.opt, self.decay = opt, decay
        self.decays = {id(t) for t in decayed}
        self.limits = {id(t): (lo, hi) for t, lo, hi in bounds}
        self.folded: set[int] = set()

    def state(self, p) -> dict:
        """The optimizer state of ``p``, initialised as torch.optim.Adam does on first use."""
        state = self.opt.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def hyper(self, p, group, state) -> list[float]:
        """The kernels' 8 numbers for ``p``: step, lr, beta1, beta2, eps, decay, lo, hi."""
        decay = float(self.decay) if id(p) in self.decays else 1.0
        lr = float(group["lr"])  # a float, or a 0-d CPU tensor (mfbook.graphs)
        lo, hi = self.limits.get(id(p), _UNBOUNDED)
        return [float(state["step"]), lr, *group["betas"], group["eps"], decay, lo, hi]

    def run(self, op, params, groups, *tensors) -> None:
        """Count a step for each of ``params`` (their states created if new), then call the
        kernel ``op(*tensors, exp_avgs, exp_avg_sqs, hyper)`` with their states and numbers."""
        states = [self.state(p) for p in params]
        torch._foreach_add_([s["step"] for s in states], 1)
        hyper = []
        for p, group, state in zip(params, groups, states, strict=True):
            hyper += self.hyper(p, group, state)
        avgs, sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        op(*tensors, avgs, sqs, hyper)


@torch.no_grad()
def update_(opt: torch.optim.Adam, decayed: list[torch.Tensor], decay, bounds: Bounds = ()):
    """``opt.step()``; then every tensor in ``decayed`` times ``decay`` (a float or a 0-d
    tensor); then each tensor of ``bounds`` clamped to its [lo, hi]. Only parameters with a
    gradient are touched, as ``opt.step()`` does (:func:`folded` updates and leaves none). Fused
    per tensor, in one call for all of them, where the kernels apply."""
    entries = _with_grads(opt)
    if not entries:
        return
    if not _fusable_entries(opt, entries):
        opt.step()
        decayed = [t for t in decayed if t.grad is not None]
        if decayed:
            torch._foreach_mul_(decayed, decay)
        project_([b for b in bounds if b[0].grad is not None])
        return
    params, groups = [p for p, _ in entries], [g for _, g in entries]
    grads = [p.grad for p in params]
    _Plan(opt, decayed, decay, bounds).run(kernels.ops().adam_steps_, params, groups, params, grads)


# the update of the folded() block running in this thread, if any (the autograd engine runs a
# CPU backward pass on the thread that called it; on any other thread nothing is folded)
@torch.no_grad()
def project_(bounds: Bounds) -> None:
    """The projection: clamp each tensor of ``bounds`` to its [lo, hi], in place."""
    for t, lo, hi in bounds:
        t.clamp_(lo, hi)


_folding: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("folding", default=None)


@contextlib.contextmanager
def folded(opt: torch.optim.Adam, decayed: list[torch.Tensor], decay, bounds: Bounds = ()):
    """Within this block, the backward pass of each mean-field layer (:mod:`mfbook.nn`) applies
    :func:`update_`'s update to its pi, m, xi itself, as soon as it has their gradients, fused
    with computing them (:func:`fold_`); it leaves their ``.grad`` None. Where that cannot be
    done (a GPU, no kernels, another optimiser) the layer returns its gradients as usual, so
    call :func:`update_` after the block for whatever still has a gradient."""
    token = _folding.set(_Plan(opt, decayed, decay, bounds) if _plain_adam(opt) else None)
    try:
        yield
    finally:
        _folding.reset(token)


def fold_(pi, m, xi, d_mu, d_var) -> bool:
    """Inside :func:`folded`: update ``pi, m, xi`` from dC/dmu and dC/dVar in one pass and
    return True; return False (nothing done) outside it, or where the kernels do not apply, or
    for parameters the optimiser does not hold or that already have a gradient."""
    plan = _folding.get()
    if plan is None:
        return False
    params = (pi, m, xi)
    groups = [_group(plan.opt, p) for p in params]
    if None in groups or any(p.grad is not None for p in params):
        return False
    if not kernels.applies(*params, d_mu, d_var, *_state_tensors(plan.opt, params)):
        return False
    if plan.folded.intersection(map(id, params)):
        raise RuntimeError("a parameter was used twice in one folded backward pass")
    plan.folded.update(map(id, params))
    plan.run(kernels.ops().gbp_adam_, params, groups, *params, d_mu, d_var)
    return True


def _group(opt, p) -> dict | None:
    for group in opt.param_groups:
        if any(q is p for q in group["params"]):
            return group
    return None


def _with_grads(opt) -> list[tuple[torch.Tensor, dict]]:
    """(parameter, its group) for every parameter of ``opt`` that has a gradient."""
    return [(p, g) for g in opt.param_groups for p in g["params"] if p.grad is not None]


def _state_tensors(opt, params) -> list[torch.Tensor]:
    states = [opt.state.get(p, {}) for p in params]
    return [s[k] for s in states for k in ("exp_avg", "exp_avg_sq") if k in s]


def _plain_adam(opt) -> bool:
    """Plain Adam: no amsgrad, maximize, weight decay of its own, capturable or differentiable
    state, which the kernels' update leaves out."""
    if type(opt) is not torch.optim.Adam:
        return False
    for group in opt.param_groups:
        if group["amsgrad"] or group["maximize"] or group["weight_decay"] or group["capturable"]:
            return False
        if group["differentiable"]:
            return False
    return True


def _fusable_entries(opt, entries) -> bool:
    """Whether :func:`update_` can fuse the update of ``entries``: plain Adam whose parameters,
    gradients, state and learning rate the kernels apply to."""
    if not entries or not _plain_adam(opt):
        return False
    params = [p for p, _ in entries]
    lrs = [g["lr"] for g in opt.param_groups if isinstance(g["lr"], torch.Tensor)]
    tensors = [*params, *(p.grad for p in params), *_state_tensors(opt, params), *lrs]
    return kernels.applies(*tensors)


def _fusable(opt) -> bool:
    """Whether :func:`update_` takes the fused path for ``opt`` now."""
    return _fusable_entries(opt, _with_grads(opt))
