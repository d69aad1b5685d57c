"""mfbook.optim.MeanFieldAdam: Adam + decoupled decay + projection as one torch optimiser; its
fused CPU step (mfbook.fast.update) gives torch's numbers and leaves torch's state."""

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import needs_kernels

from mfbook.fast import kernels
from mfbook.fast import update as fast_update
from mfbook.nn import MeanFieldMLP, PlainMLP
from mfbook.optim import MeanFieldAdam


def model_and_opt(seed=0, lr=0.05, weight_decay=0.01, **kw):
    gen = torch.Generator().manual_seed(seed)
    model = MeanFieldMLP([20, 30, 10])
    model.reset_parameters(gen)
    with torch.no_grad():
        for lay in model.layers:
            lay.pi.uniform_(0, 1, generator=gen)
    return model, MeanFieldAdam(model, lr=lr, weight_decay=weight_decay, **kw)


def steps(model, opt, seed, n=4):
    """n steps with random gradients (some large, so the clamps are hit)."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        opt.zero_grad()
        for p in model.parameters():
            p.grad = 3 * torch.randn(p.shape, generator=gen)
        opt.step()


def by_hand(model, seed, lr=0.05, weight_decay=0.01, n=4):
    """The same update from torch.optim.Adam, then the decay and the clamps written out."""
    gen = torch.Generator().manual_seed(seed)
    groups = [{"params": [getattr(lay, k) for lay in model.layers]} for k in ("pi", "m", "xi")]
    adam = torch.optim.Adam(groups, lr=lr, fused=True)
    for _ in range(n):
        adam.zero_grad()
        for p in model.parameters():
            p.grad = 3 * torch.randn(p.shape, generator=gen)
        adam.step()
        with torch.no_grad():
            for lay in model.layers:
                lay.m.mul_(1 - lr * weight_decay)
                lay.xi.mul_(1 - lr * weight_decay)
                lay.pi.clamp_(0, 1)
                lay.xi.clamp_(0, math.inf)


def test_groups_carry_each_kind_of_parameter_its_decay_and_bounds():
    model, opt = model_and_opt()
    kinds = [(g["mf_weight_decay"], g["mf_bounds"], len(g["params"])) for g in opt.param_groups]
    assert kinds == [(0.0, (0.0, 1.0), 2), (0.01, None, 2), (0.01, (0.0, math.inf), 2)]
    assert opt.param_groups[0]["params"][1] is model.layers[1].pi
    plain = MeanFieldAdam(PlainMLP([20, 10]), weight_decay=0.5)
    assert [(g["mf_weight_decay"], g["mf_bounds"]) for g in plain.param_groups] == [(0.5, None)]
    assert isinstance(opt, torch.optim.Optimizer)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        MeanFieldAdam([torch.zeros(2)])
    with pytest.raises(ValueError, match="weight_decay must lie in"):
        model_and_opt(weight_decay=1.5)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        model_and_opt(lr=-1.0)


def test_the_torch_path_is_adam_then_decay_then_projection_bit_for_bit():
    a, opt = model_and_opt()
    b, _ = model_and_opt()
    with kernels.disabled():
        steps(a, opt, seed=1)
    by_hand(b, seed=1)
    pis = torch.cat([lay.pi.detach().reshape(-1) for lay in a.layers])
    assert (pis == 0).any() and (pis == 1).any()  # the clamps were hit
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@needs_kernels
def test_the_fused_step_equals_the_torch_path_and_keeps_torchs_state():
    a, opt_a = model_and_opt()
    b, opt_b = model_and_opt()
    entries = [(p, g) for g in opt_a.param_groups for p in g["params"]]
    for p in a.parameters():
        p.grad = torch.zeros_like(p)
    with torch.no_grad():  # as inside step()
        assert fast_update.applies(opt_a, entries)  # the fused path is what this test compares
        with kernels.disabled():
            assert not fast_update.applies(opt_a, entries)
    steps(a, opt_a, seed=1)
    with kernels.disabled():
        steps(b, opt_b, seed=1)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert set(sa) == set(sb) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(sa["step"]) == float(sb["step"]) == 4
        assert sa["step"].dtype == sb["step"].dtype
        for k in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-7)


@needs_kernels
def test_state_dict_round_trips_between_the_fused_and_the_torch_path():
    a, opt_a = model_and_opt()
    b, opt_b = model_and_opt()
    steps(a, opt_a, seed=1, n=2)
    with kernels.disabled():
        steps(b, opt_b, seed=1, n=2)
    opt_c = MeanFieldAdam(a, lr=0.05, weight_decay=0.01)
    opt_c.load_state_dict(opt_a.state_dict())  # as a checkpoint would
    assert opt_c.param_groups[2]["mf_bounds"] == (0.0, math.inf)
    with kernels.disabled():
        steps(a, opt_c, seed=2, n=2)
        steps(b, opt_b, seed=2, n=2)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_kernels", [True, False])
def test_nan_survives_the_projection(use_kernels):
    if use_kernels and not kernels.load():
        pytest.skip("no kernels")
    model, opt = model_and_opt()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    model.layers[0].pi.grad[0, 0] = float("nan")
    with contextlib.nullcontext() if use_kernels else kernels.disabled():
        opt.step()
    assert math.isnan(float(model.layers[0].pi.detach()[0, 0]))  # the divergence check sees it


@pytest.mark.parametrize("use_kernels", [True, False])
def test_parameters_without_a_gradient_are_left_alone(use_kernels):
    if use_kernels and not kernels.load():
        pytest.skip("no kernels")
    model, opt = model_and_opt()
    before = [p.detach().clone() for p in model.parameters()]
    model.layers[0].m.grad = torch.ones_like(model.layers[0].m)
    with contextlib.nullcontext() if use_kernels else kernels.disabled():
        opt.step()
    after = [p.detach() for p in model.parameters()]
    assert not torch.equal(after[1], before[1])
    assert all(torch.equal(after[i], before[i]) for i in range(len(after)) if i != 1)


def test_a_readers_own_loop_trains_and_the_projection_holds():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 20, generator=gen)
    y = x[:, :10].argmax(dim=1)  # a rule the network can learn
    model, opt = model_and_opt(lr=0.05, weight_decay=1e-4)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = F.cross_entropy(model(x, generator=gen), y)
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.8 * first
    for lay in model.layers:
        pi, xi = lay.pi.detach(), lay.xi.detach()
        assert float(pi.min()) >= 0 and float(pi.max()) <= 1 and float(xi.min()) >= 0
