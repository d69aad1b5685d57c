"""The analyses of stored experiments (chapters 5, 6 and 8), computed by :mod:`mfbook.reproduce`.

Each takes the names of its source experiments and ``store``, an object with the
``load_summary(name)`` and ``load_model(name, run=label)`` of one results folder
(:func:`mfbook.reproduce.store`).
"""

from __future__ import annotations

from mfbook import studies
from mfbook.data import load_mnist


def credit(sources, store, n_networks: int = 10, seed: int = 0) -> dict:
    """:func:`mfbook.studies.credit` of every stored seed of the source; the first seed's
    numbers also at the top level (the representative run of chapter 5)."""
    summary = store.load_summary(sources[0])
    models = stored_models(sources[0], store)
    x, y = load_mnist("test")
    x_train, _ = load_mnist("train", n=summary["config"]["n_train"])
    out = studies.credit(models, x, y, x_train, n_networks, seed)
    first = out["seeds"][summary["kept"][0]]
    return {**{k: first[k] for k in ("fractions", "perturbation", "subnetwork_errors")}, **out}


def entropy(sources, store, seed: int = 0) -> dict:
    """:func:`mfbook.studies.entropy` of every stored run of a sweep."""
    summary = store.load_summary(sources[0])
    meta = {}
    for label in summary["kept"]:
        run = summary["runs"][label]
        n_train = run.get("config", summary["config"])["n_train"]
        meta[label] = {"n_train": n_train, "seed": run["seed"], "final": run["final"]}
    return studies.entropy(stored_models(sources[0], store), meta, seed)


def variants(sources, store, n_networks: int = 10, seed: int = 0) -> dict:
    """:func:`mfbook.studies.variant` of every stored seed of each variant, with its final
    errors (chapter 8)."""
    x, y = load_mnist("test")
    out = {}
    for name in sources:
        runs = store.load_summary(name)["runs"]
        per_seed = studies.variant(stored_models(name, store), x, y, n_networks, seed)
        out[name] = {k: {**v, "final": runs[k]["final"]} for k, v in per_seed.items()}
    return {"variants": out}


def stored_models(name: str, store) -> dict:
    """label -> model, for every run of ``name`` whose parameters are stored."""
    return {label: store.load_model(name, run=label) for label in store.load_summary(name)["kept"]}


#: name -> (function, settings); the sources are mfbook.experiments.ANALYSES[name].
FUNCTIONS = {
    "credit": (credit, {"n_networks": 10, "seed": 0}),
    "entropy": (entropy, {"seed": 0}),
    "variants": (variants, {"n_networks": 10, "seed": 0}),
}
