"""Training-step and inference cost of gBP against plain backprop, same shapes, same run.

Usage: python benchmarks/bench_steps.py [--device cpu|cuda] [--repeats N] [--json PATH]
Prints, for each case, the median gBP time, the plain-backprop time and their ratio; gBP and
plain calls alternate, so both see the same load. Two extra lines per width separate out the
cost of drawing the noise eps, which plain backprop does not pay: the noise draw alone, and the
noisy forward pass with eps drawn beforehand. Further lines give the floor under each ratio
(its unavoidable parts, each timed alone) and, for the training step, the same gBP step with
mfbook's fused CPU kernels turned off. The "user loop" rows time a reader's own loop
(``opt.zero_grad(); loss.backward(); opt.step()``) with :class:`mfbook.optim.MeanFieldAdam`
against a plain MLP with ``torch.optim.Adam``.
"""

from __future__ import annotations

import argparse

import torch
from common import Report, loop_step, paired_medians

from mfbook.config import TrainConfig
from mfbook.fast import kernels
from mfbook.fast.noise import normal_
from mfbook.loop import build_model, make_optimizer, train_epoch
from mfbook.nn import MeanFieldMLP, PlainMLP
from mfbook.optim import MeanFieldAdam
from mfbook.train import resolve_device


def step_fn(method: str, sizes, batch: int, device):
    """One real training step (the package's own train_epoch on a single minibatch)."""
    config = TrainConfig(method=method, sizes=tuple(sizes), batch_size=batch, lr=1e-3)
    model = build_model(config, seed=0).to(device)
    opt = make_optimizer(model, config)
    x, y = batch_of(sizes, batch, device)
    order, noise = torch.Generator().manual_seed(1), torch.Generator(device=device).manual_seed(2)
    return lambda: train_epoch(model, x, y, opt, config, order, noise)


def batch_of(sizes, batch: int, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, sizes[0], generator=gen).to(device)
    return x, torch.randint(0, sizes[-1], (batch,), generator=gen).to(device)


def user_loop_fn(model, opt, sizes, batch: int, device, project=False):
    """One step of a reader's own loop: ``opt.zero_grad(); loss.backward(); opt.step()`` on
    ``model`` (its checked forward pass), with ``model.project_()`` after it if ``project``."""
    x, y = batch_of(sizes, batch, device)
    noise = torch.Generator(device=device).manual_seed(2)
    return loop_step(model, opt, x, y, noise if isinstance(model, MeanFieldMLP) else None, project)


def user_loop_fns(sizes, batch: int, device):
    """The user-loop steps: gBP with MeanFieldAdam, gBP with torch's Adam and project_(), and
    the baseline, a plain MLP with torch.optim.Adam (its defaults)."""
    fns = []
    for kind in ("mf-adam", "torch-adam", "plain"):
        torch.manual_seed(0)
        model = (PlainMLP if kind == "plain" else MeanFieldMLP)(sizes).to(device)
        if kind == "mf-adam":
            opt = MeanFieldAdam(model, lr=1e-3)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        fns.append(user_loop_fn(model, opt, sizes, batch, device, project=kind == "torch-adam"))
    return fns


def noise_fn(sizes, batch: int, device):
    """Draw the eps of one noisy forward pass: (batch, N_l) for every layer, as the model does,
    into buffers kept between calls: the cost of computing the numbers, not of fresh memory
    (the noisy inference pass computes them block by block and never stores them)."""
    gen = torch.Generator(device=device).manual_seed(2)
    buffers = [torch.empty(batch, n, device=device) for n in sizes[1:]]
    return lambda: [normal_(b, gen) for b in buffers]


def matmul_fn(method: str, sizes, batch: int, device, backward: bool = True):
    """Only the matrix products of one training step (or, ``backward=False``, of one forward
    pass), same shapes: per layer gBP has two forward (mean and variance paths) and four backward
    (three in the first layer, which needs no dC/dh), backprop one and two."""
    gen = torch.Generator(device=device).manual_seed(0)
    copies = 2 if method == "gbp" else 1
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        h = torch.rand(copies, batch, n_in, generator=gen, device=device)
        w = torch.randn(copies, n_out, n_in, generator=gen, device=device)
        K = torch.randn(copies, batch, n_out, generator=gen, device=device) if backward else None
        layers.append((h, w, K, l > 0))

    def run():
        for h, w, K, input_grad in layers:
            for c in range(copies):
                torch.mm(h[c], w[c].T)
                if K is not None:
                    torch.mm(K[c].T, h[c])
                    if input_grad:
                        torch.mm(K[c], w[c])

    return run


def update_fn(method: str, sizes, device):
    """The parameter update alone, as training does it (MeanFieldAdam.step): Adam, decay and the
    projection on (pi, m, xi) for gBP; Adam and decay on w for plain backprop."""
    config = TrainConfig(method=method, sizes=tuple(sizes), lr=1e-3)
    model = build_model(config, seed=0).to(device)
    opt = make_optimizer(model, config)
    gen = torch.Generator(device=device).manual_seed(3)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen, device=device) * 1e-3
    return opt.step


def unfused(fn):
    """``fn`` with mfbook's fused CPU kernels turned off: torch's elementwise operations."""

    def run():
        with kernels.disabled():
            return fn()

    return run


def square_fn(sizes, batch: int, device):
    """h * h of the input images alone: the variance path's extra pass over the input."""
    x = torch.rand(batch, sizes[0], device=device)
    return lambda: x * x


def infer_fn(method: str, mode: str, sizes, batch: int, device, eps_given=False):
    config = TrainConfig(method=method, sizes=tuple(sizes))
    model = build_model(config, seed=0).to(device)
    x = torch.rand(batch, sizes[0], device=device)
    noise = torch.Generator(device=device).manual_seed(2)
    eps = noise_fn(sizes, batch, device)() if eps_given else None

    @torch.no_grad()
    def run():
        if method == "bp":
            return model.logits(x)
        return model.logits(x, mode, eps, generator=noise)

    return run


def inference_rows(report, sizes, device, repeats: int, sync=None, n: int = 10_000) -> None:
    """Mean and noisy forward passes of ``n`` images against the plain network; the noisy pass
    also with eps drawn beforehand, and the parts that bound it from below: the eps draw, the
    matrix products and the squaring of the input, each alone."""
    name, w = "-".join(map(str, sizes)), sizes[1]
    fns = [
        infer_fn("bp", "mean", sizes, n, device),
        infer_fn("gbp", "mean", sizes, n, device),
        infer_fn("gbp", "mf", sizes, n, device),
        infer_fn("gbp", "mf", sizes, n, device, eps_given=True),
        noise_fn(sizes, n, device),
        matmul_fn("gbp", sizes, n, device, backward=False),
        matmul_fn("bp", sizes, n, device, backward=False),
        square_fn(sizes, n, device),
    ]
    plain, mean, mf, mf_given, noise, mm_g, mm_b, square = paired_medians(fns, repeats, sync=sync)
    report.ratio(f"infer-mean-{w}", f"inference (mean) {name}, batch {n}", mean, plain, 2.2)
    report.ratio(f"infer-mf-{w}", f"inference (mf) {name}, batch {n}", mf, plain, 2.2)
    report.ratio(f"infer-mf-given-{w}", "  of which: the pass with eps given", mf_given, plain)
    report.ratio(f"infer-noise-{w}", "  of which: drawing eps alone", noise, plain)
    report.ratio(f"infer-mm-{w}", "  the matrix products alone", mm_g, mm_b)
    report.ratio(f"infer-square-{w}", "  squaring the input alone", square, plain)
    floor = mm_g + noise + square
    report.ratio(f"infer-floor-{w}", "  floor: products + eps + input squared", floor, plain)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--large", type=int, nargs="*", default=[1000], help="hidden widths to add")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    report = Report(dev)
    cases = [([784, 100, 100, 10], 2.5)] + [([784, w, w, 10], 2.2) for w in args.large]
    for sizes, target in cases:
        name = "-".join(map(str, sizes))
        fns = [step_fn(m, sizes, args.batch, dev) for m in ("gbp", "bp")]
        fns += [matmul_fn(m, sizes, args.batch, dev) for m in ("gbp", "bp")]
        fns += [noise_fn(sizes, args.batch, dev), update_fn("gbp", sizes, dev)]
        fns += [update_fn("bp", sizes, dev), unfused(step_fn("gbp", sizes, args.batch, dev))]
        g, b, mm_g, mm_b, noise, upd_g, upd_b, g_torch = paired_medians(
            fns, args.repeats, sync=sync
        )
        w = sizes[1]
        report.ratio(f"step-{w}", f"train step {name}, batch {args.batch}", g, b, target)
        report.ratio(f"step-mm-{w}", "  the matrix products alone", mm_g, mm_b)
        report.ratio(f"step-noise-{w}", "  of which: drawing eps alone", noise, b)
        report.ratio(
            f"step-update-{w}", "  the update alone (Adam, decay, projection)", upd_g, upd_b
        )
        # what gBP cannot avoid, each part timed alone, against the whole plain step: the
        # plain step's own products and update are in its time, gBP's extra work on top
        # (plain's rest is a time, so at least 0: single timings can undershoot)
        floor = mm_g + noise + upd_g + max(b - mm_b - upd_b, 0.0)
        report.ratio(f"step-floor-{w}", "  floor: products + eps + update + plain rest", floor, b)
        report.ratio(f"step-torch-{w}", "  gBP step without the fused CPU kernels", g_torch, b)
        mf_adam, torch_adam, plain = paired_medians(
            user_loop_fns(sizes, args.batch, dev), args.repeats, sync=sync
        )
        report.ratio(
            f"user-{w}", f"user loop {name}, MeanFieldAdam vs Adam", mf_adam, plain, target
        )
        report.ratio(f"user-torch-{w}", "  gBP with torch's Adam + project_()", torch_adam, plain)
    for sizes, _ in cases:
        inference_rows(report, sizes, dev, args.repeats, sync)
    report.save(args.json)


if __name__ == "__main__":
    main()
