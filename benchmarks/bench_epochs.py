"""End-to-end epoch time and peak memory: the ``paper`` preset vs ``paper_bp``, same run.

Usage: python benchmarks/bench_epochs.py [--device cpu|cuda] [--epochs N] [--memory] [--json PATH]
Epoch times are medians over the epochs after the first (warm-up) of two runs of each preset,
taken in turn (gbp, plain, gbp, plain), evaluation included.
``--memory`` trains one epoch of the ``full`` preset (gBP and plain) in child processes and
prints their peak resident memory.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from common import Report

from mfbook.train import preset, resolve_device, train

#: The authors' numpy code takes about this long per epoch of the paper preset (issue notes).
REFERENCE_NUMPY_SECONDS_PER_EPOCH = 3.0

CHILD = """
import resource, sys
from mfbook.train import preset, train
train(preset(sys.argv[1]).replace(epochs=1), device=sys.argv[2], progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def epoch_seconds(name: str, epochs: int, device, cuda_graphs=None) -> list[float]:
    """Seconds of each epoch of preset ``name`` after the first (warm-up), evaluation included."""
    config = preset(name).replace(epochs=epochs)
    r = train(config, device=device, progress=False, cuda_graphs=cuda_graphs)
    return r.history["seconds"][1:]


def peak_rss_mb(name: str, device: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, device], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=11)
    p.add_argument("--memory", action="store_true")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    report = Report(dev)
    secs: dict[str, list[float]] = {"paper": [], "paper_bp": []}
    for _ in range(2):
        for name in secs:
            secs[name] += epoch_seconds(name, args.epochs, dev)
    g, b = (statistics.median(v) for v in secs.values())
    report.ratio("paper-epoch", "paper preset epoch (10k images, eval incl.)", g, b)
    speedup = REFERENCE_NUMPY_SECONDS_PER_EPOCH / g
    report.value("paper-run-s", 200 * g, f"paper preset, 200 epochs, projected: {200 * g:.0f} s")
    report.value(
        "paper-speedup",
        speedup,
        f"vs the reference numpy code's ~{REFERENCE_NUMPY_SECONDS_PER_EPOCH:.0f} s/epoch: "
        f"{speedup:.0f}x faster (target >= 20x{': OK' if speedup >= 20 else ': UNDER TARGET'})",
    )
    if args.memory:
        gm, bm = peak_rss_mb("full", str(dev)), peak_rss_mb("paper_bp", str(dev))
        verdict = "OK" if gm <= 1536 else "OVER TARGET"
        report.value(
            "full-rss-mb",
            gm,
            f"peak RSS, one epoch: full preset gbp {gm:.0f} MB (target <= 1536 MB: {verdict}); "
            f"paper_bp {bm:.0f} MB",
        )
    report.save(args.json)


if __name__ == "__main__":
    main()
