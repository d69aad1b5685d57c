"""Which connections matter: removal curves ranked by a criterion, and sharper controls
(chapter 5).

The perturbation experiment of :mod:`mfbook.analysis` compares removing VIP connections with
removing as many *variable* connections at random. Two things make that comparison weak: many
variable connections of the first layer sit on pixels that are blank in every training image,
so they never trained and removing them cannot matter; and "very important" is a claim about a
ranking that the experiment never makes. Here:

* :func:`active_inputs` and :func:`trained_variable`: the variable connections whose input unit
  is non-zero for some training image (the control drawn only from connections that trained);
* :func:`ranking`: connections ordered by a criterion of importance (:data:`CRITERIA`): VIP
  membership, the mean weight |mu|, the slab mean |m|, the signal-to-noise ratio
  |mu| / sqrt(Var), and the presence probability 1 - pi;
* :func:`removal_errors`: the test error after removing the top ``count`` connections of a
  ranking (or a random choice from a pool), averaged over sampled sub-networks;
* :func:`switched_on`: UIP connections switched on with weights at the scale of the trained
  ones, besides the N(0, 1) of the authors' script.
"""

from __future__ import annotations

import torch

from mfbook import _checks
from mfbook.analysis import perturbed, removed, subnetwork_errors
from mfbook.nn import MeanFieldMLP

CRITERIA = ("vip", "abs_mu", "abs_m", "snr", "presence")


@torch.no_grad()
def active_inputs(model: MeanFieldMLP, x, layer: int) -> torch.Tensor:
    """Bool (N_in,): the input units of ``layer`` that are non-zero for some row of ``x`` in
    the mean network (the pixels themselves for layer 0)."""
    h = x
    for lay in model.layers[:layer]:
        h = lay(h, "mean", relu=True)
    return (h != 0).any(dim=0)


def trained_variable(model: MeanFieldMLP, x_train, layer: int) -> torch.Tensor:
    """Bool (N_out, N_in): the variable connections of ``layer`` that receive a non-zero input
    from some training image, hence a gradient: the connections that trained."""
    variable = model.layers[layer].spike_slab().categories().variable
    return variable & active_inputs(model, x_train, layer)[None, :]


def scores(model: MeanFieldMLP, layer: int, criterion: str) -> torch.Tensor:
    """The importance of every connection of ``layer`` by ``criterion`` (larger: more
    important), shape (N_out, N_in). ``"snr"`` is inf for a deterministic weight (Var = 0)."""
    _checks.choice("criterion", criterion, CRITERIA)
    ss = model.layers[layer].spike_slab()
    mu = ss.mean().abs()
    return {
        "vip": lambda: ss.categories().vip.double(),
        "abs_mu": lambda: mu,
        "abs_m": lambda: ss.m.abs(),
        "snr": lambda: mu / ss.variance().sqrt(),
        "presence": lambda: 1 - ss.pi,
    }[criterion]().nan_to_num(nan=0.0, posinf=float("inf"))


def ranking(model, layer: int, criterion: str, generator=None) -> torch.Tensor:
    """Flat indices of the connections of ``layer``, most important first by ``criterion``;
    ties (e.g. all VIPs under ``"vip"``) in a random order drawn from ``generator``."""
    s = scores(model, layer, criterion).reshape(-1)
    shuffle = torch.randperm(s.numel(), generator=generator)
    return shuffle[torch.argsort(s[shuffle], descending=True, stable=True)]


def removal_errors(model, x, y, layer: int, order, counts, n_networks=10, seed=0) -> list:
    """Mean test error of ``n_networks`` sub-networks sampled after removing the first
    ``count`` connections of ``order`` (flat indices), for each count of ``counts``."""
    shape = model.layers[layer].pi.shape
    out = []
    for count in counts:
        mask = torch.zeros(shape.numel(), dtype=torch.bool)
        mask[order[:count]] = True
        net = removed(model, layer, mask.reshape(shape))
        gen = torch.Generator().manual_seed(seed)
        out.append(float(subnetwork_errors(net, x, y, n_networks, gen).mean()))
    return out


def random_order(pool: torch.Tensor, generator=None) -> torch.Tensor:
    """The flat indices of ``pool`` (a bool mask) in a random order from ``generator``."""
    idx = pool.reshape(-1).nonzero().squeeze(1)
    return idx[torch.randperm(idx.numel(), generator=generator)]


@torch.no_grad()
def switched_on(model: MeanFieldMLP, layer: int, count: int, scale: str, generator=None):
    """A copy of ``model`` with ``count`` UIP connections of ``layer`` switched on
    (:func:`mfbook.analysis.perturbed`, kind ``"uip"``) with weights m ~ Normal(0, s^2): s = 1
    for ``scale="unit"`` (the authors' script), s = the standard deviation of m over the layer's
    VIP connections for ``"trained"``."""
    _checks.choice("scale", scale, ("unit", "trained"))
    lay = model.layers[layer]
    cats = lay.spike_slab().categories()
    if not 0 <= count <= int(cats.uip.sum()):
        raise ValueError(f"count must lie in [0, {int(cats.uip.sum())}], got {count!r}")
    s = 1.0 if scale == "unit" else float(lay.m.detach()[cats.vip].std())
    return perturbed(model, layer, "uip", count, generator, scale=s)
