"""gBPTT by hand (mfbook.rnn, chapter 9): equal to autograd of the same forward pass and to
finite differences in float64, equal to BPTT of the plain leaky RNN when pi = xi = 0, masked
where Delta = 0, and sampled sub-networks that run the same dynamics."""

import pytest
import torch
import torch.nn.functional as F

from mfbook import rnn, rnn_nn

F64 = torch.float64
ALPHA = 0.3


def problem(seed=0, B=3, T=5, n_in=4, n_rec=6, n_out=3, spread=True):
    gen = torch.Generator().manual_seed(seed)
    params = rnn.init_params(n_in, n_rec, n_out, identity=False, generator=gen, dtype=F64)
    if spread:  # pi inside (0, 1) and visible variances: every term of gBPTT counts
        params = rnn.RecurrentParams(
            *(
                (0.05 + 0.9 * torch.rand(pi.shape, generator=gen, dtype=F64), m, xi + 0.05)
                for pi, m, xi in params
            )
        )
    x = torch.rand(B, T, n_in, generator=gen, dtype=F64)
    y = torch.randint(0, n_out, (B,), generator=gen)
    eps = torch.randn(B, T, n_rec, generator=gen, dtype=F64)
    eps_out = torch.randn(B, n_out, generator=gen, dtype=F64)
    return params, x, y, eps, eps_out


def autograd_grads(params, x, y, eps, eps_out):
    leaves = [[t.clone().requires_grad_() for t in p] for p in params]
    value = rnn.loss(rnn.RecurrentParams(*leaves), x, y, eps, eps_out, ALPHA)
    flat = torch.autograd.grad(value, [t for p in leaves for t in p])
    return [flat[3 * g : 3 * g + 3] for g in range(3)]


def test_gbptt_equals_autograd_of_the_forward_pass():
    params, x, y, eps, eps_out = problem()
    hand = rnn.gradients(params, x, y, eps, eps_out, ALPHA)
    for group, want in zip(rnn.GROUPS, autograd_grads(params, x, y, eps, eps_out), strict=True):
        for name, g, w in zip(("pi", "m", "xi"), getattr(hand, group), want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-13, msg=f"d_{name} of {group}")


def test_gbptt_equals_finite_differences():
    params, x, y, eps, eps_out = problem(seed=1)
    hand = rnn.gradients(params, x, y, eps, eps_out, ALPHA)
    delta = 1e-6
    for g, group in enumerate(rnn.GROUPS):
        for j in range(3):  # pi, m, xi
            for index in [(0, 0), (1, 2), (-1, -1)]:
                shifted = []
                for sign in (1, -1):
                    p = [list(q) for q in params]
                    p[g][j] = p[g][j].clone()
                    p[g][j][index] += sign * delta
                    shifted.append(
                        float(rnn.loss(rnn.RecurrentParams(*p), x, y, eps, eps_out, ALPHA))
                    )
                numeric = (shifted[0] - shifted[1]) / (2 * delta)
                analytic = float(getattr(hand, group)[j][index])
                assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8), (group, j, index)


def test_without_spike_and_slab_it_is_bptt_of_the_plain_leaky_rnn():
    params, x, y, eps, eps_out = problem(seed=2, spread=False)
    params = rnn.RecurrentParams(
        *((torch.zeros_like(m), m, torch.zeros_like(m)) for _, m, _ in params)
    )
    hand = rnn.gradients(params, x, y, eps, eps_out, ALPHA)
    weights = [m.clone().requires_grad_() for _, m, _ in params]
    value = F.cross_entropy(rnn.run_network(weights, x, ALPHA), y)
    for group, w_grad in zip(rnn.GROUPS, torch.autograd.grad(value, weights), strict=True):
        d_pi, d_m, d_xi = getattr(hand, group)
        torch.testing.assert_close(d_m, w_grad, rtol=1e-12, atol=1e-15)
    # and the noise has no effect: the forward pass is the plain network's
    z = rnn.forward(params, x, eps, eps_out, ALPHA).z
    torch.testing.assert_close(z, rnn.run_network([w.detach() for w in weights], x, ALPHA))


def test_where_delta_is_zero_the_variance_path_is_masked():
    params, x, y, eps, eps_out = problem(seed=3)
    x[:, 0] = 0.0  # the first step: no input and r_0 = 0, so Delta_1 = 0 for every unit
    fw = rnn.forward(params, x, eps, eps_out, ALPHA)
    assert bool((fw.Delta[:, 0] == 0).all())
    hand = rnn.gradients(params, x, y, eps, eps_out, ALPHA)
    assert all(bool(torch.isfinite(t).all()) for p in hand for t in p)
    for group, want in zip(rnn.GROUPS, autograd_grads(params, x, y, eps, eps_out), strict=True):
        # autograd of sqrt at 0 is inf times 0 there: compare where it is finite
        for g, w in zip(getattr(hand, group), want, strict=True):
            ok = torch.isfinite(w)
            torch.testing.assert_close(g[ok], w[ok], rtol=1e-9, atol=1e-12)


def test_a_deterministic_ensemble_samples_its_mean_network():
    params, x, _, eps, eps_out = problem(seed=4, spread=False)
    gen = torch.Generator().manual_seed(5)
    # pi in {0, 1} and xi = 0: every sampled sub-network is the mean network
    params = rnn.RecurrentParams(
        *(
            ((torch.rand(m.shape, generator=gen, dtype=F64) < 0.3).to(F64), m, torch.zeros_like(m))
            for _, m, _ in params
        )
    )
    weights = rnn.sample_weights(params, gen)
    for w, (pi, m, _) in zip(weights, params, strict=True):
        torch.testing.assert_close(w, (1 - pi) * m)
    z = rnn.forward(params, x, eps, eps_out, ALPHA).z  # Delta = 0: the noise does nothing
    torch.testing.assert_close(rnn.run_network(weights, x, ALPHA), z)


def test_sampled_weights_follow_the_spike_and_slab():
    params = rnn.init_params(20, 30, 4, generator=torch.Generator().manual_seed(6), dtype=F64)
    pi = torch.full_like(params.rec[0], 0.25)
    params = params._replace(rec=(pi, params.rec[1], params.rec[2]))
    gen = torch.Generator().manual_seed(7)
    absent = torch.stack([rnn.sample_weights(params, gen)[1] == 0 for _ in range(200)])
    assert float(absent.double().mean()) == pytest.approx(0.25, abs=0.01)


def test_the_identity_init_and_the_fan_in():
    params = rnn.init_params(28, 100, 10, generator=torch.Generator().manual_seed(8))
    assert torch.equal(params.rec[1], torch.eye(100)) and bool((params.rec[0] == 0).all())
    assert float(params.inp[1].std()) == pytest.approx(1 / 28**0.5, rel=0.1)
    assert float(params.inp[2].max()) < 0.1 / 28


@pytest.mark.parametrize(
    "change,match",
    [
        ("pi", r"rec\.pi must lie in \[0, 1\]"),
        ("x", r"x must be \(B, T, N_in=4\)"),
        ("eps", r"eps must have shape \(3, 5, 6\)"),
        ("alpha", r"alpha \(the leak 1/tau\) must lie in \(0, 1\]"),
        ("chain", "parameter shapes do not chain"),
        ("empty", "x must not be empty"),
        ("nan", "x contains NaN or inf"),
    ],
)
def test_bad_input_is_named(change, match):
    params, x, y, eps, eps_out = problem()
    alpha = ALPHA
    if change == "pi":
        pi, m, xi = params.rec
        params = params._replace(rec=(pi + 1.5, m, xi))
    elif change == "x":
        x = x[..., :3]
    elif change == "eps":
        eps = eps[:, :4]
    elif change == "alpha":
        alpha = 1.5
    elif change == "empty":  # T = 0: no step to run
        x, eps = x[:, :0], eps[:, :0]
    elif change == "nan":
        x = x.clone()
        x[0, 1, 2] = float("nan")
    else:
        params = params._replace(out=tuple(t[:, :5] for t in params.out))
    with pytest.raises((ValueError, TypeError), match=match):
        rnn.gradients(params, x, y, eps, eps_out, alpha)


# --- the trainable module ---------------------------------------------------------------------
def test_the_module_backward_is_gbptt():
    model = rnn_nn.MeanFieldRNN(
        4, 6, 3, alpha=ALPHA, identity=False, generator=torch.Generator().manual_seed(9)
    )
    with torch.no_grad():  # move pi and xi off their initial values: every term counts
        for g in rnn.GROUPS:
            getattr(model, f"pi_{g}").uniform_(
                0.05, 0.9, generator=torch.Generator().manual_seed(10)
            )
            getattr(model, f"xi_{g}").add_(0.05)
    x = torch.rand(3, 5, 4, generator=torch.Generator().manual_seed(11))
    y = torch.tensor([0, 2, 1])
    F.cross_entropy(model(x, generator=torch.Generator().manual_seed(12)), y).backward()
    gen = torch.Generator().manual_seed(12)  # the same noise, drawn in the same order
    eps, eps_out = torch.randn(3, 5, 6, generator=gen), torch.randn(3, 3, generator=gen)
    params = rnn.RecurrentParams(*(tuple(t.detach() for t in p) for p in model.params()))
    want = rnn.gradients(params, x, y, eps, eps_out, ALPHA)
    for got_group, want_group in zip(model.params(), want, strict=True):
        for got, w in zip(got_group, want_group, strict=True):
            torch.testing.assert_close(got.grad, w)


def test_the_module_learns_a_temporal_rule_with_adam_and_projection():
    """A real (small) task: the label is whether the first input channel summed over the
    sequence exceeds its median; 60 steps of Adam + projection lower the loss clearly."""
    gen = torch.Generator().manual_seed(13)
    x = torch.rand(64, 8, 3, generator=gen)
    total = x[..., 0].sum(1)
    y = (total > total.median()).long()
    model = rnn_nn.MeanFieldRNN(3, 16, 2, alpha=0.5, identity=False, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        value = F.cross_entropy(model(x, generator=gen), y)
        value.backward()
        opt.step()
        model.project_()
        losses.append(float(value.detach()))
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10
    for g in rnn.GROUPS:
        pi, xi = getattr(model, f"pi_{g}").detach(), getattr(model, f"xi_{g}").detach()
        assert float(pi.min()) >= 0 and float(pi.max()) <= 1 and float(xi.min()) >= 0
    with torch.no_grad():
        mean_error = float((model(x, mode="mean").argmax(1) != y).float().mean())
        sampled_error = float((model.sample_network(gen)(x).argmax(1) != y).float().mean())
    assert mean_error < 0.3 and sampled_error < 0.45


def test_the_module_checks_its_leak_and_mode():
    with pytest.raises(ValueError, match=r"alpha \(the leak 1/tau\)"):
        rnn_nn.MeanFieldRNN(2, 3, 2, alpha=0.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        rnn_nn.MeanFieldRNN(2, 3, 2, alpha=0.5)(torch.rand(1, 2, 2), mode="sampled")


# --- the readout at every step and the units' private noise (the multisensory task) -----------
def masked_squared_error(z, target):
    return 0.5 * ((z - target) ** 2).mean()


def test_gbptt_with_a_readout_at_every_step_and_unit_noise_equals_autograd():
    params, x, _, eps, _ = problem(seed=14)
    pi, m, xi = params.inp  # positive drive: some unit is active at every step, so that the
    params = params._replace(inp=(pi, m.abs() + 0.5, xi))  # readout's Delta > 0 for autograd
    gen = torch.Generator().manual_seed(15)
    B, T, _ = x.shape
    n_out = params.out[0].shape[0]
    eps_out = torch.randn(B, T, n_out, generator=gen, dtype=F64)
    noise = 0.2 * torch.randn(eps.shape, generator=gen, dtype=F64)
    target = torch.rand(B, T, n_out, generator=gen, dtype=F64)
    leaves = [[t.clone().requires_grad_() for t in p] for p in params]
    fw = rnn.forward(rnn.RecurrentParams(*leaves), x, eps, eps_out, ALPHA, noise)
    assert fw.z.shape == (B, T, n_out)
    want = torch.autograd.grad(masked_squared_error(fw.z, target), [t for p in leaves for t in p])
    assert all(torch.isfinite(w).all() for w in want)
    fw = rnn.forward(params, x, eps, eps_out, ALPHA, noise)
    K = (fw.z - target) / fw.z.numel()
    hand = rnn.backward(params, x, eps, eps_out, ALPHA, fw, K)
    for g, group in enumerate(rnn.GROUPS):
        for j, name in enumerate(("pi", "m", "xi")):
            torch.testing.assert_close(
                getattr(hand, group)[j],
                want[3 * g + j],
                rtol=1e-10,
                atol=1e-13,
                msg=f"d_{name} of {group}",
            )


def test_the_readout_at_every_step_ends_with_the_last_step_readout():
    params, x, _, eps, eps_out = problem(seed=16)
    every = torch.randn(x.shape[0], x.shape[1], eps_out.shape[1], dtype=F64)
    every[:, -1] = eps_out
    z_every = rnn.forward(params, x, eps, every, ALPHA).z
    torch.testing.assert_close(z_every[:, -1], rnn.forward(params, x, eps, eps_out, ALPHA).z)


def test_unit_noise_moves_the_state_and_a_sampled_network_runs_it_too():
    params = rnn.RecurrentParams(
        *((torch.zeros_like(pi), m, torch.zeros_like(xi)) for pi, m, xi in problem(seed=17)[0])
    )
    _, x, _, eps, eps_out = problem(seed=17)
    noise = 0.3 * torch.randn(eps.shape, generator=torch.Generator().manual_seed(18), dtype=F64)
    z = rnn.forward(params, x, eps, eps_out, ALPHA, noise).z
    weights = [m for _, m, _ in params]
    torch.testing.assert_close(rnn.run_network(weights, x, ALPHA, noise), z)
    assert not torch.allclose(z, rnn.forward(params, x, eps, eps_out, ALPHA).z)


@pytest.mark.parametrize(
    ("what", "match"),
    [("eps_out", r"eps_out must have shape .* \(at every step\)"), ("noise", "noise must be")],
)
def test_bad_readout_noise_or_unit_noise_is_named(what, match):
    params, x, _, eps, eps_out = problem()
    noise = None
    if what == "eps_out":
        eps_out = torch.zeros(x.shape[0], x.shape[1] + 1, eps_out.shape[1], dtype=F64)
    else:
        noise = eps[:, :, :2]
    with pytest.raises(ValueError, match=match):
        rnn.forward(params, x, eps, eps_out, ALPHA, noise)


def test_the_module_reads_out_at_every_step_with_unit_noise():
    gen = torch.Generator().manual_seed(19)
    model = rnn_nn.MeanFieldRNN(
        3, 8, 2, alpha=0.2, identity=False, generator=gen, readout="every", sigma_rec=0.15
    )
    x = torch.rand(4, 6, 3, generator=gen)
    z = model(x, generator=torch.Generator().manual_seed(20))
    assert z.shape == (4, 6, 2)
    again = model(x, generator=torch.Generator().manual_seed(20))
    torch.testing.assert_close(z, again)  # all noise comes from the generator
    mean = model(x, mode="mean")
    torch.testing.assert_close(mean, model(x, mode="mean"))  # no noise at all
    z.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="readout must be one of"):
        rnn_nn.MeanFieldRNN(3, 8, 2, alpha=0.2, readout="first")
    with pytest.raises(ValueError, match="sigma_rec"):
        rnn_nn.MeanFieldRNN(3, 8, 2, alpha=0.2, sigma_rec=float("nan"))
