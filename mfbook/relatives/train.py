"""One training loop for every method of the comparison, and the cost of a step (chapter 10).

:func:`fit` trains a :class:`~mfbook.relatives.base.Relative` by minibatches with Adam (the
method's :meth:`~mfbook.relatives.base.Relative.make_optimizer`: decoupled weight decay on the
weights of backprop and dropout, the book's MeanFieldAdam with its projection for gBP), one
optimiser state for the whole run, on the per-example objective

    loss = NLL + beta * KL / N_train,

the negative evidence lower bound of Bayes by Backprop and sparse variational dropout when
beta = 1 (KL = 0 for the others), divided by N_train as in Blundell et al. (ICML 2015); in the
book's symbols gBP's objective is the first term alone, E_eps[C]. ``kl_weight`` sets beta; with
``warmup_epochs`` > 0 it rises linearly from 0 to ``kl_weight`` over that many epochs, step by
step (beta = kl_weight * min(1, t / T) after step t of the T in the warm-up; the warm-up of
Sonderby et al., "Ladder variational autoencoders", NeurIPS 2016). From the paper's tiny
initialisation (m_var = 2/784 in the 1/sqrt(N) network) the data gradients start near 0 and the
KL term alone would shrink the weights to the prior: a warm-up, or a larger m_var, lets the data
lead (tests/test_relatives_mnist.py).

:func:`split` holds the last ``n_val`` training images out for the hyperparameters, as
:class:`mfbook.config.TrainConfig`'s ``n_val`` does. :func:`step_seconds` times training steps of
several methods on the same batch, interleaved, for the cost ratio against plain backprop.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mfbook import _checks
from mfbook.loop import TrainingDiverged
from mfbook.relatives.base import Relative
from mfbook.relatives.metrics import error, nll


class Fit(NamedTuple):
    model: Relative
    history: dict[str, list[float]]


def _check_data(model, x, y, name="x") -> None:
    model.check_input(x)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (x.shape[0],):
        got = (y.dtype, tuple(y.shape)) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"the labels of {name} must be int64 of shape ({x.shape[0]},), got {got}")


def split(x, y, n_val: int):
    """(x_train, y_train, x_val, y_val): the last ``n_val`` rows held out."""
    if isinstance(n_val, bool) or not isinstance(n_val, int) or not 0 < n_val < x.shape[0]:
        raise ValueError(f"n_val must be an int in [1, {x.shape[0]}), got {n_val!r}")
    cut = x.shape[0] - n_val
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _objective(model, xb, yb, n_train: int, beta: float, generator):
    nll = F.cross_entropy(model(xb, generator), yb)
    kl = model.kl()
    return nll + beta * kl / n_train, nll, kl


def fit(
    model: Relative,
    x,
    y,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    scale_lr: float | None = None,
    kl_weight: float = 1.0,
    warmup_epochs: int = 0,
    seed: int = 0,
    val=None,
    val_samples: int = 0,
) -> Fit:
    """Train ``model`` in place on (x, y); the history has one row per epoch: ``loss`` (the
    objective), ``nll``, ``kl`` (nats, whole network), ``beta`` at the epoch's end, ``seconds``,
    and with ``val=(x_val, y_val)`` the ``val_error`` and ``val_nll`` of ``model.predict(x_val,
    val_samples)``. One seed fixes the data order and every draw of noise."""
    if not isinstance(model, Relative):
        raise TypeError(f"model must be a Relative, got {type(model).__name__}")
    _check_data(model, x, y)
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        _checks.positive_int(name, v)
    if not (isinstance(lr, int | float) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(kl_weight, int | float) and 0 <= kl_weight < math.inf):
        raise ValueError(f"kl_weight must be a number >= 0, got {kl_weight!r}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a non-negative int, got {warmup_epochs!r}")
    if val is not None:
        _check_data(model, *val, name="val")
    order_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=x.device).manual_seed(seed + 1)
    opt = model.make_optimizer(lr, weight_decay, scale_lr)
    n = x.shape[0]
    steps = -(-n // batch_size)
    ramp = warmup_epochs * steps
    history: dict[str, list[float]] = {}
    t = 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64)
        for idx in torch.randperm(n, generator=order_gen).to(x.device).split(batch_size):
            t += 1
            beta = kl_weight * (min(1.0, t / ramp) if ramp else 1.0)
            opt.zero_grad(set_to_none=True)
            terms = _objective(model, x[idx], y[idx], n, beta, noise_gen)
            terms[0].backward()
            opt.step()
            sums += torch.stack([v.detach() for v in terms]).double().cpu() * len(idx)
        loss, nll_mean, kl = (sums / n).tolist()
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"{type(model).__name__} diverged in epoch {epoch + 1} (loss {loss}): try a "
                "smaller lr"
            )
        row = {"epoch": epoch + 1, "loss": loss, "nll": nll_mean, "kl": kl, "beta": beta}
        if val is not None:
            probs = model.predict(val[0], val_samples, noise_gen)
            row["val_error"] = error(probs, val[1])
            row["val_nll"] = nll(probs, val[1])
        row["seconds"] = time.perf_counter() - t0
        for k, v in row.items():
            history.setdefault(k, []).append(v)
    return Fit(model, history)


def step_seconds(
    models: dict[str, Relative], xb, yb, n_train: int, repeats: int = 20, warmup: int = 3
) -> dict[str, float]:
    """The median seconds of one training step (forward, objective, backward, optimiser step) of
    each model on the same batch (xb, yb), on copies (the models are not changed). The steps are
    interleaved, one of each model per round, so a slow spell of the machine hits all alike; the
    first ``warmup`` rounds are not counted. Divide by the baseline's entry for the ratios."""
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict of name: Relative")
    for name, m in models.items():
        if not isinstance(m, Relative):
            raise TypeError(f"models[{name!r}] must be a Relative, got {type(m).__name__}")
        _check_data(m, xb, yb, name="xb")
    _checks.positive_int("repeats", repeats)
    _checks.positive_int("n_train", n_train)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    copies = {k: copy.deepcopy(m) for k, m in models.items()}
    opts = {k: m.make_optimizer(1e-6) for k, m in copies.items()}
    gen = torch.Generator(device=xb.device).manual_seed(0)
    times: dict[str, list[float]] = {k: [] for k in copies}
    for r in range(warmup + repeats):
        for k, m in copies.items():
            t0 = time.perf_counter()
            opts[k].zero_grad(set_to_none=True)
            loss = _objective(m, xb, yb, n_train, 1.0, gen)[0]
            loss.backward()
            opts[k].step()
            float(loss.detach())  # waits for the device
            if r >= warmup:
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
