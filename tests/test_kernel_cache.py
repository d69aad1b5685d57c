"""The cache of the compiled kernel library (mfbook.fast.kernels): a library is used only if it
matches the checksum written when it was built and registers every op; a damaged one is compiled
again; a cache folder that other users can write is never loaded from. A stand-in compiler (a
script that writes a given file where the real one would write the library) keeps these tests
free of real compiles."""

import os
import shutil
import stat

import pytest
from conftest import needs_kernels, run_python

from mfbook.fast import kernels
from mfbook.io import sha256

STATUS = """
    import warnings
    from mfbook.fast import kernels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        print(kernels.status())
    print(len(caught))
    print(caught[0].message if caught else "")
"""


def stand_in_compiler(folder, library):
    """A 'compiler' that copies ``library`` to the path after its ``-o``."""
    script = folder / "cxx"
    script.write_text(
        '#!/bin/sh\nwhile [ "$#" -gt 1 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        f'cp "{library}" "$out"\n'
    )
    script.chmod(0o755)
    return str(script)


def run_status(cache, cxx):
    done = run_python(STATUS, MFBOOK_KERNEL_CACHE=str(cache), CXX=cxx)
    assert done.returncode == 0, done.stderr  # no SIGBUS, no crash
    status, warnings, message = done.stdout.splitlines()
    return status, int(warnings), message, done.stderr


@pytest.fixture
def good_library():
    """The real library of this checkout, built (once) in the default cache."""
    return kernels.build(quiet=True)


@needs_kernels
@pytest.mark.parametrize("damage", ["truncated", "not a library", "no checksum"])
def test_a_damaged_cached_library_is_compiled_again_before_it_is_loaded(
    tmp_path, good_library, damage
):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    lib = cache / good_library.name
    shutil.copy(good_library, lib)
    shutil.copy(kernels.checksum_path(good_library), kernels.checksum_path(lib))
    if damage == "truncated":  # loading this one used to kill the process with SIGBUS
        lib.write_bytes(good_library.read_bytes()[: lib.stat().st_size // 2])
    elif damage == "not a library":
        lib.write_bytes(b"not a shared library")
    else:
        kernels.checksum_path(lib).unlink()
    status, warnings, _, stderr = run_status(cache, stand_in_compiler(tmp_path, good_library))
    assert status == f"fused CPU kernels: on ({lib.name})"
    assert warnings == 0
    assert "compiling the fused CPU kernels" in stderr
    assert lib.read_bytes() == good_library.read_bytes()
    assert kernels.checksum_path(lib).read_text().strip() == sha256(lib)


@needs_kernels
def test_an_intact_cached_library_is_loaded_without_compiling(tmp_path, good_library):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    shutil.copy(good_library, cache / good_library.name)
    shutil.copy(kernels.checksum_path(good_library), cache)
    status, warnings, _, stderr = run_status(cache, stand_in_compiler(tmp_path, "/nonexistent"))
    assert status.startswith("fused CPU kernels: on") and warnings == 0
    assert "compiling" not in stderr


@needs_kernels
def test_a_library_without_the_ops_is_not_used_and_one_warning_says_which(tmp_path):
    empty = tmp_path / "empty.so"  # a valid shared library that registers nothing
    cc = shutil.which("cc") or shutil.which("gcc")
    assert os.system(f"{cc} -shared -fPIC -x c /dev/null -o {empty}") == 0
    status, warnings, message, _ = run_status(
        tmp_path / "cache", stand_in_compiler(tmp_path, empty)
    )
    assert status.startswith("fused CPU kernels: off (")
    assert "does not register the ops mean_and_variance" in status
    assert warnings == 1 and "the same formulas, slower" in message


@needs_kernels
def test_a_cache_folder_others_can_write_is_never_loaded_from(tmp_path, good_library):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    status, warnings, message, _ = run_status(shared, stand_in_compiler(tmp_path, good_library))
    assert status.startswith("fused CPU kernels: off (")
    assert "can be written by other users" in message and "MFBOOK_KERNEL_CACHE" in message
    assert warnings == 1
    assert not list(shared.iterdir())  # nothing compiled into it or loaded from it


@needs_kernels
def test_a_new_cache_folder_is_private(tmp_path, good_library):
    cache = tmp_path / "new" / "kernels"
    status, *_ = run_status(cache, stand_in_compiler(tmp_path, good_library))
    assert status.startswith("fused CPU kernels: on")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
