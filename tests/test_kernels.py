"""The fused CPU path (mfbook.fast.kernels, fast/_kernels.cpp, fast.layer): the numbers of the
reference gBP to float32 rounding, used only where they apply, clear errors, and a working
fallback without them."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import needs_kernels, random_eps, random_params, run_python

from mfbook import gbp
from mfbook.fast import kernels, noise
from mfbook.fast import layer as fast_layer
from mfbook.nn import MeanFieldLinear, MeanFieldMLP
from mfbook.spike_slab import mean_weight, weight_variance


def close(a, b):
    # a few float32 roundings apart: the kernels compute mu as m - pi m, Var as s - pi s, and
    # apply 1/sqrt(N) to the (B, N_out) signals rather than to the matrices
    torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-6)


def copies(*args):
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in args]


@needs_kernels
def test_kernels_load_where_a_compiler_is():
    assert kernels.load(), kernels.status()
    assert kernels.status().startswith("fused CPU kernels: on")
    assert kernels.library_path().exists()


@needs_kernels
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (300, 257)])  # below and above one task
def test_each_fused_step_equals_the_reference(gen, shape):
    n_out, n_in = shape
    pi, m, xi = random_params([n_in, n_out], gen, dtype=torch.float32)[0]
    pi[0, 0] = 1.0  # an absent connection
    mu, var = fast_layer.mean_and_variance(pi, m, xi)
    close(mu, mean_weight(pi, m))
    close(var, weight_variance(pi, m, xi))
    d_mu, d_var = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    for fused, ref in zip(
        fast_layer.weight_grads_(*copies(d_mu, d_var), pi, m, xi),
        gbp.weight_grads(d_mu, d_var, pi, m, xi),
        strict=True,
    ):
        close(fused, ref)

    h = torch.rand(64, n_in, generator=gen)
    h[:, 0] = 0.0
    eps, K = torch.randn(64, n_out, generator=gen), torch.randn(64, n_out, generator=gen)
    for relu in (False, True):
        fused = fast_layer.layer_forward(h, pi, m, xi, eps, keep=True, relu=relu)
        ref = gbp.layer_forward(h, pi, m, xi, eps, keep=True, relu=relu)
        for f, r in zip(fused[:3], ref[:3], strict=True):
            close(f, r)
        for f, r in zip(fused[3], ref[3], strict=True):  # the caches
            close(f, r)
        assert not relu or bool((fused[2] >= 0).all())
        out = fused[2] if relu else None
        for need in (True, False):
            bf = fast_layer.layer_backward_cached(K, h, pi, m, xi, fused[3], need, out)
            br = gbp.layer_backward_cached(K, h, pi, m, xi, ref[3], need, out)
            assert (bf[0] is None) == (br[0] is None) == (not need)
            for f, r in zip(bf, br, strict=True):
                if r is not None:  # sums of N_in or B products: rounding relative to the largest
                    torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))
    close(fast_layer.mean_layer(h, pi, m, xi), gbp.mean_layer(h, pi, m, xi))


@needs_kernels
def test_the_noise_ratio_is_zero_where_delta_is():
    h = torch.zeros(3, 4)
    h[:, 0] = 1.0
    pi, m, xi = torch.zeros(2, 4), torch.ones(2, 4), torch.zeros(2, 4)  # Var = 0: Delta = 0
    r = fast_layer.layer_forward(h, pi, m, xi, torch.ones(3, 2), keep=True)[3].r
    assert torch.equal(r, torch.zeros(3, 2))


@needs_kernels
def test_weight_grads_write_over_their_inputs(gen):
    pi, m, xi = random_params([5, 4], gen, dtype=torch.float32)[0]
    d_mu, d_var = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    d_pi, d_m, d_xi = fast_layer.weight_grads_(d_mu, d_var, pi, m, xi)
    assert d_m.data_ptr() == d_mu.data_ptr() and d_xi.data_ptr() == d_var.data_ptr()
    assert d_pi.data_ptr() not in (d_mu.data_ptr(), d_var.data_ptr())


@needs_kernels
def test_the_model_on_the_fused_path_gives_the_reference_gradients(gen):
    sizes = [40, 30, 20, 10]
    model = MeanFieldMLP(sizes)
    model.reset_parameters(gen)
    with torch.no_grad():
        for lay in model.layers:
            lay.pi.uniform_(0, 1, generator=gen)
    x = torch.rand(64, sizes[0], generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    eps = random_eps(64, sizes, gen, dtype=torch.float32)
    torch.nn.functional.cross_entropy(model(x, eps=eps), y).backward()
    params = [tuple(t.detach() for t in layer) for layer in model.params()]
    ref = gbp.gradients(params, x, y, eps)
    fused = [(lay.pi.grad, lay.m.grad, lay.xi.grad) for lay in model.layers]
    for gf, gr in zip(fused, ref, strict=True):
        for a, b in zip(gf, gr, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@needs_kernels
def test_a_training_step_of_the_model_is_the_same_with_and_without_kernels(gen):
    model = MeanFieldMLP([30, 20, 10])
    model.reset_parameters(gen)
    with torch.no_grad():
        for lay in model.layers:
            lay.pi.uniform_(0, 1, generator=gen)
    x = torch.rand(50, 30, generator=gen)
    y = torch.randint(0, 10, (50,), generator=gen)

    def grads():
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(
            model.logits(x, generator=torch.Generator().manual_seed(3)), y
        )
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    fused = grads()
    with kernels.disabled():
        plain = grads()
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@needs_kernels
@pytest.mark.parametrize("shape", [(500, 784, 100), (7, 5, 3), (3, 5, 1), (1, 4, 1)])
@pytest.mark.parametrize("relu", [False, True])
def test_the_noisy_layer_computes_the_eps_of_the_separate_draw(gen, shape, relu):
    """noisy_layer draws its eps inside the kernel: the numbers of standard_normal then
    layer_forward, bit for bit (odd sizes too), and the generator advances the same."""
    batch, n_in, n_out = shape
    pi, m, xi = random_params([n_in, n_out], gen, dtype=torch.float32)[0]
    h = torch.rand(batch, n_in, generator=gen)
    fused, separate, plain = (torch.Generator().manual_seed(5) for _ in range(3))
    out, out2 = fast_layer.noisy_layer(h, pi, m, xi, fused, relu)
    eps = noise.standard_normal(batch, n_out, generator=separate)
    z = fast_layer.layer_forward(h, pi, m, xi, eps, relu=relu)[2]
    assert torch.equal(out, z) and torch.equal(out2, z * z)
    layer = MeanFieldLinear(n_in, n_out)
    with torch.no_grad():
        for p, v in zip((layer.pi, layer.m, layer.xi), (pi, m, xi), strict=True):
            p.copy_(v)
    with kernels.disabled():
        out_t, out2_t = layer.noisy(h, plain, relu)
    close(out_t, gbp.layer_forward(h, pi, m, xi, eps, relu=relu)[2])
    assert out2_t is None  # the reference path leaves the square to the next layer
    for g in (fused, plain):
        assert torch.equal(g.get_state(), separate.get_state())


@needs_kernels
def test_applies_only_to_contiguous_float32_cpu_tensors_outside_autograd():
    a = torch.ones(3, 4)
    assert kernels.applies(a, a)
    assert not kernels.applies(a, a.double())
    assert not kernels.applies(a.T, a.T)  # not contiguous
    w = torch.ones(3, 4, requires_grad=True)
    assert not kernels.applies(a, w)  # autograd would not see the kernel
    with torch.no_grad():
        assert kernels.applies(a, w)
    with kernels.disabled():
        assert not kernels.applies(a, a)
    assert kernels.applies(a, a)


@needs_kernels
def test_the_kernels_reject_bad_tensors_naming_them():
    kernels.load()
    ok = torch.ones(3, 4)
    with pytest.raises(RuntimeError, match="xi has shape"):
        kernels.ops().mean_and_variance(ok, ok, torch.ones(4, 3))
    with pytest.raises(RuntimeError, match="pi must be a contiguous float32 CPU tensor"):
        kernels.ops().mean_and_variance(ok.double(), ok, ok)
    with pytest.raises(RuntimeError, match="eps must be a contiguous float32"):
        kernels.ops().preactivation_(ok, ok, torch.ones(4, 3).T, 1.0, 1.0, True, False)
    with pytest.raises(RuntimeError, match="D has shape"):
        kernels.ops().noisy_output_(ok, torch.ones(4, 3), 1.0, 1.0, False, 0, 0)
    hyper = [1.0, 0.1, 0.9, 0.999, 1e-8, 1.0, -1.0, 1.0]
    with pytest.raises(RuntimeError, match="8 numbers per tensor"):
        kernels.ops().adam_steps_([ok], [ok], [ok], [ok], hyper[:7])
    with pytest.raises(RuntimeError, match="same length"):
        kernels.ops().adam_steps_([ok], [ok, ok], [ok], [ok], hyper)
    with pytest.raises(RuntimeError, match="step must be >= 1"):
        kernels.ops().adam_steps_([ok], [ok], [ok], [ok], [0.0, *hyper[1:]])


FALLBACK = """
    import warnings, torch
    from mfbook.fast import kernels
    from mfbook.nn import MeanFieldMLP
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, x = MeanFieldMLP([4, 3]), torch.rand(2, 4)
        pi, m = model.layers[0].pi.detach(), model.layers[0].m.detach()
        with torch.no_grad():
            torch.testing.assert_close(model(x, mode="mean"), x @ ((1 - pi) * m).T / 2)
    print(kernels.status())
    first = caught[0] if caught else None
    print(len(caught), first and first.category.__name__, first and first.message)
"""


def test_without_a_compiler_gbp_works_and_one_warning_says_why(tmp_path):
    done = run_python(FALLBACK, CXX="mfbook-no-such-compiler", MFBOOK_KERNEL_CACHE=str(tmp_path))
    assert done.returncode == 0, done.stderr
    status, warned = done.stdout.splitlines()
    assert status.startswith("fused CPU kernels: off (")
    if sys.platform.startswith("linux"):
        assert "no C++ compiler found (mfbook-no-such-compiler)" in status
    assert warned.startswith("1 RuntimeWarning")
    assert "the same formulas, slower" in warned
    assert not list(tmp_path.glob("*.so"))


def test_turned_off_by_the_environment_without_a_warning(tmp_path):
    done = run_python(FALLBACK, MFBOOK_KERNELS="0", MFBOOK_KERNEL_CACHE=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "fused CPU kernels: off (turned off by MFBOOK_KERNELS=0)",
        "0 None None",
    ]


@needs_kernels
def test_a_failing_compile_raises_with_the_compilers_message(tmp_path, monkeypatch):
    bad = tmp_path / "_kernels.cpp"
    bad.write_text("this is not C++\n")
    monkeypatch.setattr(kernels, "SOURCE", bad)
    monkeypatch.setenv("MFBOOK_KERNEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="the C\\+\\+ compiler failed:(.|\n)*error"):
        kernels.build(quiet=True)
    assert not list((tmp_path / "cache").glob("*.so"))  # no half-built library left behind


@needs_kernels
def test_the_library_is_keyed_by_its_source(tmp_path, monkeypatch):
    before = kernels.library_path()
    changed = tmp_path / "_kernels.cpp"
    changed.write_bytes(kernels.SOURCE.read_bytes() + b"// changed\n")
    monkeypatch.setattr(kernels, "SOURCE", changed)
    assert kernels.library_path() != before


def test_tensors_they_cannot_serve_never_build_them(tmp_path):
    code = """
        import torch
        from mfbook.fast import kernels
        print(kernels.applies(torch.ones(3, dtype=torch.float64)), kernels._loaded)
    """
    done = run_python(code, MFBOOK_KERNEL_CACHE=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "None"]  # not even tried: no compile, no warning
    assert not list(tmp_path.iterdir())


@needs_kernels
def test_the_fused_relu_keeps_nan_so_divergence_is_seen():
    h, eps = torch.ones(1, 2), torch.zeros(1, 2)
    pi, m, xi = (
        torch.zeros(2, 2),
        torch.tensor([[float("nan"), 0.0], [0.0, -1.0]]),
        torch.zeros(2, 2),
    )
    for path in (fast_layer, gbp):
        z = path.layer_forward(h, pi, m, xi, eps, relu=True)[2]
        assert torch.isnan(z[0, 0]) and z[0, 1] == 0


def test_the_command_says_why_it_could_not_build(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    env = {**os.environ, "MFBOOK_KERNEL_CACHE": str(blocked / "kernels")}
    done = subprocess.run(
        [sys.executable, "-m", "mfbook", "kernels"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert done.stderr.startswith("not built: ") and "Traceback" not in done.stderr
