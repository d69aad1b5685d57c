"""What defines a training run: :class:`TrainConfig` and the named presets (chapter 4).

The ``paper`` preset is the protocol of the authors' code: 784-100-100-10, the first 10,000
training images reshuffled every epoch, batch 500, 200 epochs, Adam (state reset at the start of
every epoch), lr 0.1 halved every 20 epochs, decoupled weight decay 1e-4 on m and xi (not pi),
and the projection pi <- clip(pi, 0, 1), xi <- max(xi, 0) after every step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from mfbook import _checks

METHODS = ("gbp", "bp")
DTYPES = ("float32", "float64")
#: The variance factor of the backward signal dC/dh to a hidden layer (chapter 8): "exact" is
#: Var = (1 - pi)(xi + pi m^2) (chapter 3); "as_published_2020" is the 2020 version of the
#: authors' code, (1 - pi) xi + (1 - pi)(1 - (1 - pi)^2) m^2, kept only to measure its effect.
BACKWARD_VARIANCES = ("exact", "as_published_2020")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run except the seed and the device."""

    name: str = "custom"
    method: str = "gbp"  # "gbp": the mean-field ensemble; "bp": plain backprop, same network
    sizes: tuple[int, ...] = (784, 100, 100, 10)
    n_train: int | None = 10_000  # the first n training images; None = all 60,000
    n_test: int | None = None  # the first n test images; None = all 10,000
    batch_size: int = 500
    epochs: int = 200
    lr: float = 0.1
    lr_halve_every: int = 20
    weight_decay: float = 1e-4  # decoupled, on m and xi (gbp) or w (bp); on pi if decay_pi
    decay_pi: bool = False  # the 2022 version of the authors' code decays pi too
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    reset_adam_each_epoch: bool = True
    m_var: float = 2 / 784
    xi_max: float = 0.01
    pi_init: float = 0.0
    dtype: str = "float32"  # of the parameters and data; float64 runs the reference gBP
    backward_variance: str = "exact"  # see BACKWARD_VARIANCES; never change it but to study it
    n_val: int = 0  # the last n_val of the n_train images are held out: errors on them, not test
    notes: str = field(default="", compare=False)

    def __post_init__(self):
        _checks.choice("method", self.method, METHODS)
        if len(self.sizes) < 2:
            raise ValueError(f"sizes must have at least two entries, got {self.sizes!r}")
        for name in ("batch_size", "epochs", "lr_halve_every"):
            _checks.positive_int(name, getattr(self, name))
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                _checks.positive_int(name, getattr(self, name))
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (0 <= self.weight_decay < 1):
            raise ValueError(f"weight_decay must lie in [0, 1), got {self.weight_decay!r}")
        _checks.choice("dtype", self.dtype, DTYPES)
        _checks.choice("backward_variance", self.backward_variance, BACKWARD_VARIANCES)
        if isinstance(self.n_val, bool) or not isinstance(self.n_val, int) or self.n_val < 0:
            raise ValueError(f"n_val must be a non-negative int, got {self.n_val!r}")
        if self.n_val and not self.n_val < (self.n_train or 60_000):
            raise ValueError(f"n_val must be below n_train, got {self.n_val} of {self.n_train}")
        for i, size in enumerate(self.sizes):
            _checks.positive_int(f"sizes[{i}]", size)
        betas = self.adam_betas
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {betas!r}")
        finite = {"adam_eps": self.adam_eps, "m_var": self.m_var, "xi_max": self.xi_max}
        for name, value in finite.items():
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not 0 <= self.pi_init <= 1:
            raise ValueError(f"pi_init must lie in [0, 1], got {self.pi_init!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        d = dict(d)
        for key in ("sizes", "adam_betas"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based): lr halved every ``lr_halve_every`` epochs."""
        return self.lr * 0.5 ** (epoch // self.lr_halve_every)

    def steps_per_epoch(self, n_images: int | None = None) -> int:
        """Minibatches per epoch over ``n_images`` (default: the n_train images less the n_val
        held out; the last batch may be short)."""
        n = self.n_train if n_images is None else n_images
        if n is None:
            raise ValueError("n_train is None (all images): pass n_images")
        if n_images is None:
            n -= self.n_val
        return -(-n // self.batch_size)

    def decay_factor(self, n_images: int | None = None) -> float:
        """The total shrink of a parameter by the decoupled weight decay alone over the whole
        schedule: the product over all steps of (1 - lr * weight_decay) (chapters 4, 5, 7)."""
        steps = self.steps_per_epoch(n_images)
        return math.prod(
            (1 - self.lr_at(e) * self.weight_decay) ** steps for e in range(self.epochs)
        )


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(name="paper", notes="the reference protocol of the authors' code"),
    "paper_bp": TrainConfig(
        name="paper_bp",
        method="bp",
        notes="ordinary backprop of the same plain network on the same data and optimiser",
    ),
    "paper_2022": TrainConfig(
        name="paper_2022",
        epochs=100,
        lr_halve_every=100,
        reset_adam_each_epoch=False,
        decay_pi=True,
        notes="the protocol of the 2022 version of the authors' code: lr 0.1 for all 100 epochs, "
        "one Adam state for the whole run, decoupled weight decay on pi too",
    ),
    "full": TrainConfig(
        name="full",
        sizes=(784, 400, 400, 10),
        n_train=None,
        epochs=100,
        lr_halve_every=10,
        notes="all 60,000 images; hidden layers widened to 400 so the model is not the "
        "bottleneck on 6x the data; 100 epochs with lr halved every 10 (6x more steps per "
        "epoch, so the schedule is compressed to keep the run under an hour on 2 CPU cores)",
    ),
    "smoke": TrainConfig(
        name="smoke",
        sizes=(784, 32, 10),
        n_train=2_000,
        n_test=1_000,
        batch_size=100,
        epochs=3,
        lr=0.1,
        lr_halve_every=2,
        notes="seconds on a CPU: for tests and the book's smoke run",
    ),
}


def preset(name: str) -> TrainConfig:
    """A named configuration: ``paper``, ``paper_bp``, ``paper_2022``, ``full`` or ``smoke``."""
    _checks.choice("preset", name, tuple(PRESETS))
    return PRESETS[name]
