"""Timing helpers for the benchmark scripts: paired medians, ratios, a JSON record of each run."""

from __future__ import annotations

import json
import statistics
import time

import torch

from mfbook.io import atomic_write
from mfbook.reproduce import environment


def loop_step(model, opt, x, y, generator=None, project=False):
    """One step of a reader's own training loop, as a function: ``opt.zero_grad();
    cross_entropy(model(x), y).backward(); opt.step()``, the model's noise drawn from
    ``generator`` when one is given, then ``model.project_()`` if ``project``."""

    def run():
        opt.zero_grad(set_to_none=True)
        logits = model(x) if generator is None else model(x, generator=generator)
        torch.nn.functional.cross_entropy(logits, y).backward()
        opt.step()
        if project:
            model.project_()

    return run


def paired_medians(fns, repeats: int = 20, warmup: int = 3, sync=None) -> list[float]:
    """Median wall time of each function, called in turn (a, b, a, b, ...) after ``warmup``
    rounds, so that all of them see the same load on a shared machine: their ratio is robust."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            if sync:
                sync()
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def header(e: dict) -> str:
    """The first line of a report: versions, device and threads, from an environment record."""
    return (
        f"# mfbook {e['mfbook']}, torch {e['torch']}, python {e['python']}, device {e['device']} "
        f"({e.get('gpu', e['machine'])}), {e['cpu_threads']} CPU threads"
    )


def row(case: str, gbp_s: float, plain_s: float, target: float | None) -> str:
    ratio = gbp_s / plain_s
    verdict = "" if target is None else ("  OK" if ratio <= target else "  OVER TARGET")
    limit = "" if target is None else f" (target <= {target:.1f}x)"
    return (
        f"{case:<46} gbp {1e3 * gbp_s:9.2f} ms   plain {1e3 * plain_s:9.2f} ms   "
        f"ratio {ratio:5.2f}x{limit}{verdict}"
    )


class Report:
    """Prints each measurement as it comes and keeps it for a JSON file (the performance
    appendix reads it)."""

    def __init__(self, device: torch.device):
        self.data = {"environment": environment(device), "rows": [], "values": {}}
        print(header(self.data["environment"]), flush=True)

    def ratio(self, key: str, case: str, gbp_s: float, plain_s: float, target=None) -> None:
        """One case: gBP time, plain-backprop time, their ratio and the target ratio."""
        print(row(case, gbp_s, plain_s, target), flush=True)
        self.data["rows"].append(
            {
                "key": key,
                "case": case,
                "gbp_s": gbp_s,
                "plain_s": plain_s,
                "ratio": gbp_s / plain_s,
                "target": target,
            }
        )

    def value(self, key: str, value: float, text: str) -> None:
        """A single measured number (seconds, MB, ...) with the line that explains it."""
        print(text, flush=True)
        self.data["values"][key] = value

    def save(self, path) -> None:
        if path:
            atomic_write(path, json.dumps(self.data, indent=1) + "\n")
