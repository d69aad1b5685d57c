"""Shared fixtures: small random spike-and-slab networks in float64."""

import matplotlib

matplotlib.use("Agg")  # headless: figures are drawn, never shown

import pytest  # noqa: E402
import torch  # noqa: E402


def random_params(sizes, generator, dtype=torch.float64, pi_edges=True):
    """(pi, m, xi) per layer with pi in [0, 1] (some exact 0s and 1s) and xi > 0."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        shape = (n_out, n_in)
        pi = torch.rand(shape, generator=generator, dtype=dtype)
        if pi_edges:
            pi[0, 0], pi[-1, -1] = 0.0, 1.0
        m = torch.randn(shape, generator=generator, dtype=dtype)
        xi = 0.05 + 0.5 * torch.rand(shape, generator=generator, dtype=dtype)
        params.append((pi, m, xi))
    return params


def random_eps(batch, sizes, generator, dtype=torch.float64):
    return [torch.randn(batch, n, generator=generator, dtype=dtype) for n in sizes[1:]]


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def _can_build_kernels() -> bool:
    import sys

    from mfbook.fast import kernels

    return sys.platform.startswith("linux") and kernels._compiler() is not None


#: Tests of the fused CPU kernels (mfbook.fast.kernels) need a C++ compiler to build them.
needs_kernels = pytest.mark.skipif(
    not _can_build_kernels(), reason="no C++ compiler: the fused kernels cannot be built"
)


def run_python(code: str, **env):
    """Run ``code`` (dedented) in a fresh Python process with this environment plus ``env``."""
    import os
    import subprocess
    import sys
    import textwrap

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
