"""Training the recurrent ensemble on row-by-row MNIST (chapter 9).

Each image is a sequence of its 28 rows (28 steps of 28 pixels); the recurrent network of
:mod:`mfbook.rnn` reads it and answers at the last step. ``method="gbptt"`` trains the
spike-and-slab ensemble (Adam on pi, m and xi, then the projection); ``method="bptt"`` trains the
same leaky ReLU RNN with one weight per connection by backprop through time, the baseline. The
protocol follows the authors' code where it is stated (Adam, the learning rate halved every
``lr_halve_every`` epochs, gradient clipping, projection after every step, batch 128) and says
where it chooses: the norm bound of the clipping is on the gradient of all parameters together.

:func:`train_recurrent` returns the model and a history with the keys of the feed-forward
training (:func:`mfbook.train.train`): per epoch the training loss and the test errors of the
mean network, of one noisy mean-field pass and of one sampled sub-network (gBPTT), or of the
network (BPTT, under ``test_error_mean``); ``val_error_*`` instead of ``test_error_*`` on the
held-out images when ``n_val`` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mfbook import _checks, rnn, rnn_nn
from mfbook.data import load_mnist
from mfbook.train import resolve_device

METHODS = ("gbptt", "bptt")
ROWS = COLUMNS = 28


@dataclass(frozen=True)
class RecurrentConfig:
    """Everything that defines a recurrent training run except the seed."""

    name: str = "custom"
    method: str = "gbptt"
    n_rec: int = 100
    alpha: float = 0.2  # the leak 1/tau
    n_train: int | None = None  # the first n training images; None = all 60,000
    n_val: int = 0  # the last n_val of them are held out for choosing a learning rate
    n_test: int | None = None
    batch_size: int = 128
    epochs: int = 20
    lr: float = 3e-3
    lr_halve_every: int = 40
    clip: float = 1.0  # bound on the norm of the whole gradient
    identity: bool = True  # m_rec starts at the identity (an IRNN)
    xi_max: float = 0.1

    def __post_init__(self):
        _checks.choice("method", self.method, METHODS)
        for name in ("n_rec", "batch_size", "epochs", "lr_halve_every"):
            _checks.positive_int(name, getattr(self, name))
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                _checks.positive_int(name, getattr(self, name))
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha (the leak 1/tau) must lie in (0, 1], got {self.alpha}")
        for name in ("lr", "clip", "xi_max"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(self.n_val, bool) or not isinstance(self.n_val, int) or self.n_val < 0:
            raise ValueError(f"n_val must be a non-negative int, got {self.n_val!r}")
        if self.n_train is not None and self.n_val >= self.n_train:
            raise ValueError(f"n_val ({self.n_val}) must be smaller than n_train ({self.n_train})")


class RecurrentResult(NamedTuple):
    model: torch.nn.Module
    history: dict[str, list[float]]


class PlainRNN(torch.nn.Module):
    """The same leaky ReLU RNN with one weight per connection: the BPTT baseline."""

    def __init__(self, n_in, n_rec, n_out, alpha, identity=True, generator=None):
        super().__init__()
        self.alpha = alpha
        init = rnn.init_params(n_in, n_rec, n_out, identity, generator=generator)
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(m) for _, m, _ in init])

    def forward(self, x, generator=None):  # generator: the same call as MeanFieldRNN's
        return rnn.run_network(list(self.weights), x, self.alpha)


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """MNIST images (N, 784) as sequences of their rows (N, 28, 28)."""
    _checks.tensor("x", x, ndim=2)
    if x.shape[1] != ROWS * COLUMNS:
        raise ValueError(f"x must hold 784-pixel images, got shape {tuple(x.shape)}")
    return x.view(-1, ROWS, COLUMNS)


def build_recurrent(config: RecurrentConfig, generator) -> torch.nn.Module:
    if config.method == "gbptt":
        return rnn_nn.MeanFieldRNN(
            COLUMNS, config.n_rec, 10, config.alpha, config.identity, config.xi_max, generator
        )
    return PlainRNN(COLUMNS, config.n_rec, 10, config.alpha, config.identity, generator)


def _errors(model, x, y, generator, prefix: str) -> dict[str, float]:
    def error(logits):
        return float((logits.argmax(1) != y).double().mean())

    with torch.no_grad():
        if isinstance(model, PlainRNN):
            return {f"{prefix}_error_mean": error(model(x))}
        return {
            f"{prefix}_error_mean": error(model(x, mode="mean")),
            f"{prefix}_error_mf": error(model(x, generator=generator)),
            f"{prefix}_error_sample": error(model.sample_network(generator)(x)),
        }


def train_recurrent(
    config: RecurrentConfig, seed: int = 0, data_root=None, progress: bool = False, device="cpu"
) -> RecurrentResult:
    """Train ``config`` with ``seed`` (which fixes the initial parameters, the order of the
    images and the noise) on row-by-row MNIST, on ``device`` (the CPU by default; "cuda" runs
    the same code on a GPU, with the noise drawn there, so its numbers differ from the CPU's)."""
    if not isinstance(config, RecurrentConfig):
        raise TypeError(f"config must be a RecurrentConfig, got {type(config).__name__}")
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)  # the initial parameters, as on the CPU
    x, y = load_mnist("train", n=config.n_train, root=data_root, device=dev)
    if config.n_val:  # the last n_val training images, never the test set
        xe, ye, prefix = x[-config.n_val :], y[-config.n_val :], "val"
        x, y = x[: -config.n_val], y[: -config.n_val]
    else:
        xe, ye = load_mnist("test", n=config.n_test, root=data_root, device=dev)
        prefix = "test"
    x, xe = as_rows(x), as_rows(xe)
    model = build_recurrent(config, gen).to(dev)
    if dev.type != "cpu":  # then the order, the noise and the samples are drawn on the device
        gen = torch.Generator(device=dev).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    history: dict[str, list[float]] = {"epoch": [], "train_loss": []}
    for epoch in range(config.epochs):
        for group in opt.param_groups:
            group["lr"] = config.lr * 0.5 ** (epoch // config.lr_halve_every)
        order, total = torch.randperm(len(y), generator=gen, device=dev), 0.0
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx], generator=gen), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            opt.step()
            if config.method == "gbptt":
                model.project_()
            total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch + 1, "train_loss": total / len(y)}
        row |= _errors(model, xe, ye, gen, prefix)
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        if progress:
            print(", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    return RecurrentResult(model, history)
