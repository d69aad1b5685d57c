"""The multisensory integration task of the temporal chapter (chapter 9).

A trial shows a flutter frequency f in {9, ..., 16} Hz through a visual channel, an auditory
channel or both, and the network must report whether f is above the boundary of 12.5 Hz. This is
the task of Zou, Li and Huang, Phys. Rev. E 107, 024307 (2023); the numbers below are those of
their public code.

Five inputs: visual and auditory channels tuned positively to f, the same two tuned negatively,
and a start cue. A tuned channel carries 0.4 + 0.8 (f - 9) / 7 (positive) or
0.4 + 0.8 (16 - f) / 7 (negative) during the stimulus; the start cue is 1 from the stimulus on.
Every input carries a baseline of 0.2 and white noise of standard deviation
sqrt(2 alpha) sigma_in / alpha with sigma_in = 0.01 and alpha = dt / tau.

Periods, in steps of dt = 20 ms: fixation (100 ms; 500 ms in test trials), stimulus (1000 ms),
decision (300 ms). Two outputs: during fixation both targets are 0.2; during the decision the
chosen output ("above" is output 0) is 1.0 and the other 0.2. The loss is a mean squared error
masked to fixation and decision. Training trials last 2500 ms (the steps after the decision are
masked out); catch trials have no stimulus and no start cue, and targets of 0.2 throughout,
all of it counted. A training batch is the 24 conditions (3 modalities x 8 frequencies) plus 6
catch trials.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mfbook import _checks

VISUAL_POS, AUDITORY_POS, VISUAL_NEG, AUDITORY_NEG, START = range(5)
N_INPUTS, N_OUTPUTS = 5, 2
FREQUENCIES = tuple(range(9, 17))
BOUNDARY = 12.5
MODALITIES = ("v", "a", "va")
BASELINE, SIGMA_IN = 0.2, 0.01
HIGH, LOW = 1.0, 0.2
#: the periods in ms: fixation (training, test), stimulus, decision; a training trial's length
FIXATION_MS, FIXATION_TEST_MS, STIMULUS_MS, DECISION_MS, TRAIN_TRIAL_MS = 100, 500, 1000, 300, 2500
N_CATCH = 6


class Batch(NamedTuple):
    """Inputs x (B, T, 5), targets y (B, T, 2), loss mask (B, T, 2), and per trial its
    (modality, frequency), or None for a catch trial."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    conditions: list


def tuning(f: float, positive: bool) -> float:
    """The input of a tuned channel at frequency f (0.4 at one end of the range, 1.2 at the
    other)."""
    lo, hi = FREQUENCIES[0], FREQUENCIES[-1]
    share = (f - lo) / (hi - lo) if positive else (hi - f) / (hi - lo)
    return 0.4 + 0.8 * share


def periods(test: bool = False, dt: float = 20.0) -> tuple[int, dict[str, range]]:
    """(number of steps, {period: steps}) of a trial: test trials end with the decision,
    training trials last 2500 ms."""
    fixation = FIXATION_TEST_MS if test else FIXATION_MS
    bounds = {
        "fixation": (0, fixation),
        "stimulus": (fixation, fixation + STIMULUS_MS),
        "decision": (fixation + STIMULUS_MS, fixation + STIMULUS_MS + DECISION_MS),
    }
    steps = {k: range(round(a / dt), round(b / dt)) for k, (a, b) in bounds.items()}
    length = steps["decision"].stop if test else round(TRAIN_TRIAL_MS / dt)
    return length, steps


def input_mask(n_rec: int = 150) -> torch.Tensor:
    """Which input connections exist (bool, (n_rec, 5)): units 0-49 get no visual input, units
    50-99 no auditory input, units 100-149 none of the four channels; all get the start cue.
    The task's network sets pi = 1 (always absent) elsewhere."""
    _checks.positive_int("n_rec", n_rec)
    if n_rec != 150:
        raise ValueError(f"the task's network has 150 recurrent units, got n_rec={n_rec}")
    allowed = torch.ones(n_rec, N_INPUTS, dtype=torch.bool)
    allowed[0:50, [VISUAL_POS, VISUAL_NEG]] = False
    allowed[50:100, [AUDITORY_POS, AUDITORY_NEG]] = False
    allowed[100:150, :START] = False
    return allowed


def batch(
    generator: torch.Generator | None = None,
    test: bool = False,
    dt: float = 20.0,
    tau: float = 100.0,
    dtype=torch.float32,
) -> Batch:
    """One batch: the 24 conditions, plus 6 catch trials when training (``test=False``)."""
    if not 0 < dt <= tau:
        raise ValueError(f"need 0 < dt <= tau, got dt={dt}, tau={tau}")
    alpha = dt / tau
    T, steps = periods(test, dt)
    conditions = [(mod, f) for mod in MODALITIES for f in FREQUENCIES]
    conditions += [] if test else [None] * N_CATCH
    B = len(conditions)
    x = torch.zeros(B, T, N_INPUTS, dtype=dtype)
    y = torch.zeros(B, T, N_OUTPUTS, dtype=dtype)
    mask = torch.zeros(B, T, N_OUTPUTS, dtype=dtype)
    stim, dec, fix = (list(steps[k]) for k in ("stimulus", "decision", "fixation"))
    for b, cond in enumerate(conditions):
        if cond is None:  # catch trial: no stimulus, low targets throughout, all counted
            y[b], mask[b] = LOW, 1.0
            continue
        modality, f = cond
        if "v" in modality:
            x[b, stim, VISUAL_POS], x[b, stim, VISUAL_NEG] = tuning(f, True), tuning(f, False)
        if "a" in modality:
            x[b, stim, AUDITORY_POS] = tuning(f, True)
            x[b, stim, AUDITORY_NEG] = tuning(f, False)
        x[b, stim + dec, START] = 1.0
        choice = 0 if f > BOUNDARY else 1
        y[b, fix] = LOW
        y[b, dec, choice], y[b, dec, 1 - choice] = HIGH, LOW
        mask[b, fix + dec] = 1.0
    noise = torch.randn(x.shape, generator=generator, dtype=dtype)
    x = x + BASELINE + (2 * alpha) ** 0.5 * SIGMA_IN / alpha * noise
    return Batch(x, y, mask, conditions)


def masked_mse(output: torch.Tensor, batch_: Batch) -> torch.Tensor:
    """The task's loss: 1/2 the squared error, counted where the mask is 1, averaged over
    trials and steps."""
    B, T, _ = batch_.y.shape
    return 0.5 * (((output - batch_.y) * batch_.mask) ** 2).sum() / (B * T)
