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
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from mfbook import _checks, analyses, fingerprint, recurrent_results
from mfbook._params_file import read_params, save_params
from mfbook._records import benchmarks_dir as benchmarks_dir
from mfbook._records import environment, final_errors, final_stats
from mfbook._records import load_benchmark as load_benchmark
from mfbook._results_index import MALFORMED, readable, render_index
from mfbook.experiments import (
    ANALYSES,
    EXPERIMENTS,
    SEEDS,
    VARIANTS,
    Experiment,
    Run,
    config_key,
    config_problem,
)
from mfbook.io import atomic_write, clean_orphans, recover_folder, staged_folder
from mfbook.recurrent_results import RECURRENT
from mfbook.relatives import experiment as relatives
from mfbook.train import TrainConfig, build_model, preset, resolve_device, train

RESULTS_ENV = "MFBOOK_RESULTS"
__all__ = ["ANALYSES", "EXPERIMENTS", "RECURRENT", "SEEDS", "VARIANTS", "Experiment", "Run"]
__all__ += ["preset"]


def names() -> tuple[str, ...]:
    """Every name ``reproduce`` knows: the experiments, the recurrent ones, ``relatives``
    (chapter 10), the analyses."""
    return tuple(EXPERIMENTS) + tuple(RECURRENT) + (relatives.NAME,) + tuple(ANALYSES)


def store(root=None) -> SimpleNamespace:
    """The stored results of one folder, for the computations that read them."""
    return SimpleNamespace(
        load_summary=lambda name: load_summary(name, root),
        load_model=lambda name, seed=0, run=None: load_model(name, seed, root, run),
        stale_reason=lambda name: stale_reason(name, root),
    )


def results_dir(root=None) -> Path:
    """``root``, else $MFBOOK_RESULTS, else ``book/results`` of the source tree (a clone of
    the repository, an editable install), else the copy an installed wheel carries
    (``mfbook/_results``, put there by the build)."""
    if root is not None:
        return Path(root)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    source = Path(__file__).resolve().parent.parent / "book" / "results"
    return source if source.is_dir() else Path(__file__).resolve().parent / "_results"


def _write_json(path: Path, obj) -> Path:
    """A ``summary.json``, atomically (a symbolic link at ``path`` is refused)."""
    return atomic_write(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def load_summary(name: str, root=None) -> dict:
    """The stored ``summary.json`` of an experiment or analysis (a ValueError naming the file
    if it is not JSON, or not a JSON object)."""
    _checks.choice("name", name, names())
    path = results_dir(root) / name / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no stored result {path}; produce it with: python -m mfbook reproduce {name}"
        )
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"stored result {path} is not valid JSON: {err}") from err
    if not isinstance(summary, dict):
        kind = type(summary).__name__
        raise ValueError(f"stored result {path} is not a JSON object (it holds a {kind})")
    return summary


def load_model(name: str, seed: int = 0, root=None, run: str | None = None):
    """The stored trained model of experiment ``name``: run ``run`` (e.g. "n20000" of a sweep),
    by default the run of ``seed`` (on the CPU)."""
    summary = load_summary(name, root)
    if name in RECURRENT:
        return recurrent_results.load_model(name, summary, results_dir(root) / name, seed)
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


def stale_reason(name: str, root=None) -> str | None:
    """Why the stored result of experiment ``name`` is not current (a sentence), or None.

    Current means: computed from today's preset, seeds and runs; its parameter files are the
    ones it wrote (sha256); and today's code computes the same numbers (the numerics
    fingerprint of :mod:`mfbook.fingerprint`, checked where this machine can compute it as the
    result's machine did). A malformed file is a reason too, never an exception."""
    _checks.choice("experiment", name, tuple(EXPERIMENTS) + tuple(RECURRENT) + (relatives.NAME,))
    try:
        s = load_summary(name, root)
    except (FileNotFoundError, ValueError) as err:
        return str(err)
    path = results_dir(root) / name / "summary.json"
    if name == relatives.NAME:
        try:
            problem = relatives.stale_problem(s, results_dir(root) / name, store(root))
        except MALFORMED as err:
            return f"stored result {path} is malformed ({type(err).__name__}: {err})"
        return None if problem is None else f"stored result {name}: {problem}"
    if missing := [key for key in ("config", "seeds", "runs") if key not in s]:
        return f"stored result {path} is malformed (it lacks {', '.join(missing)})"
    try:
        if name in RECURRENT:
            problem = recurrent_results.stale_problem(name, s, results_dir(root) / name)
            return None if problem is None else f"stored result {name}: {problem}"
        problem = config_problem(s, EXPERIMENTS[name])
        problem = problem or fingerprint.files_problem(results_dir(root) / name, s.get("files"))
        if problem is None:
            with contextlib.suppress(fingerprint.NotComparable):
                problem = _numerics_problem(json.dumps(s.get("numerics"), sort_keys=True))
    except MALFORMED as err:  # a value of the wrong type, a key missing further in
        return f"stored result {path} is malformed ({type(err).__name__}: {err})"
    return None if problem is None else f"stored result {name}: {problem}"


@functools.lru_cache(maxsize=8)
def _numerics_problem(recorded: str) -> str | None:
    return fingerprint.numerics_problem(json.loads(recorded))


def is_current(name: str, root=None) -> bool:
    """Whether the stored result of experiment ``name`` is current (:func:`stale_reason`): the
    chapters' test that they show the real protocol, not a stale or stand-in run."""
    return stale_reason(name, root) is None


def _params_path(out: Path, label: str) -> Path:
    _checks.file_name(f"the run label of {out}", label)
    return out / (f"seed{label}.npz" if label.isdigit() else f"{label}.npz")


def run_experiment(name: str, force=False, device="auto", root=None, progress=True, runs="runs"):
    """Train every run of experiment ``name`` (resuming from checkpoints) and store the results."""
    out = results_dir(root) / name
    recover_folder(out)
    if not force and is_current(name, root):
        return load_summary(name, root)
    if name in RECURRENT:  # on the CPU: the Python loop over steps dominates
        return recurrent_results.run(name, out, progress)
    if name == relatives.NAME:  # on the CPU
        return relatives.run(out, store(root), progress)
    exp = EXPERIMENTS[name]
    base = exp.config()
    dev = resolve_device(device)
    with staged_folder(out) as staging:  # new files replace the old ones only all together
        per_run = {}
        for run in exp.runs():
            ckpt = Path(runs) / name / config_key(run.config) / f"seed{run.seed}.pt"
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
                "final": final_errors(history),
                "train_seconds": float(sum(history["seconds"])),
                "wall_seconds_this_call": time.perf_counter() - t0,
                "config": run.config.to_dict(),
            }
            if run.keep:
                save_params(_params_path(staging, run.label), result.model)
        kept = [r.label for r in exp.runs() if r.keep]
        summary = {
            "name": name,
            "config": base.to_dict(),
            "seeds": list(exp.seeds),
            "kept": kept,
            "runs": per_run,
            **final_stats(per_run.values()),
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


def _analysis_key(name: str, root) -> dict:
    """What analysis ``name`` was computed from: its sources' configs, kept runs and file
    hashes, and its settings."""
    sources = [load_summary(source, root) for source in ANALYSES[name]]
    keys = [{"config": s["config"], "runs": s["kept"], "files": s.get("files")} for s in sources]
    if len(keys) == 1:  # one source: flat
        key = {f"source_{k}": v for k, v in keys[0].items()}
    else:
        key = {"sources": dict(zip(ANALYSES[name], keys, strict=True))}
    return {**key, **analyses.FUNCTIONS[name][1]}


def analysis_stale_reason(name: str, root=None) -> str | None:
    """Why the stored analysis ``name`` is not current (a sentence), or None: current means
    computed with today's settings from the stored results it reads, which are current."""
    _checks.choice("analysis", name, tuple(ANALYSES))
    for source in ANALYSES[name]:
        if (problem := stale_reason(source, root)) is not None:
            return f"analysis {name} reads {source}, which is not current: {problem}"
    try:
        stored = load_summary(name, root)
    except (FileNotFoundError, ValueError) as err:
        return str(err)
    if stored.get("key") != json.loads(json.dumps(_analysis_key(name, root))):
        return f"stored analysis {name} was computed from other results or settings"
    return None


def run_analysis(name: str, force=False, root=None) -> dict:
    """Compute (or reuse) analysis ``name`` from the stored models of its experiments."""
    func, settings = analyses.FUNCTIONS[name]
    key = json.loads(json.dumps(_analysis_key(name, root)))
    out = results_dir(root) / name / "summary.json"
    if not force and out.is_file():
        try:
            old = json.loads(out.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("key") == key:
            return old
    t0 = time.perf_counter()
    summary = {"name": name, "key": key, **func(ANALYSES[name], store(root), **settings)}
    summary["seconds"] = time.perf_counter() - t0
    summary["command"] = f"python -m mfbook reproduce {name}"
    _write_json(out, summary)
    return summary


def _clean_orphans(name: str, root) -> None:
    """Remove what a killed reproduction left: temporary files beside the files it writes."""
    folder = results_dir(root)
    clean_orphans(folder, "README.md")
    runs = EXPERIMENTS[name].runs() if name in EXPERIMENTS else []
    kept = [r.label for r in runs if r.keep] + [
        str(s) for s in getattr(RECURRENT.get(name), "seeds", ())
    ]
    for target in [
        "summary.json",
        *relatives.FILES,
        *(_params_path(folder, label).name for label in kept),
    ]:
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
    """The results index ``README.md``: a markdown table of every stored result (generated).
    A malformed summary is left out, with a warning and a line of the index naming it."""
    kinds = {name: ("experiment", bool(exp.sweep)) for name, exp in EXPERIMENTS.items()}
    kinds |= {name: ("experiment", False) for name in RECURRENT}
    analyses = {name: (name, False) for name in ("credit", "entropy")}
    found, skipped = readable(kinds | analyses, lambda n: load_summary(n, root), results_dir(root))
    stored = [(name, found[name], sweep) for name, (_, sweep) in kinds.items() if name in found]
    text = render_index(stored, found.get("credit"), found.get("entropy"), skipped)
    return atomic_write(results_dir(root) / "README.md", text)
