"""GPU check, sized for a few minutes on one accelerator: prints the numbers to record.

Usage: python benchmarks/gpu_check.py --json benchmarks/results/gpu-<card>.json \
           > benchmarks/results/gpu-<card>.txt
1. the CUDA-graph epochs (mfbook.fast.graphs) against eager epochs on the GPU: same losses and
   parameters up to float rounding;
2. epoch time of the ``full`` preset (60k images, batch 500), graphed and eager, after a warm-up
   epoch (target <= 0.1 s), and of the ``paper`` preset;
3. training-step ratio gBP / plain backprop at width 4096, batch 4096 (target <= 2.2x), and at
   the CPU benchmark's shapes, eager and graphed;
4. inference ratios (mean and noisy mean-field forward) at batch 10,000, as bench_steps.py;
5. the recurrent ensemble (chapter 9): gBPTT on the GPU against the CPU in float64, one epoch
   of row-by-row MNIST on the GPU, and the gBPTT / BPTT step ratio at bench_rnn.py's shapes.
Each part reports its own failure and the others still run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback

import torch
from bench_epochs import epoch_seconds
from bench_steps import inference_rows, step_fn
from common import Report, paired_medians

from mfbook.fast.graphs import GraphedEpochs
from mfbook.train import TrainConfig, build_model, preset, train

CUDA = torch.device("cuda")
report: Report


def part(title):
    def wrap(fn):
        def run():
            print(f"\n## {title}", flush=True)
            t0 = time.perf_counter()
            try:
                fn()
            except Exception:  # report and go on: one device run must give every number it can
                traceback.print_exc(file=sys.stdout)
            print(f"({time.perf_counter() - t0:.1f} s)", flush=True)

        return run

    return wrap


@part("1. graphed vs eager epochs on the GPU (paper preset, 3 epochs)")
def agreement():
    for method in ("gbp", "bp"):
        out = {}
        for graphed in (False, True):
            r = train(
                preset("paper").replace(method=method, epochs=3),
                device=CUDA,
                progress=False,
                cuda_graphs=graphed,
            )
            out[graphed] = r
        a, b = out[False], out[True]
        diff = max(
            float((p.detach() - q.detach()).abs().max())
            for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True)
        )
        report.value(
            f"graph-diff-{method}",
            diff,
            f"{method}: train loss eager {a.history['train_loss']} graphed "
            f"{b.history['train_loss']}; max |param diff| {diff:.2e}; test error (mean net) "
            f"eager {a.history['test_error_mean'][-1]:.4f} graphed "
            f"{b.history['test_error_mean'][-1]:.4f}",
        )


@part("2. epoch times (evaluation included), median after one warm-up epoch")
def epochs():
    for name, n in (("full", 5), ("paper", 6)):
        for graphed in (True, False):
            secs = epoch_seconds(name, n, CUDA, cuda_graphs=graphed)
            target = " (target <= 0.100 s)" if name == "full" else ""
            kind = "graphed" if graphed else "eager"
            report.value(
                f"{name}-epoch-{kind}",
                statistics.median(secs),
                f"{name:<6} {kind:<7} median {statistics.median(secs):.4f} s{target}; "
                f"all {[round(s, 4) for s in secs]}",
            )


def graphed_epoch_fn(method: str, sizes, batch: int, steps: int):
    """A graphed epoch of ``steps`` steps on random data."""
    config = TrainConfig(method=method, sizes=tuple(sizes), batch_size=batch, n_train=None)
    model = build_model(config, seed=0).to(CUDA)
    gen = torch.Generator(device=CUDA).manual_seed(0)
    x = torch.rand(steps * batch, sizes[0], device=CUDA, generator=gen)
    y = torch.randint(0, sizes[-1], (steps * batch,), device=CUDA, generator=gen)
    noise = torch.Generator(device=CUDA).manual_seed(2)
    runner = GraphedEpochs(model, config, x, y, noise)
    runner.start_epoch(1e-3, fresh=True)
    order = torch.Generator().manual_seed(1)
    return lambda: runner.epoch(order)


@part("3. training step, gBP / plain backprop, same shapes")
def steps():
    sync = torch.cuda.synchronize
    for sizes, batch, target in (
        ([784, 4096, 4096, 10], 4096, 2.2),
        ([784, 100, 100, 10], 500, 2.5),
        ([784, 1000, 1000, 10], 500, 2.2),
    ):
        name = f"{'-'.join(map(str, sizes))}, batch {batch}"
        fns = [step_fn(m, sizes, batch, CUDA) for m in ("gbp", "bp")]
        g, b = paired_medians(fns, 30, 5, sync)
        report.ratio(f"step-{sizes[1]}", f"eager step {name}", g, b, target)
        steps = 20
        fns = [graphed_epoch_fn(m, sizes, batch, steps) for m in ("gbp", "bp")]
        g, b = paired_medians(fns, 10, 2, sync)
        report.ratio(
            f"graphed-step-{sizes[1]}", f"graphed step {name}", g / steps, b / steps, target
        )


@part("4. inference, batch 10000")
def inference():
    for sizes in ([784, 100, 100, 10], [784, 4096, 4096, 10]):
        inference_rows(report, sizes, CUDA, 30, torch.cuda.synchronize)


@part("5. recurrent ensemble: gBPTT on the GPU")
def recurrent():
    from bench_rnn import recurrent_steps

    from mfbook import rnn
    from mfbook.rnn_train import RecurrentConfig, train_recurrent

    gen = torch.Generator().manual_seed(0)
    params = rnn.init_params(28, 100, 10, generator=gen, dtype=torch.float64)
    data = [torch.rand(64, 28, 28, generator=gen, dtype=torch.float64)]
    data += [torch.randint(0, 10, (64,), generator=gen)]
    data += [torch.randn(64, 28, 100, generator=gen, dtype=torch.float64)]
    data += [torch.randn(64, 10, generator=gen, dtype=torch.float64)]
    cpu = rnn.gradients(params, *data, 0.2)
    moved = rnn.RecurrentParams(*(tuple(t.to(CUDA) for t in p) for p in params))
    gpu = rnn.gradients(moved, *(t.to(CUDA) for t in data), 0.2)
    err = max(
        float((v.cpu() - u).abs().max() / u.abs().max().clamp(min=1e-300))
        for a, b in zip(cpu, gpu, strict=True)
        for u, v in zip(a, b, strict=True)
    )
    report.value("rnn-gpu-cpu-error", err, f"gBPTT gradients, GPU vs CPU (float64): {err:.1e}")
    t0 = time.perf_counter()
    result = train_recurrent(RecurrentConfig(epochs=1), seed=0, device=CUDA)
    seconds, error = time.perf_counter() - t0, result.history["test_error_mf"][-1]
    report.value("rnn-gpu-epoch-s", seconds, f"one epoch of row-by-row MNIST: {seconds:.1f} s")
    report.value("rnn-gpu-epoch-error", error, f"its test error (noisy pass): {100 * error:.2f} %")
    g, b = paired_medians(recurrent_steps(CUDA, 128), 20, 2, torch.cuda.synchronize)
    report.ratio("rnn-step", "RNN training step, T=28, 100 units, batch 128", g, b, target=2.5)


def main(argv=None) -> int:
    global report
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    report = Report(CUDA)
    print(f"tf32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32}")
    for check in (agreement, epochs, steps, inference, recurrent):
        check()
    report.save(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
