"""The stored experiment ``relatives`` of chapter 10: gBP among its relatives, measured.

Two settings, each the network and data of a stored gBP experiment:

* ``"paper"``: 784-100-100-10 on the paper's 10,000 training images (the stored ``paper`` runs);
* ``"full"``: 784-400-400-10 on all 60,000 (the stored ``full`` run, one seed).

For each method of :data:`TRAINED` (plain backprop, MC dropout, Bayes by Backprop, sparse
variational dropout), the learning rate and the initial scale m_var of the weights (the paper's
2/784, or 2) are chosen on the last ``n_val`` training images held out (seed 0, the lowest error
of the deterministic network after ``tune_epochs`` wins; a run that diverges loses); in the
``full`` setting only the learning rate is searched, with each method's m_var of the ``paper``
setting. Then every seed trains on all the training images and is measured by
:func:`mfbook.relatives.evaluate.measure`. gBP is not trained here: its rows measure the models of
the stored ``paper`` and ``full`` experiments, the ones the other chapters read, by the same code.
The cost of a step is timed for all five methods in one interleaved run (ratio to backprop).

``python -m mfbook reproduce relatives`` writes ``summary.json`` (the protocol, each setting's
``"methods"``: means over seeds with the per-seed values beside them, chosen hyperparameters,
CPU seconds; top-level ``"methods"`` is the ``paper`` setting's) and ``curves.json``
(reliability bins, pruning curves, training histories). It is current when its protocol is
today's, the stored gBP runs it measured are current and unchanged (their file hashes), its
``curves.json`` is the one it wrote, and today's code computes its tiny float64 reference run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import torch

from mfbook import fingerprint
from mfbook._records import environment
from mfbook.data import load_mnist
from mfbook.io import atomic_write, recover_folder, staged_folder
from mfbook.loop import TrainingDiverged
from mfbook.nn import M_VAR
from mfbook.relatives import build, evaluate, shift, sparsity
from mfbook.relatives import train as rtrain
from mfbook.relatives.mean_field import GBP
from mfbook.relatives.metrics import N_BINS

NAME = "relatives"
TRAINED = ("bp", "mc_dropout", "bbb", "sparse_vd")
#: Hyperparameters not searched, per method: dropout's rate 0.2 on hidden units (Srivastava et
#: al.'s usual rate), the Gaussian prior N(0, 1) of Bayes by Backprop.
FIXED = {"bp": {}, "mc_dropout": {"p": 0.2}, "bbb": {"prior_sigma": 1.0}, "sparse_vd": {}}
#: Training arguments per method: the paper's weight decay 1e-4 for the one-weight methods, a
#: 3-epoch warm-up of the KL term for the variational ones (mfbook.relatives.train).
FIT = {
    "bp": {"weight_decay": 1e-4},
    "mc_dropout": {"weight_decay": 1e-4},
    "bbb": {"warmup_epochs": 3},
    "sparse_vd": {"warmup_epochs": 3},
}
FILES = ("curves.json",)


@dataclass(frozen=True)
class Setting:
    source: str  # the stored gBP experiment of the same network and data
    sizes: tuple[int, ...]
    n_train: int | None  # None: all 60,000 training images
    n_val: int  # held out of them for the hyperparameters
    batch_size: int
    epochs: int
    tune_epochs: int
    lrs: tuple[float, ...]
    m_vars: tuple[float, ...]  # (): each method's choice in the setting before
    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 10  # stochastic passes of a prediction
    n_shift: int = 2000  # test images rotated and with noise
    n_test: int | None = None  # None: all 10,000 test images


SETTINGS = {
    "paper": Setting(
        "paper", (784, 100, 100, 10), 10_000, 2_000, 100, 30, 30, (3e-3, 1e-2, 3e-2, 1e-1),
        (M_VAR, 2.0),
    ),
    "full": Setting("full", (784, 400, 400, 10), None, 10_000, 500, 15, 5, (3e-3, 1e-2, 3e-2), ()),
}  # fmt: skip


def protocol() -> dict:
    """Everything that decides the numbers, as JSON stores it."""
    out = {
        "settings": {k: dataclasses.asdict(s) for k, s in SETTINGS.items()},
        "trained": TRAINED,
        "fixed": FIXED,
        "fit": FIT,
        "n_bins": N_BINS,
        "angles": shift.ANGLES,
        "sigmas": shift.SIGMAS,
        "pruning_grid": sparsity.GRID,
        "tolerance": evaluate.TOLERANCE,
    }
    return json.loads(json.dumps(out))


def _source_key(summary: dict) -> dict:
    return {"config": summary["config"], "kept": summary["kept"], "files": summary.get("files")}


def _tune(name, st: Setting, lr: float, m_var: float, data) -> dict:
    x, y, xv, yv = data
    model = build(name, st.sizes, 0, **FIXED[name], m_var=m_var)
    kw = dict(epochs=st.tune_epochs, batch_size=st.batch_size, lr=lr, seed=0, val=(xv, yv))
    try:
        hist = rtrain.fit(model, x, y, **kw, **FIT[name]).history
    except TrainingDiverged:
        return {"lr": lr, "m_var": m_var, "val_error": 1.0, "diverged": True}
    return {"lr": lr, "m_var": m_var, "val_error": hist["val_error"][-1], "diverged": False}


def _aggregate(rows: dict[str, dict]) -> dict:
    """The mean over seeds of every entry (elementwise for lists), the per-seed values beside."""
    first = next(iter(rows.values()))
    out = {}
    for key, value in first.items():
        values = [r[key] for r in rows.values()]
        if isinstance(value, list):
            out[key] = [sum(v) / len(v) for v in zip(*values, strict=True)]
        else:
            out[key] = sum(values) / len(values)
    out["per_seed"] = {k: {s: r[k] for s, r in rows.items()} for k in first}
    return out


def _trained(name, st: Setting, data, shifts, chosen: dict, progress: bool):
    cpu, wall = time.process_time(), time.perf_counter()
    x, y, xt, yt = data
    train_split = rtrain.split(x, y, st.n_val)
    grid = [
        _tune(name, st, lr, m_var, train_split)
        for m_var in (st.m_vars or (chosen[name],))
        for lr in st.lrs
    ]
    best = min(grid, key=lambda g: g["val_error"])
    chosen[name] = best["m_var"]
    hyper = {**FIXED[name], "m_var": best["m_var"]}
    rows, curves = {}, {}
    for seed in st.seeds:
        model = build(name, st.sizes, seed, **hyper)
        kw = dict(epochs=st.epochs, batch_size=st.batch_size, lr=best["lr"], seed=seed)
        fit = rtrain.fit(model, x, y, **kw, **FIT[name])
        rows[str(seed)], curves[str(seed)] = evaluate.measure(
            model, (xt, yt), shifts, st.n_samples, seed
        )
        rows[str(seed)]["train_seconds"] = sum(fit.history["seconds"])
        curves[str(seed)]["history"] = fit.history
        if progress:
            print(f"relatives {st.source} {name} seed {seed}: {rows[str(seed)]['test_error']:.4f}")
    row = _aggregate(rows)
    row |= {"hyper": hyper, "lr": best["lr"], "grid": grid, **FIT[name]}
    row["cpu_seconds"] = time.process_time() - cpu
    row["wall_seconds"] = time.perf_counter() - wall
    return row, curves, hyper


def _gbp(st: Setting, store, data, shifts):
    """gBP's row: the stored models of ``st.source``, measured; CPU time: their stored
    training time plus this measurement's."""
    cpu = time.process_time()
    source = store.load_summary(st.source)
    rows, curves = {}, {}
    for label in source["kept"]:
        model = GBP(st.sizes)
        model.net = store.load_model(st.source, int(label))
        rows[label], curves[label] = evaluate.measure(
            model, data[2:], shifts, st.n_samples, int(label)
        )
        rows[label]["train_seconds"] = source["runs"][label]["train_seconds"]
    row = _aggregate(rows)
    row |= {"hyper": {"preset": st.source}, "lr": source["config"]["lr"]}
    row["cpu_seconds"] = sum(r["train_seconds"] for r in rows.values())
    row["cpu_seconds"] += time.process_time() - cpu
    return row, curves


def _setting(st: Setting, store, chosen: dict, progress: bool):
    x, y = load_mnist("train", n=st.n_train)
    xt, yt = load_mnist("test", n=st.n_test)
    data = (x, y, xt, yt)
    shifts = evaluate.shifted_sets(xt, st.n_shift)
    methods, curves, hypers = {}, {}, {}
    for name in TRAINED:
        methods[name], curves[name], hypers[name] = _trained(
            name, st, data, shifts, chosen, progress
        )
    methods["gbp"], curves["gbp"] = _gbp(st, store, data, shifts)
    models = {k: build(k, st.sizes, 0, **h) for k, h in hypers.items()}
    models["gbp"] = build("gbp", st.sizes, 0)
    xb, yb = x[: st.batch_size], y[: st.batch_size]
    seconds = rtrain.step_seconds(models, xb, yb, x.shape[0], repeats=30)
    for k, row in methods.items():
        row["step_seconds"] = seconds[k]
        row["step_ratio"] = seconds[k] / seconds["bp"]
    return methods, curves


def _tiny_runs() -> list[torch.Tensor]:
    """Two epochs of every method, and gBP, on random float64 data; the parameters after them
    and the row of measurements (without the shifts) as tensors."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(32, 784, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=gen)
    shifts = evaluate.shifted_sets(x, 8)
    out = []
    for name in (*TRAINED, "gbp"):
        model = build(name, (784, 6, 3), 0, **FIXED.get(name, {})).double()
        rtrain.fit(model, x, y, epochs=2, batch_size=16, lr=1e-2, **FIT.get(name, {}))
        row, _ = evaluate.measure(model, (x, y), shifts, 3)
        out += [p.detach() for p in model.parameters()]
        out.append(torch.tensor([v for v in row.values() if isinstance(v, float)]))
    return out


def reference_statistics() -> list[list[float]]:
    """:func:`_tiny_runs` reduced to ``[sum x, sum |x|, sum x^2]`` per tensor."""
    with torch.random.fork_rng(devices=[]):
        tensors = _tiny_runs()
    return [[float(t.sum()), float(t.abs().sum()), float(t.square().sum())] for t in tensors]


def run(folder, store, progress: bool = True) -> dict:
    """Measure every setting and store the result in ``folder`` (on the CPU); ``store`` reads
    the stored gBP runs (:mod:`mfbook.reproduce`: ``load_summary``, ``load_model``)."""
    t0 = time.perf_counter()
    recover_folder(folder)
    with staged_folder(folder) as staging:
        settings, curves, chosen = {}, {}, {}
        for key, st in SETTINGS.items():
            methods, curves[key] = _setting(st, store, chosen, progress)
            settings[key] = {
                "methods": methods,
                "seconds": sum(r["cpu_seconds"] for k, r in methods.items() if k != "gbp"),
            }
        atomic_write(staging / FILES[0], json.dumps(curves) + "\n")
        summary = {
            "name": NAME,
            "protocol": protocol(),
            "settings": settings,
            "methods": settings["paper"]["methods"],
            "sources": {
                st.source: _source_key(store.load_summary(st.source)) for st in SETTINGS.values()
            },
            "seconds": time.perf_counter() - t0,
            "environment": environment(torch.device("cpu")),
            "reference": reference_statistics(),
            "files": fingerprint.file_hashes(staging, FILES),
            "command": f"python -m mfbook reproduce {NAME}",
        }
        atomic_write(staging / "summary.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def stale_problem(summary: dict, folder, store) -> str | None:
    """Why the stored ``summary`` is not current (a phrase), or None."""
    if summary.get("protocol") != protocol():
        return "its protocol is not today's"
    for st in SETTINGS.values():
        if (problem := store.stale_reason(st.source)) is not None:
            return f"it measures {st.source}, which is not current: {problem}"
        if summary["sources"].get(st.source) != _source_key(store.load_summary(st.source)):
            return f"it measured other stored runs of {st.source} than today's"
    if problem := fingerprint.files_problem(folder, summary.get("files")):
        return problem
    return fingerprint.statistics_problem(summary.get("reference"), reference_statistics())


def load_curves(folder) -> dict:
    """The stored ``curves.json``: per setting, method and seed, the reliability bins, the
    pruning curve and (trained methods) the training history."""
    return json.loads((folder / FILES[0]).read_text())
