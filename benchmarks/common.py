"""Timing helpers for the benchmark scripts: medians of repeated runs, warm-up excluded."""

from __future__ import annotations

import platform
import statistics
import time

import torch

import mfbook


def median_seconds(fn, repeats: int = 20, warmup: int = 3, sync=None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def header(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return (
        f"# mfbook {mfbook.__version__}, torch {torch.__version__}, python "
        f"{platform.python_version()}, device {device} ({name or platform.machine()}), "
        f"{torch.get_num_threads()} CPU threads"
    )


def row(case: str, gbp_s: float, plain_s: float, target: float | None) -> str:
    ratio = gbp_s / plain_s
    verdict = "" if target is None else ("  OK" if ratio <= target else "  OVER TARGET")
    limit = "" if target is None else f" (target <= {target:.1f}x)"
    return (
        f"{case:<46} gbp {1e3 * gbp_s:9.2f} ms   plain {1e3 * plain_s:9.2f} ms   "
        f"ratio {ratio:5.2f}x{limit}{verdict}"
    )
