"""What a stored result was computed with: its numerics and its files (chapters 4-6).

A stored result is current only if today's code would compute the same numbers, and its files
are the ones it wrote. Two records in every ``summary.json`` say so:

* ``"numerics"``: :func:`numerics`, the hash of the parameters and test outputs after a few
  steps of a fixed tiny run of each method, computed by the package's own training step and
  evaluation, with the fused CPU kernels on or off as the experiment ran. It changes when, and
  only when, the arithmetic of a training run changes (the formulas, their rounding, the noise
  generator, the optimiser), not when a comment does. Matrix products may round differently on
  another CPU, another torch or another number of threads, so the record names all three; the
  fingerprint is recomputed with the recorded threads, and :func:`numerics_problem` compares it
  only where the CPU and torch are the same. Elsewhere it compares the record's ``"reference"``
  (:func:`reference_statistics`): the same tiny run in float64 on the reference path, reduced
  to a few sums that every CPU computes alike to about 1e-12. They change with the formulas,
  the noise generator and the optimiser, not with rounding, so on another machine a result is
  checked for what it computes, if not for every last bit.
* ``"files"``: the sha256 of every parameter file of the experiment (:func:`file_hashes`).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import torch

from mfbook import _checks
from mfbook.config import TrainConfig
from mfbook.fast import kernels
from mfbook.io import sha256
from mfbook.loop import build_model, make_optimizer, training_step

#: The tiny run: the paper's layer widths, one batch of random images, three steps.
_SIZES, _BATCH, _STEPS = (784, 100, 100, 10), 500, 3
_METHODS = ("gbp", "bp")
#: How closely two machines' float64 reference statistics agree (their rounding differs).
_RTOL = 1e-9


def _cpu() -> str:
    """A short hash of the CPU's model and instruction sets (what products may depend on)."""
    return hashlib.sha256(kernels.cpu_description().encode()).hexdigest()[:12]


def _tiny_run(method: str, dtype: str = "float32") -> list[torch.Tensor]:
    """Three training steps and one evaluation of ``method``: the losses, the parameters and
    the outputs."""
    config = TrainConfig(method=method, sizes=_SIZES, batch_size=_BATCH, dtype=dtype)
    model = build_model(config, seed=0)
    opt = make_optimizer(model, config)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(_BATCH, _SIZES[0], generator=gen, dtype=getattr(torch, dtype))
    y = torch.randint(0, _SIZES[-1], (_BATCH,), generator=gen)
    noise = torch.Generator().manual_seed(2)
    losses = [training_step(model, x, y, opt, None, noise) for _ in range(_STEPS)]
    with torch.no_grad():  # what train() evaluates after each epoch
        if method == "gbp":
            outputs = [*model.mean_and_mf_logits(x, noise), model.sample_network(noise)(x)]
        else:
            outputs = [model.logits(x)]
    return [t.detach().contiguous() for t in (*losses, *model.state_dict().values(), *outputs)]


def reference_statistics() -> list[list[float]]:
    """The tiny run of each method in float64 with the fused kernels off, reduced to
    ``[sum x, sum |x|, sum x^2]`` for each loss, parameter and output."""
    with torch.random.fork_rng(devices=[]), kernels.disabled():
        tensors = [t for method in _METHODS for t in _tiny_run(method, "float64")]
    return [[float(t.sum()), float(t.abs().sum()), float(t.square().sum())] for t in tensors]


def _reference_problem(recorded) -> str | None:
    """Why today's :func:`reference_statistics` differ from ``recorded``, or None."""
    return statistics_problem(recorded, reference_statistics())


def statistics_problem(recorded, now: list[list[float]]) -> str | None:
    """Why the float64 statistics ``recorded`` differ from ``now`` (today's), or None: each
    sum must agree to ``_RTOL`` of its scale (sum |x| for the first two, sum x^2 for the
    third)."""
    if (
        not isinstance(recorded, list)
        or len(recorded) != len(now)
        or not all(isinstance(r, list) and len(r) == 3 for r in recorded)
    ):
        return "its reference statistics do not fit today's tiny run"
    for i, (old, new) in enumerate(zip(recorded, now, strict=True)):
        scales = (new[1], new[1], new[2])
        if any(
            abs(a - b) > _RTOL * max(c, 1e-300) for a, b, c in zip(old, new, scales, strict=True)
        ):
            return (
                f"its reference statistics differ from today's (tensor {i}: {old} against "
                f"{new}): the code computes other numbers now"
            )
    return None


def _fingerprint(on: bool, threads: int) -> str:
    """The hash of the tiny run of each method, with the fused kernels ``on`` or off, on
    ``threads`` threads."""
    before = torch.get_num_threads()
    h = hashlib.sha256()
    with torch.random.fork_rng(devices=[]), contextlib.ExitStack() as stack:
        if not on:
            stack.enter_context(kernels.disabled())
        torch.set_num_threads(threads)
        try:
            for method in _METHODS:
                for t in _tiny_run(method):
                    h.update(t.numpy().tobytes())
        finally:
            torch.set_num_threads(before)
    return h.hexdigest()[:16]


def numerics(use_kernels: bool | None = None, threads: int | None = None) -> dict:
    """The numerics record of this installation, with the fused kernels as they are
    (``use_kernels=None``), or forced off (False) or on (True, where they can be built), and
    torch's current number of threads, or ``threads``: the fingerprint, what it was computed
    with, and the float64 reference statistics."""
    on = kernels.load() if use_kernels is None else bool(use_kernels)
    threads = torch.get_num_threads() if threads is None else int(threads)
    if on and not kernels.load():
        raise RuntimeError(f"the fused kernels are needed but unavailable: {kernels.status()}")
    return {
        "fingerprint": _fingerprint(on, threads),
        "kernels": on,
        "threads": threads,
        "torch": torch.__version__,
        "cpu": _cpu(),
        "reference": reference_statistics(),
    }


def numerics_problem(recorded: dict | None) -> str | None:
    """Why the ``recorded`` numerics differ from today's (a sentence), or None if they agree.

    On the CPU and torch the result was computed with, the fingerprints are compared; on
    another, the float64 reference statistics. Raises :class:`NotComparable` where neither can
    be: another machine and no reference statistics recorded, or kernels recorded on and
    unavailable here."""
    if not isinstance(recorded, dict) or "fingerprint" not in recorded:
        return "it records no numerics fingerprint"
    for key, here in (("torch", torch.__version__), ("cpu", _cpu())):
        if recorded.get(key) != here:
            if "reference" in recorded:
                return _reference_problem(recorded["reference"])
            raise NotComparable(f"it was computed with {key} {recorded.get(key)}, this is {here}")
    if recorded.get("kernels") and not kernels.load():
        raise NotComparable(f"it was computed with the fused kernels: {kernels.status()}")
    threads = recorded.get("threads")
    now = _fingerprint(
        bool(recorded.get("kernels")), torch.get_num_threads() if threads is None else int(threads)
    )
    if now != recorded["fingerprint"]:
        return (
            f"its numerics fingerprint {recorded['fingerprint']} is not today's "
            f"{now}: the code computes other numbers now"
        )
    return None


class NotComparable(RuntimeError):
    """Today's numerics cannot be computed as the recorded ones were (another CPU or torch)."""


def file_hashes(folder: Path, names) -> dict[str, str]:
    """{name: sha256} of the files ``names`` in ``folder``."""
    return {name: sha256(Path(folder) / name) for name in sorted(names)}


def files_problem(folder: Path, recorded: dict | None) -> str | None:
    """Which file of ``folder`` is missing or differs from its ``recorded`` sha256, or None."""
    if not isinstance(recorded, dict):
        return "it records no file hashes"
    for name, digest in sorted(recorded.items()):
        try:
            _checks.file_name(f"a file name recorded in {folder}", name)
        except ValueError as err:
            return str(err)
        path = Path(folder) / name
        if not path.is_file():
            return f"its file {path} is missing"
        if sha256(path) != digest:
            return f"its file {path} is not the one it wrote (sha256 differs)"
    return None
