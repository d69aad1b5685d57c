"""Long experiments as cached, re-runnable results (chapters 4-6).

``python -m mfbook reproduce NAME`` trains the runs of an experiment and writes small files that
the chapters load: ``summary.json`` (the config, every seed's history, final errors, wall times,
the machine and library versions) and ``seed<k>.npz`` (the full parameters of one representative
seed, compressed). A result is reused only when its stored config equals the current one;
``--force`` recomputes. Runs checkpoint to ``runs/`` after every epoch, so an interrupted
reproduction continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import mfbook
from mfbook import _checks, analysis
from mfbook.data import load_mnist
from mfbook.train import TrainConfig, build_model, preset, resolve_device, train

RESULTS_ENV = "MFBOOK_RESULTS"


@dataclass(frozen=True)
class Experiment:
    preset: str
    seeds: tuple[int, ...]
    keep_params: tuple[int, ...] = (0,)  # seeds whose full parameters are stored


EXPERIMENTS = {
    "paper": Experiment("paper", (0, 1, 2, 3, 4)),
    "paper_bp": Experiment("paper_bp", (0, 1, 2, 3, 4)),
    "full": Experiment("full", (0,)),
}
#: Analyses computed from a stored model (name -> the experiment they read).
ANALYSES = {"credit": "paper"}


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


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _environment(device) -> dict:
    info = {
        "mfbook": mfbook.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def save_params(path: Path, model) -> None:
    """The full parameters of a trained model, compressed (float32)."""
    arrays = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


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


def load_model(name: str, seed: int = 0, root=None):
    """The stored trained model of experiment ``name`` and ``seed`` (on the CPU)."""
    summary = load_summary(name, root)
    config = TrainConfig.from_dict(summary["config"])
    path = results_dir(root) / name / f"seed{seed}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no stored parameters {path} (seeds kept: {summary['kept']})")
    model = build_model(config, seed)
    expected = model.state_dict()
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise ValueError(f"stored parameters {path} are corrupted: {err}") from err
    if set(arrays) != set(expected):
        raise ValueError(f"{path} holds {sorted(arrays)}, the model needs {sorted(expected)}")
    for k, v in arrays.items():
        if v.shape != tuple(expected[k].shape) or not np.isfinite(v).all():
            raise ValueError(f"{path}: {k} has shape {v.shape} or non-finite values")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    return model


def _config_key(config: TrainConfig) -> str:
    """A short hash of the config: checkpoints of different configs never meet."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _is_current(name: str, config: TrainConfig, seeds, root) -> bool:
    try:
        s = load_summary(name, root)
    except (FileNotFoundError, ValueError):
        return False
    return s.get("config") == json.loads(json.dumps(config.to_dict())) and s.get("seeds") == list(
        seeds
    )


def run_experiment(name: str, force=False, device="auto", root=None, progress=True, runs="runs"):
    exp = EXPERIMENTS[name]
    config = preset(exp.preset)
    out = results_dir(root) / name
    if not force and _is_current(name, config, exp.seeds, root):
        return load_summary(name, root)
    dev = resolve_device(device)
    per_seed = {}
    for seed in exp.seeds:
        ckpt = Path(runs) / name / _config_key(config) / f"seed{seed}.pt"
        if force and ckpt.exists():
            ckpt.unlink()
        t0 = time.perf_counter()
        result = train(config, device=dev, progress=progress, seed=seed, checkpoint=ckpt)
        wall = time.perf_counter() - t0
        per_seed[str(seed)] = {
            "history": result.history,
            "final": {k: v[-1] for k, v in result.history.items() if k.startswith("test_error")},
            "train_seconds": float(sum(result.history["seconds"])),
            "wall_seconds_this_call": wall,
        }
        if seed in exp.keep_params:
            save_params(out / f"seed{seed}.npz", result.model)
    finals = {
        k: [per_seed[str(s)]["final"][k] for s in exp.seeds]
        for k in per_seed[str(exp.seeds[0])]["final"]
    }
    summary = {
        "name": name,
        "config": config.to_dict(),
        "seeds": list(exp.seeds),
        "kept": list(exp.keep_params),
        "runs": per_seed,
        "final_mean": {k: float(np.mean(v)) for k, v in finals.items()},
        "final_std": {k: float(np.std(v)) for k, v in finals.items()},
        "environment": _environment(dev),
        "command": f"python -m mfbook reproduce {name}",
    }
    _write_json(out / "summary.json", summary)
    return summary


def run_credit(force=False, root=None, n_networks=10, seed=0):
    """Category fractions and perturbation curves of every layer of the stored paper model."""
    source = ANALYSES["credit"]
    base = load_summary(source, root)
    out = results_dir(root) / "credit" / "summary.json"
    key = {"source_config": base["config"], "n_networks": n_networks, "seed": seed}
    if not force and out.is_file():
        old = json.loads(out.read_text())
        if old.get("key") == key:
            return old
    model = load_model(source, 0, root)
    x, y = load_mnist("test")
    t0 = time.perf_counter()
    summary = {
        "name": "credit",
        "key": key,
        "fractions": analysis.category_fractions(model),
        "perturbation": [
            analysis.perturbation_curves(model, x, y, l, n_networks=n_networks, seed=seed)
            for l in range(len(model.layers))
        ],
        "subnetwork_errors": analysis.subnetwork_errors(
            model, x, y, 100, torch.Generator().manual_seed(seed)
        ).tolist(),
        "seconds": None,
        "command": "python -m mfbook reproduce credit",
    }
    summary["seconds"] = time.perf_counter() - t0
    _write_json(out, summary)
    return summary


def reproduce(name: str, force=False, device="auto", root=None, progress=True):
    """Produce (or reuse) the stored result ``name``; see :func:`names`.

    Afterwards the results index ``README.md`` of the results folder is rewritten from every
    stored summary, so the numbers there always come from the stored results.
    """
    _checks.choice("name", name, names())
    if name in ANALYSES:
        summary = run_credit(force=force, root=root)
    else:
        summary = run_experiment(name, force=force, device=device, root=root, progress=progress)
    write_index(root)
    return summary


def write_index(root=None) -> Path:
    """A markdown table of every stored experiment (generated; do not edit by hand)."""
    lines = [
        "# Stored results",
        "",
        "Generated by `python -m mfbook reproduce NAME` from the `summary.json` files in this",
        "folder; do not edit by hand. Test errors are means (and standard deviations) over seeds.",
        "",
        "| name | seeds | one sampled sub-network | noisy mean-field | mean network "
        "| train time per seed (s) | device |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in EXPERIMENTS:
        try:
            s = load_summary(name, root)
        except (FileNotFoundError, ValueError):
            continue
        cells = []
        for key in ("test_error_sample", "test_error_mf", "test_error_mean"):
            if key in s["final_mean"]:
                cells.append(
                    f"{100 * s['final_mean'][key]:.2f}% ± {100 * s['final_std'][key]:.2f}%"
                )
            else:
                cells.append("–")
        secs = [r["train_seconds"] for r in s["runs"].values()]
        env = s["environment"]
        device = env.get("gpu", f"{env['device']} ({env['cpu_threads']} threads)")
        lines.append(
            f"| {name} | {len(s['seeds'])} | {' | '.join(cells)} | {np.mean(secs):.0f} | {device} |"
        )
    try:
        c = load_summary("credit", root)
        lines += ["", "## Credit assignment (paper preset, seed 0)", ""]
        lines += ["| layer | VIP | UIP | variable |", "|---|---|---|---|"]
        for l, f in enumerate(c["fractions"]):
            lines.append(
                f"| {l + 1} | {100 * f['vip']:.1f}% | {100 * f['uip']:.1f}% "
                f"| {100 * f['variable']:.1f}% |"
            )
    except (FileNotFoundError, ValueError):
        pass
    path = results_dir(root) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
