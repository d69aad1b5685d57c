"""Training-step and inference cost of gBP against plain backprop, same shapes, same run.

Usage: python benchmarks/bench_steps.py [--device cpu|cuda] [--repeats N]
Prints, for each case, the median gBP time, the plain-backprop time and their ratio.
"""

from __future__ import annotations

import argparse

import torch
from common import header, median_seconds, row

from mfbook.train import TrainConfig, build_model, make_optimizer, resolve_device, train_epoch


def step_fn(method: str, sizes, batch: int, device):
    """One real training step (the package's own train_epoch on a single minibatch)."""
    config = TrainConfig(method=method, sizes=tuple(sizes), batch_size=batch)
    model = build_model(config, seed=0).to(device)
    opt = make_optimizer(model, config, lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, sizes[0], generator=gen).to(device)
    y = torch.randint(0, sizes[-1], (batch,), generator=gen).to(device)
    order, noise = torch.Generator().manual_seed(1), torch.Generator(device=device).manual_seed(2)
    return lambda: train_epoch(model, x, y, opt, config, 1e-3, order, noise)


def infer_fn(method: str, mode: str, sizes, batch: int, device):
    config = TrainConfig(method=method, sizes=tuple(sizes))
    model = build_model(config, seed=0).to(device)
    x = torch.rand(batch, sizes[0], device=device)
    noise = torch.Generator(device=device).manual_seed(2)

    @torch.no_grad()
    def run():
        return model.logits(x, mode, generator=noise) if method == "gbp" else model.logits(x)

    return run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--large", type=int, nargs="*", default=[1000], help="hidden widths to add")
    p.add_argument("--batch", type=int, default=500)
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    print(header(dev))
    cases = [([784, 100, 100, 10], 2.5)] + [([784, w, w, 10], 2.2) for w in args.large]
    for sizes, target in cases:
        name = "-".join(map(str, sizes))
        g = median_seconds(step_fn("gbp", sizes, args.batch, dev), args.repeats, sync=sync)
        b = median_seconds(step_fn("bp", sizes, args.batch, dev), args.repeats, sync=sync)
        print(row(f"train step {name}, batch {args.batch}", g, b, target))
    for sizes, _ in cases:
        name = "-".join(map(str, sizes))
        plain = median_seconds(infer_fn("bp", "mean", sizes, 10_000, dev), args.repeats, sync=sync)
        for mode in ("mean", "mf"):
            g = median_seconds(infer_fn("gbp", mode, sizes, 10_000, dev), args.repeats, sync=sync)
            print(row(f"inference ({mode}) {name}, batch 10000", g, plain, 2.2))


if __name__ == "__main__":
    main()
