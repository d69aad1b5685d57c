"""Generalized backprop (mfbook.gbp) against autograd, finite differences and plain backprop."""

import math

import pytest
import torch
from conftest import random_eps, random_params

from mfbook import gbp
from mfbook.nn import MeanFieldMLP, PlainMLP

SIZES = [12, 9, 7, 4]  # a 3-layer net
B = 6


def reference_loss(params, x, y, eps):
    """The mean-field network written from chapter 3's equations, differentiated by autograd."""
    h = x
    for l, (pi, m, xi) in enumerate(params):
        n = h.shape[1]
        mu = (1 - pi) * m
        rho = (1 - pi) * (m**2 + xi)
        G = h @ mu.T / math.sqrt(n)
        Delta = torch.sqrt((h**2) @ (rho - mu**2).T / n)
        z = G + eps[l] * Delta
        h = torch.relu(z) if l < len(params) - 1 else z
    return torch.nn.functional.cross_entropy(h, y)


def problem(gen, dtype=torch.float64):
    params = random_params(SIZES, gen, dtype)
    x = torch.rand(B, SIZES[0], generator=gen, dtype=dtype)
    y = torch.randint(0, SIZES[-1], (B,), generator=gen)
    return params, x, y, random_eps(B, SIZES, gen, dtype)


def rel_err(a, b):
    """max |a - b| / max |b|, per parameter tensor."""
    return float((a - b).abs().max() / b.abs().max())


def test_gbp_equals_autograd_float64(gen):
    params, x, y, eps = problem(gen)
    leaves = [tuple(t.clone().requires_grad_() for t in layer) for layer in params]
    flat = [t for layer in leaves for t in layer]
    auto = torch.autograd.grad(reference_loss(leaves, x, y, eps), flat)
    ours = [g for layer in gbp.gradients(params, x, y, eps) for g in layer]
    errors = [rel_err(a, b) for a, b in zip(ours, auto, strict=True)]
    assert max(errors) <= 1e-10, errors
    assert all(float(g.abs().max()) > 0 for g in ours)  # every parameter actually gets a gradient


def test_gbp_equals_central_finite_differences(gen):
    params, x, y, eps = problem(gen)
    grads = gbp.gradients(params, x, y, eps)
    step = 1e-6
    for l in range(len(params)):
        for j, name in enumerate(("pi", "m", "xi")):
            for _ in range(4):
                i = tuple(int(torch.randint(0, s, (1,), generator=gen)) for s in params[l][j].shape)
                vals = []
                for sign in (+1, -1):
                    shifted = [list(layer) for layer in params]
                    shifted[l][j] = params[l][j].clone()
                    shifted[l][j][i] += sign * step
                    vals.append(float(gbp.loss([tuple(s) for s in shifted], x, y, eps)))
                fd = (vals[0] - vals[1]) / (2 * step)
                g = float(grads[l][j][i])
                assert abs(fd - g) <= 1e-7 * max(1.0, abs(g)), (l, name, i, fd, g)


def test_reduces_to_plain_backprop_when_pi_and_xi_vanish(gen):
    plain = PlainMLP(SIZES, dtype=torch.float64)
    plain.reset_parameters(gen)
    x = torch.rand(B, SIZES[0], generator=gen, dtype=torch.float64)
    y = torch.randint(0, SIZES[-1], (B,), generator=gen)
    torch.nn.functional.cross_entropy(plain(x), y).backward()
    params = [(torch.zeros_like(w), w.detach(), torch.zeros_like(w)) for w in plain.weights]
    eps = random_eps(B, SIZES, gen)  # must not matter: Delta = 0
    fw = gbp.forward(params, x, eps)
    assert all(float(d.abs().max()) == 0 for d in fw.Delta)
    torch.testing.assert_close(fw.z[-1], plain(x), rtol=1e-12, atol=1e-14)
    for (d_pi, d_m, d_xi), w in zip(gbp.gradients(params, x, y, eps), plain.weights, strict=True):
        assert rel_err(d_m, w.grad) <= 1e-12
        assert torch.isfinite(d_pi).all() and torch.isfinite(d_xi).all()
        # with pi = 0: dC/dxi = (1/2) K S is the variance path, switched off where Delta = 0
        assert float(d_xi.abs().max()) == 0


def test_delta_zero_rows_give_finite_gradients(gen):
    params, x, y, eps = problem(gen)
    x[0] = 0  # an all-zero input: Delta = 0 in the first layer for this example
    grads = gbp.gradients(params, x, y, eps)
    assert gbp.forward(params, x, eps).Delta[0][0].abs().max() == 0
    assert all(torch.isfinite(g).all() for layer in grads for g in layer)


def test_module_backward_equals_gbp(gen):
    params, x, y, eps = problem(gen)
    model = MeanFieldMLP(SIZES, dtype=torch.float64)
    with torch.no_grad():
        for layer, (pi, m, xi) in zip(model.layers, params, strict=True):
            layer.pi.copy_(pi), layer.m.copy_(m), layer.xi.copy_(xi)
    logits = model(x, eps=eps)
    torch.testing.assert_close(logits, gbp.forward(params, x, eps).z[-1], rtol=0, atol=0)
    torch.nn.functional.cross_entropy(logits, y).backward()
    for layer, grads in zip(model.layers, gbp.gradients(params, x, y, eps), strict=True):
        for p, g in zip((layer.pi, layer.m, layer.xi), grads, strict=True):
            assert rel_err(p.grad, g) <= 1e-12


def test_float32_close_to_float64(gen):
    params, x, y, eps = problem(gen)
    g64 = gbp.gradients(params, x, y, eps)
    f32 = [tuple(t.float() for t in layer) for layer in params]
    g32 = gbp.gradients(f32, x.float(), y, [e.float() for e in eps])
    for a, b in zip(g32, g64, strict=True):
        for ga, gb in zip(a, b, strict=True):
            assert ga.dtype == torch.float32
            assert rel_err(ga.double(), gb) <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(gen):
    params, x, y, eps = problem(gen)
    cpu = gbp.gradients(params, x, y, eps)
    dev = [tuple(t.cuda() for t in layer) for layer in params]
    gpu = gbp.gradients(dev, x.cuda(), y.cuda(), [e.cuda() for e in eps])
    for a, b in zip(gpu, cpu, strict=True):
        for ga, gb in zip(a, b, strict=True):
            assert rel_err(ga.cpu(), gb) <= 1e-10


def test_loss_matches_reference(gen):
    params, x, y, eps = problem(gen)
    torch.testing.assert_close(gbp.loss(params, x, y, eps), reference_loss(params, x, y, eps))


def test_the_2020_variance_factor_overstates_the_m2_part_by_two_minus_pi(gen):
    pi, m, xi = random_params([5, 4], gen, torch.float64)[0]
    published = gbp.published_2020_variance(pi, m, xi)
    exact = gbp.weight_variance(pi, m, xi)
    torch.testing.assert_close(published - (1 - pi) * xi, (2 - pi) * (exact - (1 - pi) * xi))
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)  # equal where pi is 0 or 1
    args = (ends, torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(gbp.published_2020_variance(*args), gbp.weight_variance(*args))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_module_with_the_2020_variance_term_equals_gbp_with_it(gen, dtype):
    """The as_published_2020 backward is gBP with Var replaced by the 2020 factor in dC/dh
    only: the last layer's gradients are the exact ones, the earlier ones are not."""
    params, x, y, eps = problem(gen)
    params = [tuple(t.to(dtype) for t in p) for p in params]
    x, eps = x.to(dtype), [e.to(dtype) for e in eps]
    model = MeanFieldMLP(SIZES, dtype=dtype, backward_variance="as_published_2020")
    with torch.no_grad():
        for layer, (pi, m, xi) in zip(model.layers, params, strict=True):
            layer.pi.copy_(pi), layer.m.copy_(m), layer.xi.copy_(xi)
    torch.nn.functional.cross_entropy(model(x, eps=eps), y).backward()
    fw = gbp.forward(params, x, eps)
    K = (fw.probs - torch.nn.functional.one_hot(y, SIZES[-1]).to(dtype)) / B
    for l in reversed(range(len(params))):
        pi, m, xi = params[l]
        cache = gbp.LayerCache(
            gbp.mean_weight(pi, m),
            gbp.published_2020_variance(pi, m, xi),
            fw.h[l] ** 2,
            gbp.noise_ratio(eps[l], fw.Delta[l]),
        )
        dh, *grads = gbp.layer_backward_cached(K, fw.h[l], pi, m, xi, cache, l > 0)
        layer = model.layers[l]
        for p, g in zip((layer.pi, layer.m, layer.xi), grads, strict=True):
            assert rel_err(p.grad, g) <= (1e-12 if dtype == torch.float64 else 1e-5)
        if l > 0:
            K = dh * (fw.z[l - 1] > 0)
    exact = gbp.gradients(params, x, y, eps)
    assert rel_err(model.layers[-1].m.grad, exact[-1][1]) <= 1e-5
    assert rel_err(model.layers[0].m.grad, exact[0][1]) > 1e-3
