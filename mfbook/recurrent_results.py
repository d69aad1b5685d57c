"""The stored experiments of the temporal chapter (chapter 9), by name.

* ``rnn_mnist``: the recurrent ensemble trained by gBPTT on row-by-row MNIST, 3 seeds;
* ``rnn_mnist_bptt``: the same leaky ReLU RNN with one weight per connection, trained by
  backprop through time, 3 seeds, its learning rate chosen first on 10,000 training images held
  out (one run per rate, seed 0; the lowest validation error of the network wins);
* ``rnn_msi``: the ensemble trained on the multisensory integration task, 3 seeds.

``python -m mfbook reproduce NAME`` trains and stores one, as for the feed-forward experiments
(:mod:`mfbook.reproduce`): a ``summary.json`` with the config, every seed's history, final
errors and wall time, and the parameters of every seed (``seed<k>.npz``). A result is current
when its config, seeds and files are today's and its ``"reference"`` statistics (a tiny float64
gBPTT, BPTT and multisensory run, :func:`reference_statistics`) are what today's code computes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mfbook import _checks, fingerprint, msi
from mfbook._params_file import read_params, save_params
from mfbook._records import environment, final_errors, final_stats
from mfbook.io import atomic_write, recover_folder, staged_folder
from mfbook.msi_train import MSIConfig, build_msi_model, train_msi
from mfbook.rnn_train import RecurrentConfig, build_recurrent, train_recurrent

SEEDS = (0, 1, 2)
#: Backprop through time's learning rates, each tried on held-out training images (seed 0).
BPTT_LRS = (1e-3, 3e-3, 1e-2, 3e-2)
N_VAL = 10_000
_MNIST = {"epochs": 15, "lr": 3e-3, "lr_halve_every": 5}


@dataclass(frozen=True)
class RecurrentExperiment:
    config: RecurrentConfig | MSIConfig
    seeds: tuple[int, ...] = SEEDS
    lr_sweep: tuple[float, ...] = ()  # learning rates to choose from on held-out images


RECURRENT = {
    "rnn_mnist": RecurrentExperiment(RecurrentConfig(name="rnn_mnist", **_MNIST)),
    "rnn_mnist_bptt": RecurrentExperiment(
        RecurrentConfig(name="rnn_mnist_bptt", method="bptt", **_MNIST), lr_sweep=BPTT_LRS
    ),
    "rnn_msi": RecurrentExperiment(MSIConfig(name="rnn_msi")),
}


def config_from_dict(d: dict) -> RecurrentConfig | MSIConfig:
    """The config a summary records (its ``"kind"`` names the class); ValueError otherwise."""
    if not isinstance(d, dict):
        raise ValueError(f"a stored recurrent config must be an object, got {type(d).__name__}")
    classes = {"mnist": RecurrentConfig, "msi": MSIConfig}
    kind = d.get("kind")
    if kind not in classes:
        raise ValueError(f"a stored recurrent config has an unknown kind {kind!r}")
    fields = {f.name for f in dataclasses.fields(classes[kind])}
    if unknown := set(d) - fields - {"kind"}:
        raise ValueError(f"unknown fields of a stored {kind} config: {sorted(unknown)}")
    return classes[kind](**{k: v for k, v in d.items() if k != "kind"})


def config_to_dict(config) -> dict:
    return {
        "kind": "msi" if isinstance(config, MSIConfig) else "mnist",
        **dataclasses.asdict(config),
    }


def _train(config, seed: int, progress: bool):
    if isinstance(config, MSIConfig):
        return train_msi(config, seed, progress)
    return train_recurrent(config, seed, progress=progress)


def _tiny_runs() -> list[torch.Tensor]:
    """Three training steps of gBPTT and BPTT on random sequences, and three of the
    multisensory task, in float64: the losses and the parameters after them."""
    out = []
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 6, 28, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (16,), generator=gen)
    for method in ("gbptt", "bptt"):
        model = build_recurrent(RecurrentConfig(method=method, n_rec=12), gen).double()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x, generator=gen), y)
            loss.backward()
            opt.step()
            if method == "gbptt":
                model.project_()
            out.append(loss.detach())
        out += [p.detach() for p in model.parameters()]
    model = build_msi_model(MSIConfig(), gen).double()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        trials = msi.batch(gen, dtype=torch.float64)
        opt.zero_grad()
        loss = msi.masked_mse(model(trials.x, generator=gen), trials)
        loss.backward()
        opt.step()
        model.project_()
        out.append(loss.detach())
    return out + [p.detach() for p in model.parameters()]


def reference_statistics() -> list[list[float]]:
    """:func:`_tiny_runs` reduced to ``[sum x, sum |x|, sum x^2]`` per tensor."""
    with torch.random.fork_rng(devices=[]):
        tensors = _tiny_runs()
    return [[float(t.sum()), float(t.abs().sum()), float(t.square().sum())] for t in tensors]


def _params_path(folder: Path, seed: int) -> Path:
    return folder / f"seed{seed}.npz"


def _run_entry(config, seed: int, progress: bool, folder: Path | None) -> dict:
    t0 = time.perf_counter()
    result = _train(config, seed, progress)
    seconds = time.perf_counter() - t0
    if folder is not None:
        save_params(_params_path(folder, seed), result.model)
    history = result.history
    return {
        "seed": seed,
        "history": history,
        "final": final_errors(history),
        "train_seconds": seconds,
        "config": config_to_dict(config),
    }


def run(name: str, folder: Path, progress: bool = True) -> dict:
    """Train every run of experiment ``name`` and store it in ``folder`` (on the CPU)."""
    exp = RECURRENT[name]
    config, extra = exp.config, {}
    recover_folder(folder)
    with staged_folder(folder) as staging:
        if exp.lr_sweep:  # choose the learning rate on held-out images, then train the seeds
            sweep = {
                f"{lr:g}": _run_entry(
                    dataclasses.replace(config, lr=lr, n_val=N_VAL), 0, progress, None
                )
                for lr in exp.lr_sweep
            }
            best = min(sweep, key=lambda k: sweep[k]["final"]["val_error_mean"])
            extra = {"lr_sweep": sweep, "chosen_lr": float(best)}
            config = dataclasses.replace(config, lr=float(best))
        runs = {str(s): _run_entry(config, s, progress, staging) for s in exp.seeds}
        summary = {
            "name": name,
            "config": config_to_dict(exp.config),
            "seeds": list(exp.seeds),
            "kept": [str(s) for s in exp.seeds],
            "runs": runs,
            **extra,
            **final_stats(runs.values()),
            "environment": environment(torch.device("cpu")),
            "reference": reference_statistics(),
            "files": fingerprint.file_hashes(
                staging, [_params_path(staging, s).name for s in exp.seeds]
            ),
            "command": f"python -m mfbook reproduce {name}",
        }
        atomic_write(staging / "summary.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def stale_problem(name: str, summary: dict, folder: Path) -> str | None:
    """Why the stored ``summary`` of ``name`` is not current (a phrase), or None."""
    exp = RECURRENT[name]
    if config_from_dict(summary["config"]) != exp.config or summary["seeds"] != list(exp.seeds):
        return "its config or seeds are not today's"
    for s in exp.seeds:
        run_config = config_from_dict(summary["runs"][str(s)]["config"])
        if exp.lr_sweep:  # its own learning rate, checked below
            run_config = dataclasses.replace(run_config, lr=exp.config.lr)
        if run_config != exp.config:
            return f"its run of seed {s} was trained with another config"
    if exp.lr_sweep:
        sweep = summary["lr_sweep"]
        if sorted(sweep) != sorted(f"{lr:g}" for lr in exp.lr_sweep):
            return "its learning-rate sweep is not today's"
        best = float(min(sweep, key=lambda k: sweep[k]["final"]["val_error_mean"]))
        lrs = {config_from_dict(r["config"]).lr for r in summary["runs"].values()}
        if summary["chosen_lr"] != best or lrs != {best}:
            return f"its seeds were not trained with the learning rate its sweep chose ({best:g})"
    if problem := fingerprint.files_problem(folder, summary.get("files")):
        return problem
    return fingerprint.statistics_problem(summary.get("reference"), reference_statistics())


def load_model(name: str, summary: dict, folder: Path, seed: int = 0) -> torch.nn.Module:
    """The stored trained model of seed ``seed`` (checked against its recorded sha256)."""
    _checks.choice("seed", str(seed), tuple(summary["kept"]))
    config = config_from_dict(summary["runs"][str(seed)]["config"])
    gen = torch.Generator().manual_seed(seed)
    model = (
        build_msi_model(config, gen)
        if isinstance(config, MSIConfig)
        else build_recurrent(config, gen)
    )
    path = _params_path(folder, seed)
    if not path.is_file():
        raise FileNotFoundError(f"no stored parameters {path}")
    arrays = read_params(path, model.state_dict(), summary.get("files", {}).get(path.name), name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    return model
