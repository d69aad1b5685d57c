"""mfbook.update: the fused update (Adam, decay, projection in one pass) gives torch's numbers and
leaves torch's optimizer state, so checkpoints and opt.step() carry on."""

import math

import pytest
import torch
from conftest import needs_kernels

from mfbook import kernels, update
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
