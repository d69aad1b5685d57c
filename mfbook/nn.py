"""The trainable model: mean-field layers with the paper's parameters pi, m, xi (chapters 3-4).

``MeanFieldLinear`` holds one spike-and-slab layer in the paper's direct parameterisation and runs
the moment equations forward; its backward is the hand-derived gBP of :mod:`mfbook.gbp` (a custom
``torch.autograd.Function``), so ``loss.backward()`` gives exactly the gBP gradients.
``project_()`` is the projection step after each optimiser step that creates exact 0s and 1s.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mfbook import _checks, gbp
from mfbook.config import BACKWARD_VARIANCES
from mfbook.fast import kernels, noise
from mfbook.fast import layer as fast_layer
from mfbook.spike_slab import SpikeSlab

MODES = ("mf", "mean")
#: The paper's initialisation (chapter 4): m ~ Normal(0, 2/784) in every layer.
M_VAR = 2 / 784
#: xi ~ Uniform[0, XI_MAX).
XI_MAX = 0.01
#: The projection after every optimiser step (chapter 4): pi in [0, 1], xi >= 0.
PI_BOUNDS, XI_BOUNDS = (0.0, 1.0), (0.0, math.inf)


def _path(*tensors):
    """The one point where a layer picks its implementation: the fused CPU kernels of
    :mod:`mfbook.fast.layer` where they apply to ``tensors`` (float32, contiguous, on the CPU),
    else the reference gBP of chapter 3 (:mod:`mfbook.gbp`). Both compute the same formulas,
    equal to float32 rounding (tests/test_kernels.py); a seed fixes the numbers of either."""
    return fast_layer if kernels.applies(*tensors) else gbp


def _draw_eps(h, n_out, generator):
    """Fresh noise eps ~ Normal(0, 1) of shape (B, n_out) (chapter 3), drawn from ``generator``
    (on the CPU by the counter-based generator of :mod:`mfbook.fast.noise`)."""
    return noise.standard_normal(
        h.shape[0], n_out, generator=generator, dtype=h.dtype, device=h.device
    )


class _MeanFieldFunction(torch.autograd.Function):
    """z = G + eps * Delta forward (or ReLU(z), for a hidden layer); gBP (chapter 3, equation
    eq-ch3-grads) backward, through the ReLU first when there is one."""

    @staticmethod
    def forward(ctx, h, pi, m, xi, eps, relu, backward_variance):
        path = _path(h, pi, m, xi, eps)
        _, _, z, cache = path.layer_forward(h, pi, m, xi, eps, keep=True, relu=relu)
        if backward_variance == "as_published_2020":  # dC/dh of the 2020 code (chapter 8)
            cache = cache._replace(var=gbp.published_2020_variance(pi, m, xi))
        ctx.relu, ctx.path = relu, path
        ctx.save_for_backward(h, pi, m, xi, *cache, *((z,) if relu else ()))
        return z

    @staticmethod
    def backward(ctx, K):
        h, pi, m, xi, *cache = ctx.saved_tensors
        out = cache.pop() if ctx.relu else None
        grads = ctx.path.layer_backward_cached(
            K, h, pi, m, xi, gbp.LayerCache(*cache), ctx.needs_input_grad[0], out
        )
        return *grads, None, None, None


class MeanFieldLinear(nn.Module):
    """One layer of spike-and-slab connections, shape (n_out, n_in), no bias (chapter 3).

    Init (chapter 4): m ~ Normal(0, m_var), xi ~ Uniform[0, xi_max), pi = pi_init.
    ``backward_variance``: "exact", or "as_published_2020" for the study of chapter 8 only (the
    variance factor of dC/dh in the 2020 version of the authors' code; the forward pass and the
    weight gradients are unchanged).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        m_var: float = M_VAR,
        xi_max: float = XI_MAX,
        pi_init: float = 0.0,
        backward_variance: str = "exact",
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.backward_variance = _checks.choice(
            "backward_variance", backward_variance, BACKWARD_VARIANCES
        )
        self.n_in = _checks.positive_int("n_in", n_in)
        self.n_out = _checks.positive_int("n_out", n_out)
        if not m_var >= 0 or not xi_max >= 0:
            raise ValueError(f"m_var and xi_max must be >= 0, got {m_var!r} and {xi_max!r}")
        if not 0 <= pi_init <= 1:
            raise ValueError(f"pi_init must lie in [0, 1], got {pi_init!r}")
        self.m_var, self.xi_max, self.pi_init = m_var, xi_max, pi_init
        kw = {"dtype": dtype, "device": device}
        self.pi = nn.Parameter(torch.empty(n_out, n_in, **kw))
        self.m = nn.Parameter(torch.empty(n_out, n_in, **kw))
        self.xi = nn.Parameter(torch.empty(n_out, n_in, **kw))
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}"

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw m, then xi, from ``generator``; set pi to ``pi_init``."""
        self.m.normal_(0.0, math.sqrt(self.m_var), generator=generator)
        self.xi.uniform_(0.0, self.xi_max, generator=generator)
        self.pi.fill_(self.pi_init)

    def spike_slab(self) -> SpikeSlab:
        """The layer's distribution (detached from autograd)."""
        return SpikeSlab(self.pi.detach(), self.m.detach(), self.xi.detach())

    @torch.no_grad()
    def mean_and_noisy(self, h, generator=None):
        """(G, G + eps * Delta): the mean network's and the noisy pre-activations of one input,
        exactly as ``forward(h, "mean")`` and ``forward(h, "mf", eps)`` give them, with the
        matrix product for G done once; eps is drawn from ``generator``."""
        eps = _draw_eps(h, self.n_out, generator)
        G, _, z, _ = _path(h, self.pi, eps).layer_forward(h, self.pi, self.m, self.xi, eps)
        return G, z

    def forward(self, h, mode="mf", eps=None, generator=None, relu=False):
        """Pre-activations z (B, n_out), or with ``relu`` the hidden units ReLU(z) (in the same
        pass). No input checks here: :class:`MeanFieldMLP` checks.

        mode "mf": z = G + eps * Delta (chapter 3), eps ~ Normal(0, 1) drawn from ``generator``
        unless given; with autograd on, ``backward`` runs gBP. mode "mean": z = G, the
        deterministic mean network.
        """
        pi, m, xi = self.pi, self.m, self.xi
        if mode == "mean":
            G = _path(h, pi).mean_layer(h, pi, m, xi)
            return torch.relu(G) if relu else G
        if eps is None and not torch.is_grad_enabled():  # inference: eps drawn and used at once
            return self.noisy(h, generator, relu)[0]
        if eps is None:
            eps = _draw_eps(h, self.n_out, generator)
        if torch.is_grad_enabled():
            return _MeanFieldFunction.apply(h, pi, m, xi, eps, relu, self.backward_variance)
        return _path(h, pi, eps).layer_forward(h, pi, m, xi, eps, relu=relu)[2]

    @torch.no_grad()
    def noisy(self, h, generator=None, relu=False, h2=None):
        """Inference through this layer, no autograd: (out, out * out or None), out = z or
        ReLU(z) with fresh eps from ``generator``; the square (h^2 of the next layer) comes
        free on the fused path, which also never stores eps."""
        path = _path(h, self.pi)
        if path is fast_layer:
            return path.noisy_layer(h, self.pi, self.m, self.xi, generator, relu, h2)
        eps = _draw_eps(h, self.n_out, generator)
        return path.layer_forward(h, self.pi, self.m, self.xi, eps, relu=relu)[2], None

    def bounds(self) -> list[tuple[torch.Tensor, float, float]]:
        """(tensor, lo, hi) of the projection: pi in [0, 1], xi >= 0 (m is unbounded)."""
        return [(self.pi, *PI_BOUNDS), (self.xi, *XI_BOUNDS)]

    def project_(self) -> None:
        """Projection after an optimiser step: pi <- clip(pi, 0, 1), xi <- max(xi, 0)."""
        with torch.no_grad():
            for t, lo, hi in self.bounds():
                t.clamp_(lo, hi)


def _check_sizes(sizes) -> list[int]:
    if not isinstance(sizes, list | tuple) or len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output width, got {sizes!r}")
    return [_checks.positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes)]


def _check_input(x, n_in, like) -> None:
    _checks.tensor("x", x, ndim=2)
    if x.shape[1] != n_in:
        raise ValueError(f"x must have shape (B, {n_in}), got {tuple(x.shape)}")
    _checks.same_dtype_device(("x", "model parameters"), (x, like))


class MeanFieldMLP(nn.Module):
    """A stack of :class:`MeanFieldLinear` layers, ReLU between them, logits out (chapters 3-4).

    ``sizes`` = [N_0, N_1, ..., N_L], e.g. [784, 100, 100, 10] for the paper's network.
    Keyword arguments (m_var, xi_max, pi_init, backward_variance, dtype, device) go to every
    layer.
    """

    def __init__(self, sizes, **layer_kwargs):
        super().__init__()
        self.sizes = _check_sizes(sizes)
        self.layers = nn.ModuleList(
            MeanFieldLinear(a, b, **layer_kwargs)
            for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for layer in self.layers:
            layer.reset_parameters(generator)

    def params(self) -> gbp.Params:
        """[(pi, m, xi), ...] per layer, the format of :mod:`mfbook.gbp`."""
        return [(layer.pi, layer.m, layer.xi) for layer in self.layers]

    def spike_slabs(self) -> list[SpikeSlab]:
        return [layer.spike_slab() for layer in self.layers]

    def forward(self, x, mode="mf", eps=None, generator=None):
        """Logits z^L (B, N_L) of the mean-field network ("mf", noisy) or the mean network.

        ``eps`` (mode "mf" only): optional list of (B, N_l) noise tensors, one per layer; drawn
        from ``generator`` when not given. Inputs and parameters are checked (a ValueError
        names the layer and the parameter: pi outside [0, 1], xi < 0, NaN or inf); see
        :meth:`logits` for the unchecked path used inside training loops.
        """
        _checks.choice("mode", mode, MODES)
        _check_input(x, self.sizes[0], self.layers[0].pi)
        for l, lay in enumerate(self.layers):  # e.g. set by hand: pi outside [0, 1], NaN
            params = (lay.pi.detach(), lay.m.detach(), lay.xi.detach())
            _checks.spike_slab_params(*params, prefix=f"layers[{l}].")
        if eps is not None:
            if mode != "mf":
                raise ValueError("eps is only used with mode='mf'")
            params = [(lay.pi.detach(), lay.m.detach(), lay.xi.detach()) for lay in self.layers]
            gbp._check_inputs(params, x, eps)
        return self.logits(x, mode, eps, generator)

    def logits(self, x, mode="mf", eps=None, generator=None):
        """The forward pass without input checks (no host synchronisation): for training loops."""
        if mode == "mf" and eps is None and not torch.is_grad_enabled():
            return _noisy_inference(x, self.layers, generator)
        h, last = x, len(self.layers) - 1
        for l, layer in enumerate(self.layers):  # ReLU between layers, done by the layer
            h = layer(h, mode, None if eps is None else eps[l], generator, relu=l < last)
        return h

    @torch.no_grad()
    def mean_and_mf_logits(self, x, generator=None):
        """``(logits(x, "mean"), logits(x, "mf", generator=generator))``, the same numbers, with the
        first layer's mean pre-activation G (the largest matrix product) computed once: the two
        networks differ only from the first noise on (chapter 4's test errors)."""
        z_mean, z_mf = self.layers[0].mean_and_noisy(x, generator)
        for layer in self.layers[1:]:
            z_mean = layer(torch.relu(z_mean), "mean")
        if len(self.layers) > 1:
            z_mf = _noisy_inference(torch.relu(z_mf), self.layers[1:], generator)
        return z_mean, z_mf

    def bounds(self) -> list[tuple[torch.Tensor, float, float]]:
        """The projection's (tensor, lo, hi) of every layer (:meth:`MeanFieldLinear.bounds`)."""
        return [b for layer in self.layers for b in layer.bounds()]

    def project_(self) -> None:
        for layer in self.layers:
            layer.project_()

    @torch.no_grad()
    def sample_network(self, generator: torch.Generator | None = None) -> nn.Sequential:
        """One concrete sub-network as a plain ``nn.Sequential`` of bias-free Linear + ReLU.

        The weights w are drawn from each layer's spike-and-slab distribution (chapter 6); the
        fan-in scaling is folded in (Linear weight = w / sqrt(N_in)), so the exported network
        computes exactly z = (1/sqrt(N_in)) w h and runs without mfbook.
        """
        weights = [ss.sample(generator) for ss in self.spike_slabs()]
        return plain_sequential(weights)


def _noisy_inference(h, layers, generator):
    """The noisy forward pass through ``layers`` without autograd (:meth:`MeanFieldLinear.noisy`):
    each layer hands the square of its output to the next where it has it, and no eps is stored
    on the fused path."""
    h2, last = None, len(layers) - 1
    for l, layer in enumerate(layers):
        h, h2 = layer.noisy(h, generator, l < last, h2)
    return h


def plain_sequential(weights: list[torch.Tensor]) -> nn.Sequential:
    """Bias-free Linear layers with weights w / sqrt(N_in), ReLU between them (no final ReLU)."""
    modules: list[nn.Module] = []
    for l, w in enumerate(weights):
        n_out, n_in = w.shape
        # built on the meta device, so no random weights are drawn only to be overwritten
        lin = nn.Linear(n_in, n_out, bias=False, device="meta")
        lin.weight = nn.Parameter(w / math.sqrt(n_in))
        modules.append(lin)
        if l < len(weights) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class PlainMLP(nn.Module):
    """The ordinary network of the same architecture for plain backprop (the ``paper_bp`` preset).

    z = (1/sqrt(N_in)) w h, ReLU hidden, no bias, w ~ Normal(0, m_var) like the mean-field m.
    """

    def __init__(self, sizes, *, m_var: float = M_VAR, dtype=None, device=None):
        super().__init__()
        self.sizes = _check_sizes(sizes)
        self.m_var = m_var
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(b, a, dtype=dtype, device=device))
            for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for w in self.weights:
            w.normal_(0.0, math.sqrt(self.m_var), generator=generator)

    def forward(self, x):
        _check_input(x, self.sizes[0], self.weights[0])
        return self.logits(x)

    def logits(self, x, *_, **__):
        """Logits without input checks; the mean-field arguments (mode, eps, generator) are
        accepted and ignored, so one training loop serves both models."""
        h = x
        for l, w in enumerate(self.weights):
            z = h @ w.T / math.sqrt(w.shape[1])
            h = torch.relu(z) if l < len(self.weights) - 1 else z
        return h

    def to_sequential(self) -> nn.Sequential:
        return plain_sequential([w.detach() for w in self.weights])
