"""Training the recurrent ensemble on the multisensory integration task (chapter 9).

The network of the task (:mod:`mfbook.msi`): 5 inputs, 150 leaky ReLU units with
alpha = dt / tau = 0.2 and private noise sqrt(2 alpha) 0.15 per step, 2 outputs read out at
every step. As in the authors' code (Zou, Li and Huang 2023): the input connections are
deterministic (xi = 0, pi fixed: 0 where a connection exists, 1 where :func:`mfbook.msi.input_mask`
forbids it), only their means are trained; recurrent and readout connections start with
pi = 0, m ~ N(0, 1/150) and xi ~ Uniform[0, 0.01). Each iteration trains on one fresh batch
(24 conditions and 6 catch trials) by gBPTT of the masked squared error, with RMSprop
(smoothing 0.9) and per-group learning rates: 1e-3 for m and xi, 1.0 for pi of the recurrent
and 0.1 for pi of the readout connections, all halved every 100 iterations, and an L2 penalty
of 1e-3 on m and xi; then the projection (pi in [0, 1], xi >= 0). Training stops after 500
iterations, or earlier once an iteration after the 100th has a loss <= 0.002. One choice is
ours: torch's RMSprop divides by sqrt(v) + eps where their optimiser divides by sqrt(v + eps'),
eps' = 1e-8; eps = 1e-4 = sqrt(eps') keeps the same floor for tiny gradients.

:func:`evaluate` measures the test trials (fixation 500 ms, every condition): the choice is
the larger output at the last step, by the noisy mean-field pass, the mean network and sampled
sub-networks; the psychometric curve is the fraction of "above" choices per modality and
frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from mfbook import _checks, msi, rnn_nn
from mfbook.spike_slab import SpikeSlab


@dataclass(frozen=True)
class MSIConfig:
    """Everything that defines a multisensory training run except the seed."""

    name: str = "custom"
    n_rec: int = 150
    dt: float = 20.0
    tau: float = 100.0
    sigma_rec: float = 0.15
    iterations: int = 500
    min_iterations: int = 100  # the early stop is checked only after these
    stop_loss: float = 0.002
    lr_m: float = 1e-3
    lr_xi: float = 1e-3
    lr_pi_rec: float = 1.0
    lr_pi_out: float = 0.1
    halve_every: int = 100
    weight_decay: float = 1e-3  # on m and xi
    test_batches: int = 20  # test batches of the 24 conditions (fresh input noise each)
    log_every: int = 5  # iterations between records of the parameter statistics

    def __post_init__(self):
        for name in ("n_rec", "iterations", "halve_every", "test_batches", "log_every"):
            _checks.positive_int(name, getattr(self, name))
        if self.n_rec != 150:
            raise ValueError(f"the task's network has 150 recurrent units, got n_rec={self.n_rec}")
        if not 0 < self.dt <= self.tau:
            raise ValueError(f"need 0 < dt <= tau, got dt={self.dt}, tau={self.tau}")
        for name in ("sigma_rec", "min_iterations", "stop_loss", "weight_decay", "lr_pi_rec"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("lr_m", "lr_xi", "lr_pi_out"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")

    @property
    def alpha(self) -> float:
        return self.dt / self.tau


class MSIResult(NamedTuple):
    model: rnn_nn.MeanFieldRNN
    history: dict[str, list[float]]


def build_msi_model(config: MSIConfig, generator=None) -> rnn_nn.MeanFieldRNN:
    """The task's network with its initial parameters (see the module docstring)."""
    model = rnn_nn.MeanFieldRNN(
        msi.N_INPUTS,
        config.n_rec,
        msi.N_OUTPUTS,
        config.alpha,
        identity=False,
        xi_max=0.01 * config.n_rec,  # xi_max / fan-in: Uniform[0, 0.01) for rec and out
        generator=generator,
        readout="every",
        sigma_rec=config.sigma_rec,
    )
    allowed = msi.input_mask(config.n_rec)
    with torch.no_grad():
        model.xi_inp.zero_()
        model.pi_inp.copy_((~allowed).float())
        model.m_inp.mul_(allowed)
    model.pi_inp.requires_grad_(False)
    model.xi_inp.requires_grad_(False)
    return model


def _optimizer(model, config: MSIConfig) -> torch.optim.RMSprop:
    groups = [
        {"params": [model.m_inp, model.m_rec, model.m_out], "lr": config.lr_m},
        {"params": [model.xi_rec, model.xi_out], "lr": config.lr_xi},
        {"params": [model.pi_rec], "lr": config.lr_pi_rec, "weight_decay": 0.0},
        {"params": [model.pi_out], "lr": config.lr_pi_out, "weight_decay": 0.0},
    ]
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.RMSprop(groups, alpha=0.9, eps=1e-4, weight_decay=config.weight_decay)


def parameter_statistics(model: rnn_nn.MeanFieldRNN) -> dict[str, float]:
    """Per group of trained connections (rec, out): the share of pi that left 0, of pi at 1,
    of xi at 0, and of VIP connections (pi = xi = 0), and the spread (standard deviation) of pi
    and of xi over the connections: the symmetry-breaking read-out of chapter 9."""
    out = {}
    for group in ("rec", "out"):
        ss = SpikeSlab(*(t.detach().double() for t in model.params()._asdict()[group]))
        out[f"{group}_pi_nonzero"] = float((ss.pi > 0).double().mean())
        out[f"{group}_pi_one"] = float((ss.pi >= 1).double().mean())
        out[f"{group}_xi_zero"] = float((ss.xi <= 0).double().mean())
        out[f"{group}_vip"] = float(ss.categories().vip.double().mean())
        out[f"{group}_pi_std"] = float(ss.pi.std())
        out[f"{group}_xi_std"] = float(ss.xi.std())
    return out


def train_msi(config: MSIConfig, seed: int = 0, progress: bool = False) -> MSIResult:
    """Train ``config`` with ``seed`` (which fixes the initial parameters and all noise), on
    the CPU; the history holds the loss of every iteration, the parameter statistics every
    ``log_every`` iterations and at the end, and the final test errors."""
    if not isinstance(config, MSIConfig):
        raise TypeError(f"config must be an MSIConfig, got {type(config).__name__}")
    gen = torch.Generator().manual_seed(seed)
    model = build_msi_model(config, gen)
    opt = _optimizer(model, config)
    history: dict[str, list[float]] = {"loss": [], "logged_iteration": []}

    def log(iteration):
        history["logged_iteration"].append(iteration)
        for key, value in parameter_statistics(model).items():
            history.setdefault(key, []).append(value)

    log(0)
    for it in range(config.iterations):
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * 0.5 ** ((it + 1) // config.halve_every)
        trials = msi.batch(gen, dt=config.dt, tau=config.tau)
        opt.zero_grad(set_to_none=True)
        loss = msi.masked_mse(model(trials.x, generator=gen), trials)
        loss.backward()
        opt.step()
        model.project_()
        history["loss"].append(float(loss.detach()))
        if (it + 1) % config.log_every == 0:
            log(it + 1)
        if progress and (it + 1) % 50 == 0:
            print(f"iteration {it + 1}: loss {history['loss'][-1]:.4g}", flush=True)
        if it + 1 >= config.min_iterations and history["loss"][-1] <= config.stop_loss:
            break
    if history["logged_iteration"][-1] != len(history["loss"]):
        log(len(history["loss"]))
    for key, value in evaluate(model, config, gen).items():
        history[key] = [value] if not isinstance(value, list) else value
    return MSIResult(model, history)


def choices(output: torch.Tensor) -> torch.Tensor:
    """1 where the network chooses "above the boundary" (output 0 larger at the last step)."""
    _checks.tensor("output", output, ndim=3)
    return (output[:, -1, 0] > output[:, -1, 1]).double()


@torch.no_grad()
def evaluate(model: rnn_nn.MeanFieldRNN, config: MSIConfig, generator=None) -> dict:
    """Test errors (the share of wrong choices over ``test_batches`` batches of the 24
    conditions) of the noisy mean-field pass, the mean network and one sampled sub-network per
    batch, and the mean-field pass's psychometric curve: P(above) per modality and frequency,
    a list of 3 rows of 8."""
    above = torch.zeros(len(msi.MODALITIES) * len(msi.FREQUENCIES), dtype=torch.float64)
    wrong = {"mf": 0.0, "mean": 0.0, "sample": 0.0}
    for _ in range(config.test_batches):
        trials = msi.batch(generator, test=True, dt=config.dt, tau=config.tau)
        truth = torch.tensor([float(f > msi.BOUNDARY) for _, f in trials.conditions])
        mf = choices(model(trials.x, generator=generator))
        above += mf
        sampled = model.sample_network(generator)(trials.x)[:, None]  # the last step only
        for key, chosen in (
            ("mf", mf),
            ("mean", choices(model(trials.x, mode="mean"))),
            ("sample", choices(sampled)),
        ):
            wrong[key] += float((chosen != truth).double().mean())
    n = config.test_batches
    curve = (above / n).view(len(msi.MODALITIES), len(msi.FREQUENCIES))
    return {
        **{f"test_error_{k}": v / n for k, v in wrong.items()},
        "psychometric": curve.tolist(),
    }
