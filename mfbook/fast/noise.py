"""The noise eps of the noisy mean-field forward pass (chapters 3-4): standard normal numbers.

A gBP step needs one eps per example and unit, z = G + eps * Delta. On a GPU they come from
torch's own generator. On the CPU, torch draws one number at a time from a Mersenne twister:
at width 100 that costs as much as the whole plain forward pass. Here, instead, each call takes
ONE 64-bit key from the torch generator and computes the numbers from (key, position) with a
counter-based generator (SplitMix64 words, Box-Muller), vectorised
(:mod:`mfbook.fast._noise_kernels`) and split between torch's threads where
:mod:`mfbook.fast.kernels` is built (the same numbers either way). The performance appendix
measures the difference.

The torch generator stays the only source of randomness: the same seed gives the same eps, its
state is what a checkpoint saves, and drawing advances it by one number whatever the size.
"""

from __future__ import annotations

import torch

from mfbook import _checks


def _key(generator) -> int:
    """One uniform 64-bit key from ``generator`` (None: torch's default CPU generator), as the
    signed int64 of its bits."""
    return int(torch.randint(-(2**63), 2**63 - 1, (), generator=generator, dtype=torch.int64))


def _fill_cpu(out: torch.Tensor, generator) -> None:
    import numpy as np

    from mfbook.fast import _noise_kernels, kernels

    n = out.numel()
    direct = out.dtype == torch.float32 and out.is_contiguous() and n % 2 == 0
    buf = (out if direct else torch.empty(n + n % 2, dtype=torch.float32)).detach()
    key = _key(generator)
    if kernels.applies(buf):  # the pairs split between torch's threads
        kernels.ops().normal_pairs_(buf, _noise_kernels.fill_range_c.address, key)
    else:
        _noise_kernels.fill_pairs(buf.numpy().reshape(-1), np.uint64(key % 2**64))
    if not direct:
        with torch.no_grad():
            out.copy_(buf[:n].view(out.shape))


@torch.no_grad()
def normal_(out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill the floating-point tensor ``out`` with standard normal numbers, in place; returns it.

    ``generator`` must be on ``out``'s device (None: torch's default generator). CUDA tensors use
    ``out.normal_(generator=...)``; CPU tensors the counter-based generator above, which computes
    in single precision (a float64 tensor gets the same numbers, converted) and fills a tensor in
    its logical order, whatever its memory layout.
    """
    if not isinstance(out, torch.Tensor) or out.dtype not in _checks.FLOAT_DTYPES:
        what = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
        raise TypeError(f"out must be a float32 or float64 torch.Tensor, got {what}")
    if generator is not None and generator.device.type != out.device.type:
        raise ValueError(
            f"generator is on {generator.device} but out is on {out.device}: "
            "they must be on the same kind of device"
        )
    if not out.is_cpu:
        return out.normal_(generator=generator)
    if out.numel():
        _fill_cpu(out, generator)
    return out


def standard_normal(*shape: int, generator=None, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """A new tensor of ``shape`` filled by :func:`normal_` (the eps of chapter 3)."""
    return normal_(torch.empty(shape, dtype=dtype, device=device), generator)


def block_source(generator) -> tuple[int, int] | None:
    """For a fused kernel that computes the eps of one CPU draw itself instead of reading them
    (:func:`mfbook.fast.layer.noisy_layer`): (key, address of the C function
    ``_noise_kernels.fill_block_c``), the key drawn from ``generator`` exactly as
    :func:`standard_normal` draws it, so the numbers are the same. None (nothing drawn) for a
    generator that is not on the CPU."""
    if generator is not None and generator.device.type != "cpu":
        return None
    from mfbook.fast import _noise_kernels

    return _key(generator), _noise_kernels.fill_block_c.address
