"""The analyses behind the stored ``credit``, ``entropy`` and ``variants`` results (chapters
5, 6 and 8).

Each takes trained models (one per seed, or per seed and training-set size) and returns plain
numbers for ``summary.json``; :mod:`mfbook.reproduce` loads the models and stores the result.
"""

from __future__ import annotations

import torch

from mfbook import analysis, removal
from mfbook.spike_slab import ENTROPY_CONVENTIONS

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def controls(model, x, y, x_train, n_networks: int = 10, seed: int = 0) -> dict:
    """The sharper tests of the first layer's credit assignment (chapter 5): removal curves at
    the counts 0, 1/4, ..., all of its VIPs, for connections ranked by every criterion of
    :data:`mfbook.removal.CRITERIA`, for random variable connections (all, and only those that
    trained), and for the variable connections of largest |mu|; and the UIPs switched on at
    the authors' scale N(0, 1) and at the trained one."""
    cats = model.layers[0].spike_slab().categories()
    n_vip, n_uip = int(cats.vip.sum()), int(cats.uip.sum())
    counts = [round(f * n_vip) for f in FRACTIONS]
    gen = torch.Generator().manual_seed(seed)
    mu = removal.scores(model, 0, "abs_mu").reshape(-1)
    variable = cats.variable.reshape(-1).nonzero().squeeze(1)
    orders = {f"rank_{c}": removal.ranking(model, 0, c, gen) for c in removal.CRITERIA}
    orders["random_variable"] = removal.random_order(cats.variable, gen)
    orders["random_trained"] = removal.random_order(
        removal.trained_variable(model, x_train, 0), gen
    )
    orders["largest_mu_variable"] = variable[torch.argsort(mu[variable], descending=True)]
    out = {"counts": counts, "n_vip": n_vip, "n_uip": n_uip}
    out["n_trained_variable"] = int(orders["random_trained"].numel())
    out["n_variable"] = int(variable.numel())
    for name, order in orders.items():
        usable = [min(c, order.numel()) for c in counts]
        out[name] = removal.removal_errors(model, x, y, 0, order, usable, n_networks, seed)
    uip_counts = [round(f * n_uip) for f in FRACTIONS]
    out["uip_counts"] = uip_counts
    for scale in ("unit", "trained"):
        errs = []
        for c in uip_counts:
            net = removal.switched_on(model, 0, c, scale, torch.Generator().manual_seed(seed))
            g = torch.Generator().manual_seed(seed)
            errs.append(float(analysis.subnetwork_errors(net, x, y, n_networks, g).mean()))
        out[f"uip_{scale}"] = errs
    return out


def credit(models: dict, x, y, x_train, n_networks: int = 10, seed: int = 0) -> dict:
    """Per seed (``models``: label -> trained model): category fractions, the perturbation
    curves of every layer, sampled sub-network errors and :func:`controls`."""
    per_seed = {}
    for label, model in models.items():
        per_seed[label] = {
            "fractions": analysis.category_fractions(model),
            "perturbation": [
                analysis.perturbation_curves(model, x, y, l, n_networks=n_networks, seed=seed)
                for l in range(len(model.layers))
            ],
            "subnetwork_errors": analysis.subnetwork_errors(
                model, x, y, 100, torch.Generator().manual_seed(seed)
            ).tolist(),
            "controls": controls(model, x, y, x_train, n_networks, seed),
        }
    return {"seeds": per_seed}


def entropy(models: dict, meta: dict, seed: int = 0) -> dict:
    """Per run (``models``: label -> model; ``meta``: label -> extra numbers to keep): the mean
    entropy per connection of every layer in every convention of chapter 1, and the category
    fractions."""
    out = {}
    for label, model in models.items():
        out[label] = {
            **meta[label],
            "layer_entropy": {
                c: analysis.layer_entropy(model, seed=seed, convention=c)
                for c in ENTROPY_CONVENTIONS
            },
            "fractions": analysis.category_fractions(model),
        }
    return {"runs": out}


def variant(models: dict, x, y, n_networks: int = 10, seed: int = 0) -> dict:
    """Per seed of one protocol variant (chapter 8): the category fractions, the perturbation
    curves of the first layer, and the entropy profile in every convention of chapter 1
    (``x`` is cast to each model's dtype: a variant may train in float64)."""
    return {
        label: {
            "fractions": analysis.category_fractions(model),
            "perturbation": analysis.perturbation_curves(
                model, x.to(model.layers[0].pi.dtype), y, 0, n_networks=n_networks, seed=seed
            ),
            "layer_entropy": {
                c: analysis.layer_entropy(model, seed=seed, convention=c)
                for c in ENTROPY_CONVENTIONS
            },
        }
        for label, model in models.items()
    }
