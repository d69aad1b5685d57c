"""Keep freed memory in the process instead of returning it to the system after every step.

:class:`mfbook.optim.MeanFieldAdam` calls :func:`keep_freed_memory` when it is built: a process
that builds an optimiser trains.

A gBP step allocates and frees more large tensors than a plain-backprop step: the weight moments,
their gradients and the variance path, a few MB each at width 1000. With glibc's default
settings, freeing them returns the pages to the system (the heap is trimmed as soon as 2x the
largest recent block lies free at its top), and the next step's tensors fault fresh, zeroed pages
back in, thousands per step at width 1000 (the performance appendix measures it), while plain
backprop's fewer tensors stay below the threshold and fault none.

:func:`keep_freed_memory` fixes glibc's two thresholds once per process: blocks up to
``MMAP_THRESHOLD`` come from the heap, and up to ``TRIM_THRESHOLD`` of free memory at the top of
the heap is kept for reuse. The peak memory is unchanged; what is kept after a peak is at most
``TRIM_THRESHOLD``. Set ``MFBOOK_KEEP_FREED_MEMORY=0`` to leave the allocator alone. Other
C libraries (macOS, Windows, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers, <malloc.h>

_done: bool | None = None  # None: not tried yet; then whether the thresholds are set


def keep_freed_memory() -> bool:
    """Set glibc's heap thresholds once (see the module docstring); True when they are set."""
    global _done
    if _done is None:
        _done = False
        wanted = os.environ.get("MFBOOK_KEEP_FREED_MEMORY", "1") != "0"
        if wanted and sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
    return _done
