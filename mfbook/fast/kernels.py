"""Fused CPU kernels for gBP: compiled once, used where they apply (chapter 4).

On the CPU a gBP step at width 1000 spent about as long in elementwise passes over the weights
and activations as in its extra matrix products: torch runs each expression of
:mod:`mfbook.gbp` as its own pass over memory. ``_kernels.cpp`` does each group of them in one
pass (the weight moments, the three weight gradients, the noisy pre-activation with the noise
ratio and a hidden layer's ReLU, the two backward signals with the ReLU's backward; also the
parameter update of :mod:`mfbook.fast.update`, alone or together with the weight gradients; and
the noisy inference pass, which computes its own eps), on torch's own thread pool, which also
runs the noise generator of :mod:`mfbook.fast.noise` split between its threads. The callers use a
kernel when :func:`applies` says so (float32, contiguous, CPU tensors, no autograd graph being
recorded) and their own torch expressions otherwise: on a GPU, in float64, and wherever no
kernels could be built. The tests check that both agree to float32
rounding (the noise: exactly).

The kernels are compiled with the system's C++ compiler (``$CXX``, else ``c++``) against the
installed torch, on Linux, the first time they are needed or by ``python -m mfbook kernels``
(``make`` does it during set-up). The library is cached per source, torch, Python and CPU in
``$MFBOOK_KERNEL_CACHE`` (default: ``~/.cache/mfbook/kernels``), a folder only its owner may
write, with the sha256 of each library beside it: a library is loaded only if it matches its
checksum (a damaged one is compiled again) and only if it registers every op of :data:`OPS`.
``MFBOOK_KERNELS=0`` turns them off. Without a compiler, or with a cache folder that others can
write, everything works, only slower; one warning says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from mfbook.io import atomic_target, atomic_write, sha256

SOURCE = Path(__file__).with_name("_kernels.cpp")
# -march=native: the vector instructions of this CPU (the library is cached per CPU, below);
# -ffp-contract=off: no fused multiply-adds, so each product and sum is rounded as in the torch
# expressions; -fno-math-errno lets sqrt vectorise.
FLAGS = (
    "-O3",
    "-march=native",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fopenmp",
    "-shared",
    "-fPIC",
    "-std=c++17",
)

#: The ops ``_kernels.cpp`` registers; a library that lacks one is not used.
OPS = (
    "mean_and_variance",
    "weight_grads_",
    "preactivation_",
    "backward_signals",
    "normal_pairs_",
    "noisy_output_",
    "adam_steps_",
)

_loaded: bool | None = None  # None: not tried yet in this process
_reason = ""  # why they are not loaded
_off = 0  # depth of disabled() blocks


def cache_dir() -> Path:
    """Where compiled libraries are kept: ``$MFBOOK_KERNEL_CACHE``, else
    ``~/.cache/mfbook/kernels``."""
    env = os.environ.get("MFBOOK_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mfbook" / "kernels"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def compile_command(out: Path, compiler: str = "c++") -> list[str]:
    """The compiler call that builds the library ``out`` from ``_kernels.cpp``."""
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [compiler, *FLAGS, f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    for inc in cpp_extension.include_paths():
        cmd += ["-isystem", inc]
    cmd += [str(SOURCE), "-o", str(out)]
    for lib in cpp_extension.library_paths():
        # torch's own lib folder first: its libgomp is the OpenMP runtime torch already runs
        cmd += [f"-L{lib}", f"-Wl,-rpath,{lib}"]
    return [*cmd, "-lc10", "-ltorch_cpu"]


def cpu_description() -> str:
    """The CPU's model and instruction-set flags (Linux), which -march=native compiles for."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))


def library_path() -> Path:
    """The cached library for this source, torch, Python, compiler flags and CPU."""
    h = hashlib.sha256(SOURCE.read_bytes())
    parts = (torch.__version__, sys.version, platform.machine(), " ".join(FLAGS))
    for part in (*parts, cpu_description()):
        h.update(part.encode())
    return cache_dir() / f"mfbook_kernels-{h.hexdigest()[:16]}.so"


def checksum_path(library: Path) -> Path:
    """The file beside ``library`` that holds its sha256, written when it was built."""
    return library.with_name(library.name + ".sha256")


def _intact(library: Path) -> bool:
    """Whether ``library`` exists and matches the checksum written when it was built."""
    try:
        return checksum_path(library).read_text().strip() == sha256(library)
    except OSError:
        return False


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (owner only); refuse one that another user owns or can write, since a
    library loaded from it runs as this process."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise RuntimeError(
            f"the kernel cache folder {folder} can be written by other users (mode "
            f"{st.st_mode & 0o777:o}); no library is loaded from it: set MFBOOK_KERNEL_CACHE to a "
            "folder only you can write"
        )


def build(force: bool = False, quiet: bool = False) -> Path:
    """Compile the kernels into :func:`library_path` unless an intact library is there already
    (``force``: again). A cached library that does not match its checksum (damaged, truncated
    or replaced) is compiled again.

    Raises RuntimeError naming what failed: not Linux, no compiler, a cache folder that others
    can write, or the compiler's message. Concurrent builds (test workers) wait for each other
    through a lock file.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"the fused kernels are built on Linux only (this is {sys.platform})")
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError(f"no C++ compiler found ({os.environ.get('CXX', 'c++')})")
    out = library_path()
    _private_folder(out.parent)
    lock = os.open(out.parent / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _intact(out):
            return out
        if not quiet:
            why = "it does not match its checksum, " if out.exists() else ""
            print(
                f"mfbook: compiling the fused CPU kernels ({why}once, under a minute)",
                file=sys.stderr,
            )
        with atomic_target(out) as tmp:  # a reader never sees half a library
            done = subprocess.run(compile_command(tmp, compiler), capture_output=True)
            if done.returncode != 0:
                msg = done.stderr.decode(errors="replace").strip()[-2000:]
                raise RuntimeError(f"the C++ compiler failed:\n{msg}")
            digest = sha256(tmp)
        atomic_write(checksum_path(out), digest + "\n")
    finally:
        os.close(lock)
    return out


def _missing_ops() -> list[str]:
    return [op for op in OPS if not hasattr(torch.ops.mfbook, op)]


def load() -> bool:
    """Load the kernels into ``torch.ops.mfbook`` (building them first if needed); whether they
    are usable. Tried once per process; a failure warns once with the reason."""
    global _loaded, _reason
    if _loaded is None:
        _loaded = False
        if os.environ.get("MFBOOK_KERNELS", "1") == "0":
            _reason = "turned off by MFBOOK_KERNELS=0"
            return False
        try:
            library = build()
            if not _intact(library):  # replaced between the build and here
                raise RuntimeError(f"{library} does not match its checksum")
            torch.ops.load_library(str(library))
            missing = _missing_ops()
            if missing:
                raise RuntimeError(f"{library} does not register the ops {', '.join(missing)}")
            _loaded = True
        except (RuntimeError, OSError) as err:
            _reason = str(err)
            warnings.warn(
                f"mfbook: the fused CPU kernels are not available ({_reason}); gBP uses torch's "
                "elementwise operations instead (the same formulas, slower)",
                RuntimeWarning,
                stacklevel=2,
            )
    return _loaded


def status() -> str:
    """One line: whether the kernels are in use, and why not."""
    if load():
        return f"fused CPU kernels: on ({library_path().name})"
    return f"fused CPU kernels: off ({_reason.splitlines()[0]})"


def applies(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels can stand in for the torch expressions on ``tensors``: all
    float32, contiguous and on the CPU, no autograd graph to record, kernels loaded and not
    :func:`disabled`."""
    if _off:
        return False
    grad = torch.is_grad_enabled()
    for t in tensors:  # attribute checks only: this runs a dozen times per training step
        if not t.is_cpu or t.dtype is not torch.float32 or not t.is_contiguous():
            return False
        if grad and t.requires_grad:
            return False
    return _loaded or load()  # last: a GPU-only run never builds them


@contextlib.contextmanager
def disabled():
    """Within this block :mod:`mfbook.gbp` uses its torch expressions only (tests, benchmarks)."""
    global _off
    _off += 1
    try:
        yield
    finally:
        _off -= 1


def ops():
    """``torch.ops.mfbook``, the loaded kernels."""
    return torch.ops.mfbook
