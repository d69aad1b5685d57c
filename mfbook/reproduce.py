"""Long experiments as cached, re-runnable results (chapters 4-6).

``python -m mfbook reproduce NAME`` trains the runs of an experiment and writes small files that
the chapters load: ``summary.json`` (the config, every seed's history, final errors, wall times,
the machine and library versions) and ``seed<k>.npz`` (the full parameters of one representative
seed, compressed). A result is reused only when its stored config equals the current one;
``--force`` recomputes. Runs checkpoint to ``runs/`` after every epoch, so an interrupted
reproduction continues where it stopped. Every file is written atomically (``mfbook.io``), and
the temporary files of a reproduction that was killed are removed by the next one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mfbook import _checks, fingerprint, studies
from mfbook._params_file import read_params, save_params
from mfbook._records import benchmarks_dir as benchmarks_dir
from mfbook._records import environment
from mfbook._records import load_benchmark as load_benchmark
from mfbook._results_index import render_index
from mfbook.data import load_mnist
from mfbook.io import atomic_write, clean_orphans, recover_folder, staged_folder
from mfbook.train import TrainConfig, build_model, preset, resolve_device, train

RESULTS_ENV = "MFBOOK_RESULTS"


@dataclass(frozen=True)
class Run:
    label: str  # "0".."4" for seeds, "n10000" for a data-size sweep
    config: TrainConfig
    seed: int
    keep: bool  # store its full parameters


@dataclass(frozen=True)
class Experiment:
    """A preset, optionally changed, trained for several seeds or several training-set sizes."""

    preset: str
    seeds: tuple[int, ...] = (0,)
    keep_params: tuple[int, ...] = (0,)  # seeds whose full parameters are stored
    changes: tuple[tuple[str, object], ...] = ()  # applied to the preset
    n_train_sweep: tuple[int, ...] = ()  # one run per size and seed, all parameters kept

    def config(self) -> TrainConfig:
        return preset(self.preset).replace(**dict(self.changes))

    def runs(self) -> list[Run]:
        base = self.config()
        if self.n_train_sweep:  # every size with every seed (seed by seed), all kept
            return [
                Run(f"n{n}-s{seed}", base.replace(n_train=n), seed, True)
                for seed in self.seeds
                for n in self.n_train_sweep
            ]
        return [Run(str(s), base, s, s in self.keep_params) for s in self.seeds]


SEEDS = (0, 1, 2, 3, 4)
EXPERIMENTS = {
    "paper": Experiment("paper", SEEDS, keep_params=SEEDS),
    "paper_bp": Experiment("paper_bp", SEEDS, keep_params=SEEDS),
    "paper_2022": Experiment("paper_2022", SEEDS, keep_params=SEEDS),
    "full": Experiment("full", (0,)),
    # Chapter 6: a deeper net (4 weight layers) at 10k-40k training images, 3 seeds per size.
    # The paper does not give its hidden widths; we keep the paper preset's 100 in all three.
    "deep": Experiment(
        "paper",
        seeds=(0, 1, 2),
        changes=(("name", "deep"), ("sizes", (784, 100, 100, 100, 10))),
        n_train_sweep=(10_000, 20_000, 30_000, 40_000),
    ),
}
#: Analyses computed from stored models (name -> the experiment they read).
ANALYSES = {"credit": "paper", "entropy": "deep"}


def names() -> tuple[str, ...]:
    """Every name ``reproduce`` knows: the experiments, then the analyses."""
    return tuple(EXPERIMENTS) + tuple(ANALYSES)


def results_dir(root=None) -> Path:
    """``root``, else $MFBOOK_RESULTS, else ``book/results`` of the source tree."""
    if root is not None:
        return Path(root)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    return Path(__file__).resolve().parent.parent / "book" / "results"


def _write_json(path: Path, obj) -> Path:
    """A ``summary.json``, atomically (a symbolic link at ``path`` is refused)."""
    return atomic_write(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def load_summary(name: str, root=None) -> dict:
    """The stored ``summary.json`` of an experiment or analysis."""
    _checks.choice("name", name, names())
    path = results_dir(root) / name / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no stored result {path}; produce it with: python -m mfbook reproduce {name}"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"stored result {path} is not valid JSON: {err}") from err


def load_model(name: str, seed: int = 0, root=None, run: str | None = None):
    """The stored trained model of experiment ``name``: run ``run`` (e.g. "n20000" of a sweep),
    by default the run of ``seed`` (on the CPU)."""
    summary = load_summary(name, root)
    label = str(seed) if run is None else run
    if label not in summary["runs"] or label not in summary.get("kept", []):
        raise ValueError(f"{name} has no stored parameters for run {label!r}: {summary['kept']}")
    entry = summary["runs"][label]
    config = TrainConfig.from_dict(entry.get("config", summary["config"]))
    path = _params_path(results_dir(root) / name, label)
    if not path.is_file():
        raise FileNotFoundError(f"no stored parameters {path}")
    model = build_model(config, entry.get("seed", seed))
    arrays = read_params(path, model.state_dict(), summary.get("files", {}).get(path.name), name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    return model


def _config_key(config: TrainConfig) -> str:
    """A short hash of the config: checkpoints of different configs never meet."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _config_problem(s: dict, exp: Experiment) -> str | None:
    as_json = lambda c: json.loads(json.dumps(c.to_dict()))  # noqa: E731 (tuples -> lists)
    if s.get("config") != as_json(exp.config()) or s.get("seeds") != list(exp.seeds):
        return "its config or seeds are not today's preset"
    stored = s.get("runs", {})
    for r in exp.runs():
        if r.label not in stored or stored[r.label].get("config", s["config"]) != as_json(r.config):
            return f"its run {r.label} is missing or was trained with another config"
    return None


def stale_reason(name: str, root=None) -> str | None:
    """Why the stored result of experiment ``name`` is not current (a sentence), or None.

    Current means: computed from today's preset, seeds and runs; its parameter files are the
    ones it wrote (sha256); and today's code computes the same numbers (the numerics
    fingerprint of :mod:`mfbook.fingerprint`, checked where this machine can compute it as the
    result's machine did)."""
    _checks.choice("experiment", name, tuple(EXPERIMENTS))
    try:
        s = load_summary(name, root)
    except (FileNotFoundError, ValueError) as err:
        return str(err)
    problem = _config_problem(s, EXPERIMENTS[name])
    problem = problem or fingerprint.files_problem(results_dir(root) / name, s.get("files"))
    if problem is None:
        with contextlib.suppress(fingerprint.NotComparable):
            problem = _numerics_problem(json.dumps(s.get("numerics"), sort_keys=True))
    return None if problem is None else f"stored result {name}: {problem}"


@functools.lru_cache(maxsize=8)
def _numerics_problem(recorded: str) -> str | None:
    return fingerprint.numerics_problem(json.loads(recorded))


def is_current(name: str, root=None) -> bool:
    """Whether the stored result of experiment ``name`` is current (:func:`stale_reason`): the
    chapters' test that they show the real protocol, not a stale or stand-in run."""
    return stale_reason(name, root) is None


def _params_path(out: Path, label: str) -> Path:
    return out / (f"seed{label}.npz" if label.isdigit() else f"{label}.npz")


def run_experiment(name: str, force=False, device="auto", root=None, progress=True, runs="runs"):
    """Train every run of experiment ``name`` (resuming from checkpoints) and store the results."""
    exp = EXPERIMENTS[name]
    base = exp.config()
    out = results_dir(root) / name
    recover_folder(out)
    if not force and is_current(name, root):
        return load_summary(name, root)
    dev = resolve_device(device)
    with staged_folder(out) as staging:  # new files replace the old ones only all together
        per_run = {}
        for run in exp.runs():
            ckpt = Path(runs) / name / _config_key(run.config) / f"seed{run.seed}.pt"
            if force and ckpt.exists():
                ckpt.unlink()
            t0 = time.perf_counter()
            result = train(
                run.config, device=dev, progress=progress, seed=run.seed, checkpoint=ckpt
            )
            history = result.history
            per_run[run.label] = {
                "seed": run.seed,
                "history": history,
                "final": {k: v[-1] for k, v in history.items() if k.startswith("test_error")},
                "train_seconds": float(sum(history["seconds"])),
                "wall_seconds_this_call": time.perf_counter() - t0,
                "config": run.config.to_dict(),
            }
            if run.keep:
                save_params(_params_path(staging, run.label), result.model)
        finals = {k: [r["final"][k] for r in per_run.values()] for k in per_run[run.label]["final"]}
        kept = [r.label for r in exp.runs() if r.keep]
        summary = {
            "name": name,
            "config": base.to_dict(),
            "seeds": list(exp.seeds),
            "kept": kept,
            "runs": per_run,
            "final_mean": {k: float(np.mean(v)) for k, v in finals.items()},
            "final_std": {k: float(np.std(v)) for k, v in finals.items()},
            "environment": environment(dev),
            "numerics": fingerprint.numerics() if dev.type == "cpu" else {"device": dev.type},
            "files": fingerprint.file_hashes(
                staging, [_params_path(staging, k).name for k in kept]
            ),
            "command": f"python -m mfbook reproduce {name}",
        }
        _write_json(staging / "summary.json", summary)
    _numerics_problem.cache_clear()
    return summary


def _credit(source: str, root, n_networks: int = 10, seed: int = 0) -> dict:
    """:func:`mfbook.studies.credit` of every stored seed of ``source``; the first seed's
    numbers also at the top level (the representative run of chapter 5)."""
    summary = load_summary(source, root)
    models = {label: load_model(source, root=root, run=label) for label in summary["kept"]}
    x, y = load_mnist("test")
    x_train, _ = load_mnist("train", n=summary["config"]["n_train"])
    out = studies.credit(models, x, y, x_train, n_networks, seed)
    first = out["seeds"][summary["kept"][0]]
    return {**{k: first[k] for k in ("fractions", "perturbation", "subnetwork_errors")}, **out}


def _entropy(source: str, root, seed: int = 0) -> dict:
    """:func:`mfbook.studies.entropy` of every stored run of a sweep."""
    summary = load_summary(source, root)
    models, meta = {}, {}
    for label in summary["kept"]:
        run = summary["runs"][label]
        models[label] = load_model(source, root=root, run=label)
        n_train = run.get("config", summary["config"])["n_train"]
        meta[label] = {"n_train": n_train, "seed": run["seed"], "final": run["final"]}
    return studies.entropy(models, meta, seed)


_ANALYSES = {
    "credit": (_credit, {"n_networks": 10, "seed": 0}),
    "entropy": (_entropy, {"seed": 0}),
}


def run_analysis(name: str, force=False, root=None) -> dict:
    """Compute (or reuse) analysis ``name`` from the stored models of its experiment."""
    source = ANALYSES[name]
    func, settings = _ANALYSES[name]
    base = load_summary(source, root)
    out = results_dir(root) / name / "summary.json"
    key = {
        "source_config": base["config"],
        "source_runs": base["kept"],
        "source_files": base.get("files"),
        **settings,
    }
    if not force and out.is_file():
        try:
            old = json.loads(out.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("key") == key:
            return old
    t0 = time.perf_counter()
    summary = {"name": name, "key": key, **func(source, root, **settings)}
    summary["seconds"] = time.perf_counter() - t0
    summary["command"] = f"python -m mfbook reproduce {name}"
    _write_json(out, summary)
    return summary


def _clean_orphans(name: str, root) -> None:
    """Remove what a killed reproduction left: temporary files beside the files it writes."""
    folder = results_dir(root)
    clean_orphans(folder, "README.md")
    runs = EXPERIMENTS[name].runs() if name in EXPERIMENTS else []
    for target in ["summary.json", *(_params_path(folder, r.label).name for r in runs if r.keep)]:
        clean_orphans(folder / name, target)


def reproduce(name: str, force=False, device="auto", root=None, progress=True):
    """Produce (or reuse) the stored result ``name``; see :func:`names`.

    Afterwards the results index ``README.md`` of the results folder is rewritten from every
    stored summary, so the numbers there always come from the stored results.
    """
    _checks.choice("name", name, names())
    _clean_orphans(name, root)
    if name in ANALYSES:
        summary = run_analysis(name, force=force, root=root)
    else:
        summary = run_experiment(name, force=force, device=device, root=root, progress=progress)
    write_index(root)
    return summary


def write_index(root=None) -> Path:
    """The results index ``README.md``: a markdown table of every stored result (generated)."""
    stored = []
    for name, exp in EXPERIMENTS.items():
        with contextlib.suppress(FileNotFoundError, ValueError):
            stored.append((name, load_summary(name, root), bool(exp.n_train_sweep)))
    analyses = {}
    for name in ("credit", "entropy"):
        with contextlib.suppress(FileNotFoundError, ValueError):
            analyses[name] = load_summary(name, root)
    text = render_index(stored, analyses.get("credit"), analyses.get("entropy"))
    return atomic_write(results_dir(root) / "README.md", text)
