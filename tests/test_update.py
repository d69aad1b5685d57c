"""mfbook.update: the fused update (Adam, decay, projection in one pass) gives torch's numbers and
leaves torch's optimizer state, so checkpoints and opt.step() carry on; folded into gBP's
backward it gives the same numbers again."""

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import needs_kernels

from mfbook import kernels, update
from mfbook.train import TrainConfig, build_model, decayed_parameters, make_optimizer, training_step
from mfbook.update import update_


def setup(gen, fused_opt=True, lr=0.05):
    pi = torch.rand(30, 20, generator=gen)
    m, xi = torch.randn(30, 20, generator=gen), 0.01 * torch.rand(30, 20, generator=gen)
    params = [torch.nn.Parameter(t) for t in (pi, m, xi)]
    opt = torch.optim.Adam([{"params": [p]} for p in params], lr=lr, fused=fused_opt)
    return params, opt


def steps(params, opt, gen, n=4, decay=0.99):
    pi, m, xi = params
    bounds = [(pi, 0.0, 1.0), (xi, 0.0, math.inf)]
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        update_(opt, [m, xi], decay, bounds)


@needs_kernels
@pytest.mark.parametrize("fused_opt", [True, False])
def test_fused_update_equals_torch_adam_decay_and_clamps(fused_opt):
    a, opt_a = setup(torch.Generator().manual_seed(0), fused_opt)
    b, opt_b = setup(torch.Generator().manual_seed(0), fused_opt)
    for p in a:
        p.grad = torch.zeros_like(p)
    with torch.no_grad():  # as inside update_
        assert update._fusable(opt_a)  # the fused path is what this test compares
        with kernels.disabled():
            assert not update._fusable(opt_a)
    steps(a, opt_a, torch.Generator().manual_seed(1))
    with kernels.disabled():
        steps(b, opt_b, torch.Generator().manual_seed(1))
    pi = a[0].detach()
    assert (pi == 0).any() and (pi == 1).any() and (a[2].detach() == 0).any()  # clamps hit
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for p, q in zip(a, b, strict=True):
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert set(sa) == set(sb) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(sa["step"]) == float(sb["step"]) == 4
        assert sa["step"].dtype == sb["step"].dtype
        for k in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-7)


@needs_kernels
def test_torch_carries_on_from_the_fused_updates_state():
    a, opt_a = setup(torch.Generator().manual_seed(0))
    b, opt_b = setup(torch.Generator().manual_seed(0))
    steps(a, opt_a, torch.Generator().manual_seed(1), n=2)
    with kernels.disabled():
        steps(b, opt_b, torch.Generator().manual_seed(1), n=2)
    opt_c = torch.optim.Adam([{"params": [p]} for p in a], lr=0.05, fused=True)
    opt_c.load_state_dict(opt_a.state_dict())  # as a checkpoint would
    with kernels.disabled():
        steps(a, opt_c, torch.Generator().manual_seed(2), n=2)
        steps(b, opt_b, torch.Generator().manual_seed(2), n=2)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@needs_kernels
def test_nan_survives_the_projection():
    params, opt = setup(torch.Generator().manual_seed(0))
    for p in params:
        p.grad = torch.zeros_like(p)
    params[0].grad[0, 0] = float("nan")
    update_(opt, params[1:], 0.99, [(params[0], 0.0, 1.0)])
    assert math.isnan(float(params[0].detach()[0, 0]))  # so the divergence check still sees it


def test_other_optimisers_and_options_take_torchs_path(gen):
    params, _ = setup(gen)
    for p in params:
        p.grad = torch.ones_like(p)
    sgd = torch.optim.SGD(params, lr=0.1)
    before = [p.detach().clone() for p in params]
    update_(sgd, [params[1]], 0.5, [(params[0], 0.0, 1.0)])
    torch.testing.assert_close(params[1].detach(), 0.5 * (before[1] - 0.1))
    torch.testing.assert_close(params[0].detach(), (before[0] - 0.1).clamp(0, 1))


# --- the update folded into gBP's backward (update.folded) -----------------------------------
CONFIG = TrainConfig(sizes=(30, 20, 10), batch_size=40)


def gbp_model(beta1_pi=0.9):
    """A small gBP model with pi spread over [0, 1] (so the projection bites) and its Adam;
    ``beta1_pi`` for the pi group only."""
    model = build_model(CONFIG, seed=0)
    with torch.no_grad():
        for lay in model.layers:
            lay.pi.uniform_(0, 1, generator=torch.Generator().manual_seed(5))
    opt = make_optimizer(model, CONFIG, lr=0.05)
    opt.param_groups[0]["betas"] = (beta1_pi, 0.999)
    return model, opt


def train(model, opt, folding: bool, n=4):
    """n steps on one minibatch: training_step (which folds), or backward then update_."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 30, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    noise, decayed = torch.Generator().manual_seed(2), decayed_parameters(model, CONFIG)
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        if folding:
            training_step(model, x, y, opt, "gbp", decayed, 0.99, None, noise)
        else:
            F.cross_entropy(model.logits(x, "mf", None, noise), y).backward()
            update_(opt, decayed, 0.99, model.bounds())


def assert_same_training(a, opt_a, b, opt_b, exact=True):
    # not exact: the kernels' gradients differ from torch's by float32 ulps, which Adam's
    # normalisation scales up (measured: up to 8e-6 after 4 steps of lr 0.05)
    check = torch.equal if exact else lambda p, q: torch.allclose(p, q, rtol=1e-4, atol=1e-4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert check(p.detach(), q.detach())
        for k in ("exp_avg", "exp_avg_sq"):
            assert check(opt_a.state[p][k], opt_b.state[q][k])
        assert float(opt_a.state[p]["step"]) == float(opt_b.state[q]["step"])


@needs_kernels
@pytest.mark.parametrize("beta1_pi", [0.9, 0.3])  # 0.3: torch's other lerp form for pi only
def test_the_folded_update_equals_gradients_then_update(beta1_pi):
    a, opt_a = gbp_model(beta1_pi)
    b, opt_b = gbp_model(beta1_pi)
    train(a, opt_a, folding=True)
    train(b, opt_b, folding=False)
    assert all(p.grad is None for p in a.parameters())  # folded: no gradient was stored
    assert all(p.grad is not None for p in b.parameters())
    pi = torch.cat([lay.pi.detach().ravel() for lay in a.layers])
    assert (pi == 0).any() and (pi == 1).any()  # the projection was hit
    assert_same_training(a, opt_a, b, opt_b)  # the same arithmetic: bit for bit


@needs_kernels
def test_without_kernels_the_step_stores_gradients_and_agrees():
    a, opt_a = gbp_model()
    b, opt_b = gbp_model()
    train(a, opt_a, folding=True)
    with kernels.disabled():
        train(b, opt_b, folding=True)
    assert all(p.grad is not None for p in b.parameters())  # not folded: torch's update ran
    assert_same_training(a, opt_a, b, opt_b, exact=False)


@needs_kernels
def test_a_parameter_with_a_gradient_already_is_not_folded():
    a, opt_a = gbp_model()
    b, opt_b = gbp_model()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 30, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    for model, opt, folding in ((a, opt_a, True), (b, opt_b, False)):
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.01)  # accumulated from an earlier minibatch
        loss = F.cross_entropy(model.logits(x, "mf", None, torch.Generator().manual_seed(2)), y)
        with update.folded(opt, [], 1.0) if folding else contextlib.nullcontext():
            loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        update_(opt, [], 1.0)
    assert_same_training(a, opt_a, b, opt_b)


@needs_kernels
def test_a_layer_used_twice_in_one_folded_backward_is_an_error():
    model, opt = gbp_model()
    layer = model.layers[1]  # 20 -> 10, used as 20 -> 10 twice after padding
    h = torch.relu(model.layers[0](torch.rand(8, 30), generator=torch.Generator()))
    twice = layer(torch.cat([layer(h, relu=True), h[:, 10:]], dim=1))
    with update.folded(opt, [], 1.0), pytest.raises(RuntimeError, match="used twice"):
        twice.sum().backward()


def test_outside_a_folded_block_nothing_is_folded():
    t = torch.ones(2, 2)
    assert not update.fold_(t, t, t, t, t)


@pytest.mark.parametrize("use_kernels", [True, False])
def test_update_leaves_parameters_without_a_gradient_alone(use_kernels):
    if use_kernels and not kernels.load():
        pytest.skip("no kernels")
    params, opt = setup(torch.Generator().manual_seed(0))
    pi, m, xi = params
    m.grad = torch.ones_like(m)
    before = [p.detach().clone() for p in params]
    with contextlib.nullcontext() if use_kernels else kernels.disabled():
        update_(opt, [m, xi], 0.5, [(pi, 0.2, 0.3), (xi, 0.0, math.inf)])
    assert not torch.equal(m.detach(), before[1])
    assert torch.equal(pi.detach(), before[0]) and torch.equal(xi.detach(), before[2])
