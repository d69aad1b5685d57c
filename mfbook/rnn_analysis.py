"""Reading the credit assignment out of a trained recurrent ensemble (chapter 9).

* :func:`category_fractions`: VIP / UIP / variable fractions of the input, recurrent and
  readout connections (the definitions of chapter 5);
* :func:`removed`: a copy of the model without some connections of one group (pi <- 1);
* :func:`vip_mask`, :func:`strong_mask`, :func:`random_mask`: the connections a removal takes
  away: the VIPs, the strong nearly deterministic ones the authors' code selects, or as many
  drawn at random from those present in some sub-network (the control);
* :func:`rates`: the rates r_t of the mean network (no noise) on a batch of sequences;
* :func:`selectivity`: which units of the multisensory network tell a high frequency from a low
  one in visual trials, in auditory trials, in both (mixed), in one (uni) or in neither;
* :func:`explained_variance`: the share of the activity's variance along its top principal
  components;
* :func:`first_crossing`: the first logged iteration at which a training statistic reaches a
  level (when a symmetry breaks).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from mfbook import _checks, msi, rnn
from mfbook.rnn_nn import MeanFieldRNN
from mfbook.spike_slab import SpikeSlab

SELECTIVE = 0.2  # |(r_high - r_low) / (r_high + r_low)| above which a unit is selective
KINDS = ("mixed", "uni", "non")


def _check_model(model) -> None:
    if not isinstance(model, MeanFieldRNN):
        raise TypeError(f"model must be a MeanFieldRNN, got {type(model).__name__}")


def _spike_slab(model, group: str) -> SpikeSlab:
    _checks.choice("group", group, rnn.GROUPS)
    return SpikeSlab(*(t.detach() for t in model.params()._asdict()[group]))


def category_fractions(model: MeanFieldRNN) -> dict[str, dict[str, float]]:
    """{group: {"vip", "uip", "variable"}}: the fractions of each kind (exact, as the
    projection makes them), for the input, recurrent and readout connections."""
    _check_model(model)
    out = {}
    for group in rnn.GROUPS:
        cats = _spike_slab(model, group).categories()
        out[group] = {k: float(v.double().mean()) for k, v in cats._asdict().items()}
    return out


@torch.no_grad()
def removed(model: MeanFieldRNN, group: str, mask: torch.Tensor) -> MeanFieldRNN:
    """A copy of ``model`` in which the connections of ``group`` under ``mask`` are absent
    from every sub-network (pi = 1)."""
    _check_model(model)
    _checks.choice("group", group, rnn.GROUPS)
    pi = getattr(model, f"pi_{group}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != pi.shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(pi.shape)}")
    out = copy.deepcopy(model)
    getattr(out, f"pi_{group}").masked_fill_(mask, 1.0)
    return out


def vip_mask(model: MeanFieldRNN, group: str) -> torch.Tensor:
    """The VIP connections of ``group`` (pi = 0 and xi = 0 exactly), a boolean mask."""
    _check_model(model)
    return _spike_slab(model, group).categories().vip


def strong_mask(
    model: MeanFieldRNN, group: str, pi_max: float = 0.1, xi_max: float = 0.1, m_min: float = 0.08
) -> torch.Tensor:
    """The nearly deterministic, strong connections of ``group``: pi <= ``pi_max``,
    xi < ``xi_max`` and |m| > ``m_min``, the set the authors' code removes in the multisensory
    task (its defaults)."""
    _check_model(model)
    ss = _spike_slab(model, group)
    return (ss.pi <= pi_max) & (ss.xi < xi_max) & (ss.m.abs() > m_min)


def random_mask(model: MeanFieldRNN, group: str, count: int, generator=None) -> torch.Tensor:
    """``count`` connections of ``group`` drawn at random from those present in some
    sub-network (pi < 1), a boolean mask: the control of a removal."""
    _check_model(model)
    pi = _spike_slab(model, group).pi
    present = (pi < 1).flatten().nonzero().squeeze(1)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= len(present):
        raise ValueError(f"count must be an int in [0, {len(present)}], got {count!r}")
    mask = torch.zeros(pi.numel(), dtype=torch.bool)
    mask[present[torch.randperm(len(present), generator=generator)[:count]]] = True
    return mask.view_as(pi)


@torch.no_grad()
def rates(model: MeanFieldRNN, x: torch.Tensor) -> torch.Tensor:
    """The rates r_t (B, T, N_rec) of the mean network (eps = 0, no private noise) on x."""
    _check_model(model)
    params = model.params()
    B, T = x.shape[:2]
    n_out = params.out[0].shape[0]
    eps = x.new_zeros(B, T, params.rec[0].shape[0])
    return rnn.forward(params, x, eps, x.new_zeros(B, n_out), model.alpha).r


def selectivity(model: MeanFieldRNN, generator=None, dt: float = 20.0, tau: float = 100.0):
    """Per unit of the multisensory network: its selectivity index
    (r_high - r_low) / (r_high + r_low) in visual and in auditory trials, r the mean rate
    during the stimulus over the frequencies above (high) or below (low) the boundary, and its
    kind: "mixed" (|index| > ``SELECTIVE`` in both), "uni" (in one) or "non" (in neither, or
    silent). Returns (index (N_rec, 2) for v, a; list of kinds)."""
    trials = msi.batch(generator, test=True, dt=dt, tau=tau)
    r = rates(model, trials.x)
    stim = list(msi.periods(True, dt)[1]["stimulus"])
    mean_rate = r[:, stim].mean(1)  # (B, N_rec)
    index = torch.zeros(r.shape[-1], 2, dtype=torch.float64)
    for j, modality in enumerate(("v", "a")):
        rows = {True: [], False: []}
        for b, (mod, f) in enumerate(trials.conditions):
            if mod == modality:
                rows[f > msi.BOUNDARY].append(b)
        high, low = mean_rate[rows[True]].mean(0), mean_rate[rows[False]].mean(0)
        total = (high + low).double()
        index[:, j] = torch.where(total > 0, (high - low).double() / total, 0.0)
    selective = (index.abs() > SELECTIVE).sum(1)
    kinds = [KINDS[2 - int(s)] for s in selective]
    return index, kinds


def explained_variance(activity: torch.Tensor) -> np.ndarray:
    """The share of the variance of ``activity`` (samples, units) along each principal
    component, largest first (sums to 1)."""
    _checks.tensor("activity", activity, ndim=2)
    a = activity.double() - activity.double().mean(0)
    s = torch.linalg.svdvals(a) ** 2
    if float(s.sum()) == 0:
        raise ValueError("activity has no variance")
    return (s / s.sum()).numpy()


def first_crossing(iterations, values, level: float) -> int | None:
    """The first of ``iterations`` at which ``values`` reaches ``level``, or None."""
    if len(iterations) != len(values):
        raise ValueError(f"{len(iterations)} iterations for {len(values)} values")
    return next((int(i) for i, v in zip(iterations, values, strict=True) if v >= level), None)
