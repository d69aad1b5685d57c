"""Training on MNIST: the reference protocol as named presets, checkpoints, resume (chapter 4).

The ``paper`` preset is the protocol of the authors' reference code (PAPER.md section 4):
784-100-100-10, the first 10,000 training images reshuffled every epoch, batch 500, 200 epochs,
Adam (state reset at the start of every epoch), lr 0.1 halved every 20 epochs, decoupled weight
decay 1e-4 on m and xi (not pi), and the projection pi <- clip(pi, 0, 1), xi <- max(xi, 0) after
every step.

One seed fixes everything: the initialisation, the data order, every eps and every sampled
sub-network, so CPU runs are bit-identical and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from mfbook import _checks
from mfbook.analysis import error_rate
from mfbook.checkpoint import load_checkpoint, save_checkpoint
from mfbook.data import load_mnist
from mfbook.nn import MeanFieldMLP, PlainMLP
from mfbook.update import folded, update_

METHODS = ("gbp", "bp")


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
    weight_decay: float = 1e-4  # decoupled, on m and xi (gbp) or w (bp); never on pi
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    reset_adam_each_epoch: bool = True
    m_var: float = 2 / 784
    xi_max: float = 0.01
    pi_init: float = 0.0
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
        """Minibatches per epoch over ``n_images`` (default: n_train; the last one may be short)."""
        n = self.n_train if n_images is None else n_images
        if n is None:
            raise ValueError("n_train is None (all images): pass n_images")
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
    """A named configuration: ``paper``, ``paper_bp``, ``full`` or ``smoke``."""
    _checks.choice("preset", name, tuple(PRESETS))
    return PRESETS[name]


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available")
    return device


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: dict[str, list[float]]
    config: TrainConfig
    seed: int
    device: str


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf; the last good checkpoint is kept."""


def build_model(config: TrainConfig, seed: int) -> torch.nn.Module:
    """The model of ``config``, initialised on the CPU from ``seed`` (identical on every device)."""
    gen = torch.Generator().manual_seed(seed)
    if config.method == "bp":
        model = PlainMLP(config.sizes, m_var=config.m_var)
    else:
        model = MeanFieldMLP(
            config.sizes, m_var=config.m_var, xi_max=config.xi_max, pi_init=config.pi_init
        )
    model.reset_parameters(gen)
    return model


def make_optimizer(model, config: TrainConfig, lr, capturable: bool = False) -> torch.optim.Adam:
    """Adam with one parameter group per kind of parameter (pi, m, xi), as the reference code.

    ``lr`` is a float, or a 0-d tensor on the parameters' device that the caller updates in place
    (with ``capturable=True``: the CUDA-graph path of :mod:`mfbook.graphs`).
    """
    if config.method == "bp":
        groups = [{"params": list(model.weights)}]
    else:  # one group per kind of parameter, as in the reference code
        groups = [{"params": [getattr(lay, k) for lay in model.layers]} for k in ("pi", "m", "xi")]
    # fused: one kernel per step instead of a dozen elementwise passes (CPU and CUDA)
    return torch.optim.Adam(
        groups,
        lr=lr,
        betas=config.adam_betas,
        eps=config.adam_eps,
        fused=True,
        capturable=capturable,
    )


def decayed_parameters(model, config: TrainConfig) -> list[torch.Tensor]:
    """The tensors that get the decoupled weight decay: m and xi (gbp) or w (bp), never pi."""
    if config.method == "bp":
        return list(model.weights)
    return [p for lay in model.layers for p in (lay.m, lay.xi)]


def all_finite(model) -> bool:
    """Whether every parameter of ``model`` is finite (one host synchronisation)."""
    # the min and max of every tensor, summed in float64: finite exactly when all of them are
    # (a float32 value is below 4e38, so a sum of finite ones cannot overflow); aminmax is one
    # cheap pass, where isfinite(p).all() builds a mask first
    ends = torch.stack([torch.stack(torch.aminmax(p.detach())) for p in model.parameters()])
    return bool(torch.isfinite(ends.double().sum()))


def training_step(model, xb, yb, opt, method: str, decayed, decay, eps=None, generator=None):
    """One minibatch step (chapter 4, PAPER.md section 4); returns the loss as a 0-d tensor.

    The noisy mean-field forward with ``eps`` (or fresh eps from ``generator``), the loss,
    ``loss.backward()`` (gBP, for the mean-field model), the Adam step, the decoupled weight
    decay (``decayed`` tensors times ``decay`` = 1 - lr * weight_decay) and, for gbp, the
    projection. On the CPU, gBP's layers apply the update during the backward pass
    (:func:`mfbook.update.folded`: the same numbers, no gradients stored). The caller zeroes the
    gradients first. No host synchronisation.
    """
    logits = model.logits(xb, "mf", eps, generator)
    loss = F.cross_entropy(logits, yb)
    bounds = model.bounds() if method == "gbp" else ()
    with folded(opt, decayed, decay, bounds):  # gBP on the CPU: each layer updates in backward
        loss.backward()
    update_(opt, decayed, decay, bounds)  # every parameter that still has a gradient
    return loss.detach()


def check_step(loss, model, step: int) -> None:
    """Raise :class:`TrainingDiverged` naming ``step`` when the loss or a parameter is not
    finite (one host synchronisation)."""
    if not (bool(torch.isfinite(loss)) and all_finite(model)):
        raise TrainingDiverged(f"step {step} (loss {float(loss)})")


def train_epoch(
    model, x, y, opt, config: TrainConfig, lr: float, order_gen, noise_gen, check_steps=False
):
    """One epoch of minibatch training on (x, y), any data set (chapter 4, PAPER.md section 4).

    Reshuffle with ``order_gen``; then one :func:`training_step` per minibatch, with fresh eps
    from ``noise_gen`` (gbp) and the decay factor 1 - lr * config.weight_decay. Returns the mean
    training loss as a 0-d tensor (no host synchronisation inside the loop).
    ``check_steps=True`` checks the loss and the parameters after every step (one
    synchronisation per step) and raises :class:`TrainingDiverged` naming the first bad step;
    :func:`train` uses it to replay an epoch that went wrong.
    """
    n = x.shape[0]
    perm = torch.randperm(n, generator=order_gen).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    decayed, decay = decayed_parameters(model, config), 1 - lr * config.weight_decay
    for step, start in enumerate(range(0, n, config.batch_size), start=1):
        idx = perm[start : start + config.batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        opt.zero_grad(set_to_none=True)
        loss = training_step(model, xb, yb, opt, config.method, decayed, decay, None, noise_gen)
        loss_sum += loss * idx.numel()
        if check_steps:
            check_step(loss, model, step)
    return loss_sum / n


class _EagerEpochs:
    """train_epoch behind the interface of :class:`mfbook.graphs.GraphedEpochs`."""

    def __init__(self, model, config: TrainConfig, x, y, noise_gen):
        self.model, self.config, self.x, self.y, self.noise_gen = model, config, x, y, noise_gen
        self.opt, self.lr = None, config.lr

    def start_epoch(self, lr: float, fresh: bool) -> None:
        if fresh or self.opt is None:
            self.opt = make_optimizer(self.model, self.config, lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.lr = lr

    def epoch(self, order_gen, check_steps: bool = False) -> torch.Tensor:
        m, c = self.model, self.config
        return train_epoch(
            m, self.x, self.y, self.opt, c, self.lr, order_gen, self.noise_gen, check_steps
        )

    def optimizer_state(self) -> dict:
        return copy.deepcopy(self.opt.state_dict())

    def load_optimizer_state(self, state: dict) -> None:
        self.opt.load_state_dict(state)


def _epochs(model, config: TrainConfig, x, y, noise_gen, cuda_graphs):
    """The epoch runner: CUDA graphs by default on a GPU when every batch is full, else eager.

    When the default choice of graphs fails to capture (an old driver, say), training goes on
    eagerly with a warning naming the error; ``cuda_graphs=True`` raises it instead.
    """
    auto = cuda_graphs is None
    if auto:
        cuda_graphs = x.device.type == "cuda" and x.shape[0] % config.batch_size == 0
    if cuda_graphs:
        from mfbook.graphs import GraphedEpochs  # imports this module

        try:
            return GraphedEpochs(model, config, x, y, noise_gen, graph=True)
        except RuntimeError as err:
            if not auto:
                raise
            warnings.warn(
                f"CUDA-graph capture failed ({err}); training eagerly instead (slower). "
                "Pass cuda_graphs=False to skip the attempt.",
                stacklevel=3,
            )
    return _EagerEpochs(model, config, x, y, noise_gen)


def _locate_divergence(model, runner, order_gen, noise_gen, snapshot) -> str:
    """Replay a diverged epoch from its start, checking every step; leave the model at the start."""
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


@torch.no_grad()
def evaluate(model, x, y, config: TrainConfig, generator=None) -> dict[str, float]:
    """Test errors: the mean network, and (gbp) the noisy mean-field forward and ONE sampled
    sub-network, each drawn from ``generator``."""
    if config.method == "bp":
        outputs = {"test_error_mean": model.logits(x)}
    else:
        mean, mf = model.mean_and_mf_logits(x, generator)
        outputs = {
            "test_error_mean": mean,
            "test_error_mf": mf,
            "test_error_sample": model.sample_network(generator)(x),
        }
    return {k: error_rate(v, y) for k, v in outputs.items()}


def train(
    config: TrainConfig | str,
    device="auto",
    progress: bool = True,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    data_root=None,
    callback=None,
    cuda_graphs: bool | None = None,
) -> TrainResult:
    """Train ``config`` (a TrainConfig or a preset name) and return the model and its history.

    With ``checkpoint`` the state is saved atomically after every epoch; with ``resume`` (the
    default) an existing checkpoint of the same config and seed is continued where it stopped.
    ``callback(model, row)`` is called after every epoch with that epoch's history row (live
    plots in the book; raising in it stops training after the checkpoint is written).
    ``cuda_graphs``: replay each step as a CUDA graph (:mod:`mfbook.graphs`); the default, None,
    does so on a GPU when the training images fill whole batches.
    """
    if isinstance(config, str):
        config = preset(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or a preset name, got {type(config)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    dev = resolve_device(device)
    x, y = load_mnist("train", n=config.n_train, root=data_root, device=dev)
    xt, yt = load_mnist("test", n=config.n_test, root=data_root, device=dev)
    if config.sizes[0] != x.shape[1] or config.sizes[-1] != 10:
        raise ValueError(f"sizes must start with 784 and end with 10 for MNIST, got {config.sizes}")

    model = build_model(config, seed).to(dev)
    order_gen = torch.Generator().manual_seed(seed + 1)  # data order (CPU, moved per epoch)
    noise_gen = torch.Generator(device=dev).manual_seed(seed + 2)  # eps and sampled networks
    history: dict[str, list[float]] = {}
    start_epoch = 0
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, expect_config=config.to_dict(), expect_seed=seed)
        model.load_state_dict(state["model"])
        order_gen.set_state(state["order_gen"])
        if state["device_type"] == dev.type:
            noise_gen.set_state(state["noise_gen"])
        else:  # generator states differ between CPU and CUDA: continue, but not bit-identically
            warnings.warn(
                f"checkpoint {checkpoint} was written on {state['device_type']}, resuming on "
                f"{dev.type}: the noise stream is re-seeded, the run is not bit-identical",
                stacklevel=2,
            )
            noise_gen.manual_seed(seed + 2 + state["epoch"])
        history, start_epoch = state["history"], state["epoch"]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"{config.name} seed {seed}")
    if cuda_graphs and dev.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, got {dev}")
    runner = _epochs(model, config, x, y, noise_gen, cuda_graphs)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        lr = config.lr_at(epoch)
        runner.start_epoch(lr, fresh=config.reset_adam_each_epoch)
        snapshot = (
            {k: v.clone() for k, v in model.state_dict().items()},
            runner.optimizer_state(),
            order_gen.get_state(),
            noise_gen.get_state(),
        )
        train_loss = float(runner.epoch(order_gen))
        if not (math.isfinite(train_loss) and all_finite(model)):
            where = _locate_divergence(model, runner, order_gen, noise_gen, snapshot)
            kept = f"; the checkpoint of epoch {epoch} is kept" if checkpoint and epoch else ""
            raise TrainingDiverged(
                f"training {config.name} (seed {seed}) diverged in epoch {epoch + 1}, {where}: "
                f"the loss or the parameters became NaN or inf. The model was restored to the "
                f"start of that epoch{kept}. Try a smaller lr."
            )
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
        row.update(evaluate(model, xt, yt, config, noise_gen))
        row["seconds"] = time.perf_counter() - t0
        for k, v in row.items():
            history.setdefault(k, []).append(v)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                model=model.state_dict(),
                config=config.to_dict(),
                seed=seed,
                epoch=epoch + 1,
                history=history,
                order_gen=order_gen.get_state(),
                noise_gen=noise_gen.get_state(),
                device_type=dev.type,
            )
        if callback is not None:
            callback(model, row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                {k.replace("test_error_", "err_"): f"{v:.4f}" for k, v in row.items() if "err" in k}
            )
    if bar is not None:
        bar.close()
    return TrainResult(model.cpu(), history, config, seed, str(dev))


def model_from_checkpoint(path: str | Path) -> TrainResult:
    """Rebuild the trained model (on the CPU) with its config and history from a checkpoint."""
    state = load_checkpoint(path)
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config, state["seed"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        msg = f"checkpoint {path} does not match the architecture {config.sizes}: {err}"
        raise ValueError(msg) from err
    return TrainResult(model, state["history"], config, state["seed"], state["device_type"])
