"""Compiled CPU kernels behind :mod:`mfbook.fast.noise` (numba; imported on the first CPU draw).

Number pair i of a draw with key k comes from one 64-bit word, SplitMix64's output for the state
k + (i + 1) * GOLDEN (Steele, Lea and Flood 2014): its top 24 bits give u1 in (0, 1], the next
24 bits an angle; Box-Muller turns them into two independent standard normals,
r cos(theta) and r sin(theta) with r = sqrt(-2 ln u1). Each word depends on (k, i) only, so the
numbers could be computed in any order with the same result. The kernels run on the calling
thread, or, where mfbook.fast.kernels is built, on torch's own threads through the C function
``fill_range_c`` (a second thread pool beside torch's would slow torch's matrix products).

The transcendental functions are single-precision polynomials (Cephes logf, sinf, cosf; about
1e-7 relative error), written so that the compiler vectorises them; the tests compare the output
with the exact float64 Box-Muller transform of the same bits. The work is done in chunks of
``CHUNK`` pairs: an integer pass (the uniforms) and a float pass (the transform), both vectorised.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

GOLDEN = 0x9E3779B97F4A7C15
CHUNK = 8192
F = np.float32
# Contraction and signed-zero freedom only: no reassociation, so the arithmetic is the one written.
_MATH = {"contract", "arcp", "nsz", "nnan", "ninf"}


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float32, as an int32."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _float(typingctx, i):
    """The float32 whose bit pattern is the int32 ``i``."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@numba.njit(inline="always")
def _splitmix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always", fastmath=_MATH)
def _log(x):
    """ln x for a normal float32 x > 0 (Cephes logf), without branches."""
    b = _bits(x)
    e = F((b >> 23) - 127)
    m = _float((b & 0x7FFFFF) | 0x3F800000)  # x = m 2^e, m in [1, 2)
    big = F(m > F(1.4142135623730951))  # 0 or 1: move m into [sqrt(1/2), sqrt(2))
    m = m * (F(1.0) - F(0.5) * big)
    e = e + big
    t = m - F(1.0)
    z = t * t
    p = F(7.0376836292e-2)
    for c in (
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    ):
        p = p * t + F(c)
    y = p * t * z + e * F(-2.12194440e-4) - F(0.5) * z
    return t + y + e * F(0.693359375)


@numba.njit(fastmath=_MATH)
def _uniforms(u, a, key, n):
    """Integer pass: u[i] = u1 in (0, 1], a[i] = the angle's 24 bits, for pairs 0..n-1."""
    for i in range(n):
        z = _splitmix(key + np.uint64(i + 1) * np.uint64(GOLDEN))
        u[i] = F(np.int32(z >> np.uint64(40)) + np.int32(1)) * F(1.0 / 16777216.0)
        a[i] = F(np.int32((z >> np.uint64(16)) & np.uint64(0xFFFFFF)))


@numba.njit(fastmath=_MATH)
def _box_muller(u, a, n):
    """Float pass, in place: (u, a) -> (r cos theta, r sin theta).

    The angle's top two bits pick a quarter turn q, the other 22 bits an angle t in
    (-pi/4, pi/4); (cos, sin) of t + q pi/2 is (cos t, sin t) rotated q times, done with exact
    0/1 and +-1 factors instead of branches.
    """
    for i in range(n):
        k = np.int32(a[i])
        q = k >> 22
        t = (F(k & 0x3FFFFF) + F(0.5)) * F(math.pi / 2 / 4194304.0) - F(math.pi / 4)
        r = math.sqrt(F(-2.0) * _log(u[i]))
        z = t * t
        s = ((F(-1.9515295891e-4) * z + F(8.3321608736e-3)) * z - F(1.6666654611e-1)) * z * t + t
        c = (
            ((F(2.443315711809948e-5) * z - F(1.388731625493765e-3)) * z + F(4.166664568298827e-2))
            * z
            * z
            - F(0.5) * z
            + F(1.0)
        )
        swap = F(q & 1)
        sign = F(1 - (q & 2))
        u[i] = r * (sign * (c * (F(1.0) - swap) - s * swap))
        a[i] = r * (sign * (s * (F(1.0) - swap) + c * swap))


@numba.njit(cache=True, nogil=True)
def _fill(first, second, key, lo):
    """Pairs lo, lo + 1, ... of the draw with ``key``: their first numbers into ``first``, their
    second ones into ``second`` (float32 arrays of one length), in chunks of CHUNK pairs."""
    n = first.size
    for c in range(0, n, CHUNK):
        end = min(n, c + CHUNK)
        u, a = first[c:end], second[c:end]
        _uniforms(u, a, key + np.uint64(lo + c) * np.uint64(GOLDEN), end - c)
        _box_muller(u, a, end - c)


@numba.njit(cache=True, nogil=True)
def fill_range(out, half, key, lo, hi):
    """Pairs lo..hi-1 of a draw of ``half`` pairs into the float32 array ``out`` (length
    2 half): out[i] = r_i cos theta_i and out[half + i] = r_i sin theta_i, from the key (a
    uint64). Pair i depends on (key, i) only, so any split into ranges gives the same numbers."""
    _fill(out[lo:hi], out[half + lo : half + hi], key, lo)


def fill_pairs(out, key):
    """Fill the float32 array ``out`` (even length 2n) with n pairs, on the calling thread."""
    half = out.size // 2
    fill_range(out, half, key, 0, half)


@numba.cfunc(
    types.void(types.CPointer(types.float32), types.int64, types.uint64, types.int64, types.int64),
    cache=True,
)
def fill_range_c(ptr, half, key, lo, hi):
    """:func:`fill_range` as a C function, for mfbook.fast.kernels to call from torch's threads
    (``fill_range_c.address``): the same numbers, the pairs split between the threads."""
    fill_range(numba.carray(ptr, (2 * half,)), half, key, lo, hi)


@numba.cfunc(
    types.void(types.CPointer(types.float32), types.uint64, types.int64, types.int64), cache=True
)
def fill_block_c(ptr, key, lo, hi):
    """Pairs lo..hi-1 of the draw with ``key`` into a block of 2 (hi - lo) floats at ``ptr``: the
    first numbers of the pairs, then the second ones. For kernels that use the numbers at once
    instead of storing the whole draw (mfbook.fast.kernels: noisy_output_); the same numbers as
    :func:`fill_range`."""
    n = hi - lo
    block = numba.carray(ptr, (2 * n,))
    _fill(block[:n], block[n:], key, lo)
