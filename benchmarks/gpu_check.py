"""GPU check, sized for a few minutes on one accelerator: prints the numbers to record.

Usage: python benchmarks/gpu_check.py > benchmarks/results/gpu-<card>.txt
1. epoch time of the ``full`` preset (60k images, batch 500), after one warm-up epoch;
2. training-step ratio gBP / plain backprop at width 4096, batch 4096 (target <= 2.2x);
3. the CPU-sized step ratios of bench_steps.py, on the GPU.
"""

from __future__ import annotations

import statistics
import sys

import torch
from bench_steps import step_fn
from common import header, median_seconds, row

from mfbook.train import preset, train


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    dev = torch.device("cuda")
    print(header(dev))
    r = train(preset("full").replace(epochs=4), device=dev, progress=False)
    secs = r.history["seconds"][1:]
    print(
        f"full preset epoch (after warm-up, eval incl.): median {statistics.median(secs):.3f} s "
        f"over {len(secs)} epochs (target <= 0.1 s); test error after 4 epochs "
        f"{r.history['test_error_sample'][-1]:.4f}"
    )
    sync = torch.cuda.synchronize
    for sizes, batch, target in (
        ([784, 4096, 4096, 10], 4096, 2.2),
        ([784, 100, 100, 10], 500, 2.5),
        ([784, 1000, 1000, 10], 500, 2.2),
    ):
        g = median_seconds(step_fn("gbp", sizes, batch, dev), 50, 5, sync)
        b = median_seconds(step_fn("bp", sizes, batch, dev), 50, 5, sync)
        print(row(f"train step {'-'.join(map(str, sizes))}, batch {batch}", g, b, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
