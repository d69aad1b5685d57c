"""A training step of the recurrent ensemble (gBPTT, chapter 9) against backprop through time of
the same leaky ReLU RNN, same batch, same run.

Usage: python benchmarks/bench_rnn.py [--repeats N] [--json PATH]
The case of the chapter: row-by-row MNIST shapes (28 steps of 28 inputs), 100 recurrent units, 10
outputs, batch 128. gBPTT: MeanFieldRNN's noisy pass, its hand-written backward, Adam and the
projection. BPTT: autograd through mfbook.rnn.run_network with plain weights and Adam. The calls
alternate, so both see the same load; the target is a ratio of at most 2.5.
"""

from __future__ import annotations

import argparse

import torch
from common import Report, loop_step, paired_medians

from mfbook import rnn_nn
from mfbook.rnn_train import PlainRNN

N_IN, T, N_REC, N_OUT, ALPHA = 28, 28, 100, 10, 0.2


def recurrent_steps(device: torch.device, batch: int) -> list:
    """[a gBPTT step, a BPTT step] of the same network and batch on ``device``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, T, N_IN, generator=gen).to(device)
    y = torch.randint(0, N_OUT, (batch,), generator=gen).to(device)
    ensemble = rnn_nn.MeanFieldRNN(N_IN, N_REC, N_OUT, ALPHA, generator=gen).to(device)
    plain = PlainRNN(N_IN, N_REC, N_OUT, ALPHA, generator=gen).to(device)
    noise = torch.Generator(device=device).manual_seed(1)
    g_step = loop_step(
        ensemble, torch.optim.Adam(ensemble.parameters(), lr=1e-3), x, y, noise, True
    )
    p_step = loop_step(plain, torch.optim.Adam(plain.parameters(), lr=1e-3), x, y)
    return [g_step, p_step]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    report = Report(torch.device("cpu"))
    g_s, p_s = paired_medians(recurrent_steps(torch.device("cpu"), args.batch), args.repeats)
    report.ratio(
        "rnn-step",
        f"RNN training step, T={T}, {N_REC} units, batch {args.batch}",
        g_s,
        p_s,
        target=2.5,
    )
    report.save(args.json)


if __name__ == "__main__":
    main()
