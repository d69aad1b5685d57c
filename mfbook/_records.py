"""Records of measurements: the environment stored with every result, and the stored benchmarks.

:func:`environment` is what ``mfbook.reproduce`` and the scripts in ``benchmarks/`` store beside
a number (versions, machine, device); :func:`load_benchmark` reads a benchmark record that those
scripts wrote (chapter 4 quotes them). ``mfbook.reproduce`` re-exports both. :func:`final_errors`
and :func:`final_stats` are the last-epoch errors of one stored run and their spread over runs.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

import mfbook


def environment(device) -> dict:
    """Versions, machine and device of a measurement (stored with every result)."""
    info = {
        "mfbook": mfbook.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def benchmarks_dir() -> Path:
    """``benchmarks/results`` of the source tree: the stored benchmark measurements."""
    return Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def load_benchmark(name: str, root=None) -> dict:
    """A stored benchmark measurement ``NAME.json`` (written by the scripts in benchmarks/ with
    ``--json``): its environment, its ratio rows by key and its single values by key."""
    path = Path(root or benchmarks_dir()) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no stored benchmark {path}; run make bench (CPU) or "
            "benchmarks/gpu_check.py --json (GPU)"
        )
    try:
        data = json.loads(path.read_text())
        rows = {r["key"]: r for r in data["rows"]}
        return {"environment": data["environment"], "rows": rows, "values": data["values"]}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"stored benchmark {path} is not a benchmark record: {err!r}") from err


def final_errors(history: dict) -> dict[str, float]:
    """The last value of every error curve (``test_error_*``, ``val_error_*``) of a history."""
    return {k: v[-1] for k, v in history.items() if "_error_" in k}


def final_stats(runs) -> dict[str, dict[str, float]]:
    """``final_mean`` and ``final_std`` over ``runs`` (stored runs with their ``"final"``)."""
    runs = list(runs)
    finals = {k: [r["final"][k] for r in runs] for k in runs[0]["final"]}
    return {
        "final_mean": {k: float(np.mean(v)) for k, v in finals.items()},
        "final_std": {k: float(np.std(v)) for k, v in finals.items()},
    }
