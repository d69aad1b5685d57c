"""Training on MNIST: the protocol of a :class:`~mfbook.config.TrainConfig`, checkpoints,
resume (chapter 4).

:func:`train` loads the data, builds the model from the seed, and drives an epoch runner of
:mod:`mfbook.loop` (or, on a GPU, the CUDA-graph runner of :mod:`mfbook.fast.graphs`) epoch by
epoch, evaluating and checkpointing after each. One seed fixes everything: the initialisation,
the data order, every eps and every sampled sub-network, so CPU runs are bit-identical and a
resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from mfbook.analysis import error_rate
from mfbook.checkpoint import load_checkpoint, save_checkpoint
from mfbook.config import PRESETS, TrainConfig, preset
from mfbook.data import load_mnist
from mfbook.fast import kernels
from mfbook.fast.graphs import GraphedEpochs
from mfbook.loop import EagerEpochs, TrainingDiverged, all_finite, build_model, locate_divergence

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "TrainingDiverged", "preset", "train"]

#: The largest seed: seed + 2 seeds the noise generator, and every seed fits an int64.
MAX_SEED = 2**63 - 3


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(device)!r} was requested but there are only "
            f"{torch.cuda.device_count()} CUDA devices"
        )
    return device


def kernels_in_use(config: TrainConfig, device: torch.device) -> bool:
    """Whether the fused CPU kernels run this training: built, not turned off
    (``MFBOOK_KERNELS=0``, :func:`mfbook.fast.kernels.disabled`), and applicable to the
    config's dtype on ``device`` (float32 on the CPU). Recorded in every checkpoint."""
    return kernels.applies(torch.empty(0, dtype=getattr(torch, config.dtype), device=device))


def _resume_state(state: dict, path, dev: torch.device, fused: bool, noise_gen, seed: int):
    """Set ``noise_gen`` from a checkpoint's ``state``, warning where the resumed run cannot be
    bit-identical: written on another device type, or with the fused kernels set otherwise."""
    if state["device_type"] != dev.type:  # generator states differ between CPU and CUDA
        warnings.warn(
            f"checkpoint {path} was written on {state['device_type']}, resuming on "
            f"{dev.type}: the noise stream is re-seeded, the run is not bit-identical",
            stacklevel=3,
        )
        noise_gen.manual_seed(seed + 2 + state["epoch"])
        return
    noise_gen.set_state(state["noise_gen"])
    if state["kernels"] != fused:
        onoff = {True: "on", False: "off"}
        warnings.warn(
            f"checkpoint {path} was written with the fused CPU kernels {onoff[state['kernels']]}, "
            f"they are {onoff[fused]} now (MFBOOK_KERNELS, kernels.disabled()): the resumed run "
            "is no longer bit-identical to an uninterrupted one",
            stacklevel=3,
        )


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: dict[str, list[float]]
    config: TrainConfig
    seed: int
    device: str


def _epochs(model, config: TrainConfig, x, y, noise_gen, cuda_graphs):
    """The epoch runner: CUDA graphs by default on a GPU when every batch is full, else eager.

    When the default choice of graphs fails to capture (an old driver, say), training goes on
    eagerly with a warning naming the error; ``cuda_graphs=True`` raises it instead.
    """
    auto = cuda_graphs is None
    if auto:
        cuda_graphs = x.device.type == "cuda" and x.shape[0] % config.batch_size == 0
    if cuda_graphs:
        try:
            return GraphedEpochs(model, config, x, y, noise_gen)
        except RuntimeError as err:
            if not auto:
                raise
            warnings.warn(
                f"CUDA-graph capture failed ({err}); training eagerly instead (slower). "
                "Pass cuda_graphs=False to skip the attempt.",
                stacklevel=3,
            )
    return EagerEpochs(model, config, x, y, noise_gen)


@torch.no_grad()
def evaluate(model, x, y, config: TrainConfig, generator=None, split="test") -> dict[str, float]:
    """Errors on ``x``: the mean network, and (gbp) the noisy mean-field forward and ONE
    sampled sub-network, each drawn from ``generator``; keys ``<split>_error_mean`` etc."""
    if config.method == "bp":
        outputs = {"mean": model.logits(x)}
    else:
        mean, mf = model.mean_and_mf_logits(x, generator)
        outputs = {"mean": mean, "mf": mf, "sample": model.sample_network(generator)(x)}
    return {f"{split}_error_{k}": error_rate(v, y) for k, v in outputs.items()}


def _data(config: TrainConfig, root, dev):
    """(x, y, x_eval, y_eval, split): the training images and the ones errors are measured on,
    the test set, or with ``n_val`` the last n_val training images, held out ("val")."""
    dtype = getattr(torch, config.dtype)
    x, y = load_mnist("train", n=config.n_train, root=root, device=dev)
    if config.n_val:
        cut = x.shape[0] - config.n_val
        return x[:cut].to(dtype), y[:cut], x[cut:].to(dtype), y[cut:], "val"
    xt, yt = load_mnist("test", n=config.n_test, root=root, device=dev)
    return x.to(dtype), y, xt.to(dtype), yt, "test"


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
    ``cuda_graphs``: replay each step as a CUDA graph (:mod:`mfbook.fast.graphs`); the default,
    None, does so on a GPU when the training images fill whole batches.
    """
    if isinstance(config, str):
        config = preset(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or a preset name, got {type(config)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative int, at most {MAX_SEED}, got {seed!r}")
    dev = resolve_device(device)
    x, y, xt, yt, split = _data(config, data_root, dev)
    if config.sizes[0] != x.shape[1] or config.sizes[-1] != 10:
        raise ValueError(f"sizes must start with 784 and end with 10 for MNIST, got {config.sizes}")

    model = build_model(config, seed).to(dev)
    order_gen = torch.Generator().manual_seed(seed + 1)  # data order (CPU, moved per epoch)
    noise_gen = torch.Generator(device=dev).manual_seed(seed + 2)  # eps and sampled networks
    history: dict[str, list[float]] = {}
    start_epoch = 0
    fused = kernels_in_use(config, dev)
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, expect_config=config.to_dict(), expect_seed=seed)
        model.load_state_dict(state["model"])
        order_gen.set_state(state["order_gen"])
        _resume_state(state, checkpoint, dev, fused, noise_gen, seed)
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
            where = locate_divergence(model, runner, order_gen, noise_gen, snapshot)
            kept = f"; the checkpoint of epoch {epoch} is kept" if checkpoint and epoch else ""
            raise TrainingDiverged(
                f"training {config.name} (seed {seed}) diverged in epoch {epoch + 1}, {where}: "
                f"the loss or the parameters became NaN or inf. The model was restored to the "
                f"start of that epoch{kept}. Try a smaller lr."
            )
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
        row.update(evaluate(model, xt, yt, config, noise_gen, split))
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
                kernels=fused,
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
