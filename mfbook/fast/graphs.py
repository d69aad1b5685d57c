"""Training epochs replayed as one CUDA graph per step: the GPU fast path of chapter 4.

The paper's networks are small for a GPU: one gBP step of 784-400-400-10 at batch 500 is about
150 kernels of a few microseconds each, so an eager step is bound by launching them from Python,
not by arithmetic. :class:`GraphedEpochs` records the whole step (the mean-field forward, the gBP
backward of :mod:`mfbook.nn`, Adam, the decoupled weight decay and the projection) once as a
CUDA graph and replays it; per step only the minibatch and the noise are written into fixed
input buffers first.

It is an epoch runner (:class:`mfbook.loop.EpochRunner`) that computes what
:func:`mfbook.loop.train_epoch` computes, step for step: the same data order from
``order_gen``, and the noise eps drawn from ``noise_gen`` in the same order (layer by layer,
step by step), so a graphed run follows the eager run on the same device (the GPU tests compare
the two to float32 rounding).
"""

from __future__ import annotations

import torch

from mfbook.fast import noise
from mfbook.loop import EpochRunner, check_step, make_optimizer, training_step


class GraphedEpochs(EpochRunner):
    """Minibatch epochs over (x, y) for ``model`` under ``config``, each step a CUDA graph.

    x must be on a CUDA device, and the number of training images a multiple of the batch size
    (every step has the same shape).
    """

    def __init__(self, model, config, x, y, noise_gen):
        device = x.device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need the data on a CUDA device, got {device}")
        B = config.batch_size
        if x.shape[0] % B:
            raise ValueError(
                f"graphed epochs need the number of training images ({x.shape[0]}) to be a "
                f"multiple of batch_size ({B}); use the eager train_epoch otherwise"
            )
        self.model, self.config, self.x, self.y = model, config, x, y
        self.noise_gen = noise_gen
        self.lr = torch.tensor(config.lr, dtype=torch.float32, device=device)
        self.opt = make_optimizer(model, config, self.lr, capturable=True)
        self.xb = torch.empty(B, x.shape[1], dtype=x.dtype, device=device)
        self.yb = torch.empty(B, dtype=y.dtype, device=device)
        widths = config.sizes[1:] if config.method == "gbp" else ()
        self.eps = [torch.empty(B, n, dtype=x.dtype, device=device) for n in widths]
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        self.loss = torch.zeros((), dtype=torch.float32, device=device)
        self.graph = self._capture()

    # --- the step ------------------------------------------------------------------------
    def _step(self) -> None:
        """mfbook.loop.training_step on the buffers, the loss kept in buffers too."""
        loss = training_step(self.model, self.xb, self.yb, self.opt, self.eps or None)
        self.loss.copy_(loss)
        self.loss_sum.add_(loss * self.xb.shape[0])

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream (which allocates Adam's state), capture, then undo the
        warm-up: parameters, optimiser state and buffers are exactly as before, also when the
        capture fails (the error is raised again)."""
        saved = [p.detach().clone() for p in self.model.parameters()]
        try:
            return self._warm_up_and_capture()
        finally:
            with torch.no_grad():
                for p, s in zip(self.model.parameters(), saved, strict=True):
                    p.copy_(s)
            self.reset_optimizer()

    def _warm_up_and_capture(self) -> torch.cuda.CUDAGraph:
        B = self.config.batch_size
        self.xb.copy_(self.x[:B])
        self.yb.copy_(self.y[:B])
        for e in self.eps:
            e.zero_()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        return graph

    # --- what train() needs --------------------------------------------------------------
    def reset_optimizer(self) -> None:
        """A fresh Adam, in place (a graph keeps the addresses of the state tensors)."""
        for state in self.opt.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    value.zero_()

    def optimizer_state(self) -> list[torch.Tensor]:
        return [v.clone() for s in self.opt.state.values() for v in s.values()]

    def load_optimizer_state(self, saved: list[torch.Tensor]) -> None:
        current = [v for s in self.opt.state.values() for v in s.values()]
        if len(current) != len(saved):  # the state was still empty when it was saved
            self.reset_optimizer()
            return
        for v, s in zip(current, saved, strict=True):
            v.copy_(s)

    def start_epoch(self, lr: float, fresh: bool) -> None:
        """Set the learning rate; ``fresh``: reset Adam's state."""
        self.lr.fill_(lr)
        if fresh:
            self.reset_optimizer()

    def epoch(self, order_gen, check_steps: bool = False) -> torch.Tensor:
        """One epoch; the mean training loss as a 0-d tensor. ``check_steps``: check the loss and
        the parameters after every step (one synchronisation each) and raise
        :class:`~mfbook.loop.TrainingDiverged` naming the first bad step."""
        n, B = self.x.shape[0], self.config.batch_size
        perm = torch.randperm(n, generator=order_gen).to(self.x.device)
        self.loss_sum.zero_()
        for step, start in enumerate(range(0, n, B), start=1):
            idx = perm[start : start + B]
            torch.index_select(self.x, 0, idx, out=self.xb)
            torch.index_select(self.y, 0, idx, out=self.yb)
            for e in self.eps:  # the order in which MeanFieldLinear.forward draws them
                noise.normal_(e, self.noise_gen)
            self.graph.replay()
            if check_steps:
                check_step(self.loss, self.model, step)
        return self.loss_sum / n
