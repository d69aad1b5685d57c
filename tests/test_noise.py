"""The eps generator (mfbook.fast.noise): exact Box-Muller of its bits, normal statistics, one
key per draw from the torch generator, every dtype and layout, clear errors."""

import math

import numpy as np
import pytest
import torch
from conftest import needs_kernels

from mfbook.fast import kernels, noise

GOLDEN = 0x9E3779B97F4A7C15


def reference(key: int, n: int) -> np.ndarray:
    """The documented construction in float64 numpy: SplitMix64 words for states key + (i+1)
    GOLDEN, u1 from the top 24 bits, the angle from the next 24, exact Box-Muller."""
    half = n // 2
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.arange(1, half + 1, dtype=np.uint64) * np.uint64(GOLDEN))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u1 = ((z >> np.uint64(40)).astype(np.float64) + 1) / 2**24
    k2 = ((z >> np.uint64(16)) & np.uint64(0xFFFFFF)).astype(np.int64)
    theta = ((k2 & 0x3FFFFF) + 0.5) * (math.pi / 2) / 2**22 - math.pi / 4 + (k2 >> 22) * math.pi / 2
    r = np.sqrt(-2 * np.log(u1))
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)])


def draw(n, seed=0, **kw):
    return noise.standard_normal(n, generator=torch.Generator().manual_seed(seed), **kw)


def test_equals_the_exact_box_muller_of_its_bits():
    n = 400_000
    key = noise._key(torch.Generator().manual_seed(5)) % 2**64  # its bits, unsigned
    got = draw(n, seed=5).double().numpy()
    want = reference(key, n)
    assert np.abs(got - want).max() < 5e-6  # float32 polynomials for log, sin, cos
    assert np.abs(want).max() > 4  # the tails were exercised


def test_standard_normal_statistics():
    n = 2_000_000
    x = draw(n, seed=1).double()
    se = 1 / math.sqrt(n)
    assert abs(float(x.mean())) < 5 * se
    assert abs(float(x.var()) - 1) < 5 * math.sqrt(2) * se
    assert abs(float((x**3).mean())) < 5 * math.sqrt(15) * se
    assert abs(float((x**4).mean()) - 3) < 5 * math.sqrt(96) * se
    s = x.sort().values
    cdf = 0.5 * (1 + torch.erf(s / math.sqrt(2)))
    ks = float(torch.maximum(torch.arange(1, n + 1) / n - cdf, cdf - torch.arange(n) / n).max())
    assert ks < 1.6 / math.sqrt(n)  # the KS test at about the 1% level
    for k in (2, 3, 4):
        p = math.erfc(k / math.sqrt(2))
        freq = float((x.abs() > k).double().mean())
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n), k


def test_pairs_and_successive_draws_are_uncorrelated():
    gen = torch.Generator().manual_seed(2)
    n = 1_000_000
    a, b = noise.standard_normal(n, generator=gen).double(), None
    b = noise.standard_normal(n, generator=gen).double()
    bound = 5 / math.sqrt(n // 2)
    cos_half, sin_half = a[: n // 2], a[n // 2 :]
    for u, v in ((cos_half, sin_half), (a, b), (a[:-1], a[1:])):
        assert abs(float(torch.corrcoef(torch.stack([u, v]))[0, 1])) < bound
        assert abs(float(torch.corrcoef(torch.stack([u * u, v * v]))[0, 1])) < bound


def test_seeded_reproducible_and_one_number_of_the_generator_per_draw():
    assert torch.equal(draw(1001, seed=3), draw(1001, seed=3))
    assert not torch.equal(draw(1000, seed=3), draw(1000, seed=4))
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    noise.standard_normal(3, generator=g1)
    noise.standard_normal(100_000, generator=g2)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    a = noise.standard_normal(50, generator=g1)
    assert not torch.equal(a, noise.standard_normal(50, generator=g1))  # fresh key each call


def test_dtype_shape_odd_sizes_and_layouts_agree():
    base = draw(12, seed=7)
    assert torch.equal(draw(12, seed=7, dtype=torch.float64), base.double())
    assert torch.equal(draw(11, seed=7), base[:11])  # an odd size: the even draw, cut
    out = torch.empty(4, 3).T  # not contiguous: filled in its logical order
    noise.normal_(out, torch.Generator().manual_seed(7))
    assert torch.equal(out.reshape(-1), base)
    m = noise.standard_normal(5, 7, generator=torch.Generator().manual_seed(7))
    assert m.shape == (5, 7) and m.dtype == torch.float32
    assert noise.normal_(torch.empty(0)).numel() == 0


def test_default_generator_is_torchs():
    torch.manual_seed(11)
    a = noise.standard_normal(10)
    torch.manual_seed(11)
    assert torch.equal(a, noise.standard_normal(10))


@pytest.mark.parametrize(
    "out, match",
    [
        (torch.zeros(3, dtype=torch.int64), "float32 or float64"),
        (np.zeros(3), "float32 or float64 torch.Tensor, got ndarray"),
        (torch.zeros(3, dtype=torch.float16), "float32 or float64"),
    ],
)
def test_bad_out(out, match):
    with pytest.raises(TypeError, match=match):
        noise.normal_(out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_uses_torchs_generator():
    g1, g2 = (torch.Generator(device="cuda").manual_seed(1) for _ in range(2))
    a = noise.standard_normal(1000, generator=g1, device="cuda")
    assert torch.equal(a, torch.empty(1000, device="cuda").normal_(generator=g2))
    with pytest.raises(ValueError, match="same kind of device"):
        noise.normal_(torch.empty(3), g1)


@needs_kernels
@pytest.mark.parametrize("n", [2, 16_384 * 2 + 6, 1_000_000])  # one task, just over, many
def test_split_between_threads_gives_the_serial_numbers(n):
    threaded = draw(n, seed=9)
    with kernels.disabled():  # one numba call on this thread
        serial = draw(n, seed=9)
    assert torch.equal(threaded, serial)
