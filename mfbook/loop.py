"""The training loop of chapter 4: one step, one epoch, and the epoch runners.

:func:`training_step` is the protocol for one minibatch; :func:`train_epoch` runs it over a
reshuffled data set. An *epoch runner* (:class:`EpochRunner`) owns the optimiser and runs whole
epochs: :class:`EagerEpochs` here, and the CUDA-graph replay of :mod:`mfbook.fast.graphs`,
which computes the same steps. :func:`mfbook.train.train` drives a runner epoch by epoch and,
when an epoch produces NaN or inf, replays it step by step (:func:`locate_divergence`) to name
the first bad step.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from mfbook.config import TrainConfig
from mfbook.nn import MeanFieldMLP, PlainMLP
from mfbook.optim import MeanFieldAdam


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf; the last good checkpoint is kept."""


def build_model(config: TrainConfig, seed: int) -> torch.nn.Module:
    """The model of ``config``, initialised on the CPU from ``seed`` (identical on every device)."""
    gen = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, config.dtype)
    if config.method == "bp":
        model = PlainMLP(config.sizes, m_var=config.m_var, dtype=dtype)
    else:
        model = MeanFieldMLP(
            config.sizes,
            m_var=config.m_var,
            xi_max=config.xi_max,
            pi_init=config.pi_init,
            backward_variance=config.backward_variance,
            dtype=dtype,
        )
    model.reset_parameters(gen)
    return model


def make_optimizer(model, config: TrainConfig, lr=None, capturable: bool = False):
    """:class:`mfbook.optim.MeanFieldAdam` with the config's hyperparameters; ``lr`` (default:
    ``config.lr``) may be a 0-d tensor that the caller updates in place (``capturable=True``:
    the CUDA-graph path of :mod:`mfbook.fast.graphs`)."""
    return MeanFieldAdam(
        model,
        lr=config.lr if lr is None else lr,
        betas=config.adam_betas,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
        decay_pi=config.decay_pi,
        capturable=capturable,
    )


def training_step(model, xb, yb, opt, eps=None, generator=None):
    """One minibatch of the protocol (chapter 4); returns the loss as a 0-d tensor.

    The noisy mean-field forward pass with ``eps`` (or fresh eps from ``generator``), the
    cross-entropy, gBP (``loss.backward()``; plain backprop for a plain network), and the
    optimiser's step: for :class:`~mfbook.optim.MeanFieldAdam`, Adam, the decoupled weight decay
    and the projection. No host synchronisation.
    """
    opt.zero_grad(set_to_none=True)
    logits = model.logits(xb, "mf", eps, generator)
    loss = F.cross_entropy(logits, yb)
    loss.backward()
    opt.step()
    return loss.detach()


def all_finite(model) -> bool:
    """Whether every parameter of ``model`` is finite (one host synchronisation)."""
    # the min and max of every tensor, summed in float64: finite exactly when all of them are
    # (a float32 value is below 4e38, so a sum of finite ones cannot overflow); aminmax is one
    # pass, where isfinite(p).all() builds a mask first
    ends = torch.stack([torch.stack(torch.aminmax(p.detach())) for p in model.parameters()])
    return bool(torch.isfinite(ends.double().sum()))


def check_step(loss, model, step: int) -> None:
    """Raise :class:`TrainingDiverged` naming ``step`` when the loss or a parameter is not
    finite (one host synchronisation)."""
    if not (bool(torch.isfinite(loss)) and all_finite(model)):
        raise TrainingDiverged(f"step {step} (loss {float(loss)})")


def train_epoch(model, x, y, opt, config: TrainConfig, order_gen, noise_gen, check_steps=False):
    """One epoch of minibatch training on (x, y), any data set (chapter 4).

    Reshuffle with ``order_gen``; then one :func:`training_step` per minibatch, with fresh eps
    from ``noise_gen``. Returns the mean training loss as a 0-d tensor (no host synchronisation
    inside the loop). ``check_steps=True`` checks the loss and the parameters after every step
    (one synchronisation per step) and raises :class:`TrainingDiverged` naming the first bad
    step.
    """
    n = x.shape[0]
    perm = torch.randperm(n, generator=order_gen).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    for step, start in enumerate(range(0, n, config.batch_size), start=1):
        idx = perm[start : start + config.batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        loss = training_step(model, xb, yb, opt, None, noise_gen)
        loss_sum += loss * idx.numel()
        if check_steps:
            check_step(loss, model, step)
    return loss_sum / n


class EpochRunner:
    """What :func:`mfbook.train.train` needs to run epochs of ``model`` under ``config`` on
    (x, y) with eps from ``noise_gen``: set the learning rate (and reset Adam), run an epoch,
    and save and restore the optimiser's state around a replay."""

    def start_epoch(self, lr: float, fresh: bool) -> None:
        """Set the learning rate for the next epoch; ``fresh``: start Adam's state anew."""
        raise NotImplementedError

    def epoch(self, order_gen, check_steps: bool = False) -> torch.Tensor:
        """One epoch in the order drawn from ``order_gen``; the mean loss as a 0-d tensor."""
        raise NotImplementedError

    def optimizer_state(self):
        """A copy of the optimiser's state, for :meth:`load_optimizer_state`."""
        raise NotImplementedError

    def load_optimizer_state(self, state) -> None:
        raise NotImplementedError


class EagerEpochs(EpochRunner):
    """:func:`train_epoch`, one Python call per step: on the CPU, and on a GPU without graphs."""

    def __init__(self, model, config: TrainConfig, x, y, noise_gen):
        self.model, self.config, self.x, self.y, self.noise_gen = model, config, x, y, noise_gen
        self.opt = None

    def start_epoch(self, lr: float, fresh: bool) -> None:
        if fresh or self.opt is None:
            self.opt = make_optimizer(self.model, self.config, lr)
        for group in self.opt.param_groups:
            group["lr"] = lr

    def epoch(self, order_gen, check_steps: bool = False) -> torch.Tensor:
        m, c = self.model, self.config
        return train_epoch(m, self.x, self.y, self.opt, c, order_gen, self.noise_gen, check_steps)

    def optimizer_state(self) -> dict:
        return copy.deepcopy(self.opt.state_dict())

    def load_optimizer_state(self, state: dict) -> None:
        self.opt.load_state_dict(state)


def locate_divergence(model, runner: EpochRunner, order_gen, noise_gen, snapshot) -> str:
    """Replay a diverged epoch from its start, checking every step; name the first bad step and
    leave the model, the optimiser and the generators as they were at the epoch's start."""
    params, opt_state, order_state, noise_state = snapshot
    where = "an unknown step"
    for _ in range(2):  # the replay, then the restore
        model.load_state_dict(params)
        runner.load_optimizer_state(opt_state)
        order_gen.set_state(order_state)
        noise_gen.set_state(noise_state)
        if where == "an unknown step":
            try:
                runner.epoch(order_gen, check_steps=True)
            except TrainingDiverged as err:
                where = str(err)
    return where
