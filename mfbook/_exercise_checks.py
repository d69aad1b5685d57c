"""The self-checks that the assignments' test cells call (``mfbook.assignments`` re-exports them).

:func:`check` runs the tests of one exercise and records the outcome, :func:`score` prints the
outcomes so far, :func:`assert_close` says how a wrong tensor differs (a transpose, a sign, a
factor sqrt(N), ...) and :func:`assert_own_code` fails when an answer calls the package instead
of doing the work itself.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re

# --- outcomes of the checks ----------------------------------------------------------------
_RESULTS: dict[str, tuple[float, float, str]] = {}  # grade_id -> (points, max, message)


def check(grade_id: str, points: float, fn) -> None:
    """Run the test function ``fn`` of one exercise; record and print the outcome.

    Re-running a cell replaces its earlier outcome. A failure is re-raised, so that the cell
    shows an error (that is how the grader sees it too).
    """
    try:
        fn()
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if isinstance(e, NotImplementedError):
            first = "not answered yet (the function still raises NotImplementedError)"
        _RESULTS[grade_id] = (0.0, float(points), first)
        print(f"[FAIL] {grade_id}: 0/{points:g} points. {first}")
        raise
    _RESULTS[grade_id] = (float(points), float(points), "")
    print(f"[PASS] {grade_id}: {points:g}/{points:g} points (visible tests)")


def score() -> float:
    """Print the outcome of every check run in this kernel and the total; return the total."""
    if not _RESULTS:
        print("No checks have run yet: run the test cell below each exercise.")
        return 0.0
    width = max(len(k) for k in _RESULTS)
    for gid, (got, maximum, message) in _RESULTS.items():
        print(f"{gid:<{width}}  {got:g}/{maximum:g}  {message}")
    total = sum(r[0] for r in _RESULTS.values())
    maximum = sum(r[1] for r in _RESULTS.values())
    print(f"{'total':<{width}}  {total:g}/{maximum:g}  (visible tests; grading adds hidden ones)")
    return total


def reset() -> None:
    """Forget the recorded checks (a fresh start in the same kernel)."""
    _RESULTS.clear()


def _close(a, b, rtol: float, atol: float) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def assert_close(
    got, want, name: str, *, n: int | None = None, hint: str = "", rtol=1e-6, atol=1e-9
):
    """Assert ``got`` equals ``want``; if not, say how it differs in one line.

    Recognises the usual slips: a wrong shape, a transpose, a flipped sign, a missing or extra
    factor sqrt(n) (pass the fan-in ``n``), a variance where a standard deviation was asked for
    and the reverse. ``hint`` is appended to the message when none of those fits.
    """
    import torch  # here, so that generating and grading notebooks does not import torch

    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{name} must be a torch.Tensor, got {type(got).__name__}")
    want = want.to(got.dtype) if got.is_floating_point() else want
    if got.shape != want.shape:
        extra = " (transposed?)" if got.ndim == 2 and got.T.shape == want.shape else ""
        raise AssertionError(
            f"{name} has shape {tuple(got.shape)}, expected {tuple(want.shape)}{extra}"
        )
    if got.is_floating_point() and not bool(torch.isfinite(got).all()):
        raise AssertionError(f"{name} contains NaN or inf")
    if _close(got, want, rtol, atol):
        return
    if not got.is_floating_point():
        wrong = int((got != want).sum())
        raise AssertionError(f"{name} is wrong in {wrong} of {got.numel()} entries. {hint}".strip())
    slips = [
        (-want, "has the wrong sign (it equals minus the expected value)"),
        (
            want.abs().sqrt() * want.sign(),
            "looks like a standard deviation where a variance is expected: square it",
        ),
        (
            want**2,
            "looks like a variance where a standard deviation is expected: take the square root",
        ),
    ]
    if n is not None:
        r = math.sqrt(n)
        slips += [
            (
                want * r,
                f"is too large by a factor sqrt(N) = {r:.3g}: did you scale by 1/sqrt(N_in)?",
            ),
            (want / r, f"is too small by a factor sqrt(N) = {r:.3g}: 1/N instead of 1/sqrt(N)?"),
        ]
    for alternative, message in slips:
        if _close(got, alternative, rtol, atol):
            raise AssertionError(f"{name} {message}")
    err = (got - want).abs()
    idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
    raise AssertionError(
        f"{name} is wrong: largest error {float(err.max()):.3g} at index {idx} (got "
        f"{float(got[idx]):.6g}, expected {float(want[idx]):.6g}). {hint}".strip()
    )


_PACKAGE = re.compile(r"mfbook(\.|$)")
_PACKAGE_NAME = re.compile(r"mfbook(\.\w+)*")  # a string that names a module of the package


def _package_module(obj) -> str:
    """The mfbook module that ``obj`` (a module, routine or class) comes from, else ``""``.

    The model classes of ``mfbook.nn`` count as not from the package: they are allowed.
    """
    if inspect.ismodule(obj):
        module = obj.__name__
    elif inspect.isroutine(obj) or inspect.isclass(obj):
        module = getattr(obj, "__module__", None) or ""
    else:
        return ""
    if not _PACKAGE.match(module) or (inspect.isclass(obj) and module == "mfbook.nn"):
        return ""
    return module


def _code_objects(code):
    """``code`` and the code objects nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _code_objects(const)


def _bound_values(f) -> list[tuple[str, object]]:
    """(name, value) of what ``f`` uses besides its code: default arguments and closure cells."""
    code, defaults = f.__code__, f.__defaults__ or ()
    args = code.co_varnames[code.co_argcount - len(defaults) : code.co_argcount]
    values = [(f"the default of {a}", v) for a, v in zip(args, defaults, strict=True)]
    values += [(f"the default of {a}", v) for a, v in (f.__kwdefaults__ or {}).items()]
    for name, cell in zip(code.co_freevars, f.__closure__ or (), strict=True):
        with contextlib.suppress(ValueError):  # a cell not filled yet
            values.append((name, cell.cell_contents))
    return values


def assert_own_code(fn) -> None:
    """Fail if ``fn`` calls mfbook: the exercise is to write it, not to import it.

    Looks at what the function's code uses: the global names (of the function and of the
    functions and lambdas nested in it), the modules it imports inside its body, its default
    arguments and closure, and, the same way, the functions of the student's own module it calls
    (a helper that wraps a function of the package fails too). The model classes of ``mfbook.nn``
    (for ``isinstance`` checks and copies) are allowed.
    """
    todo, seen = [(fn, [])], set()
    while todo:
        f, path = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        through = f" (through {' -> '.join(path)})" if path else ""
        used = []  # (name, value) of the globals, defaults and closure cells f uses
        for code in _code_objects(f.__code__):
            for name in code.co_names:
                if _PACKAGE.match(name):  # import mfbook.x / from mfbook.x import y, in the body
                    raise AssertionError(
                        f"{fn.__name__} imports {name}{through}: write it yourself"
                    )
                if name in f.__globals__:
                    used.append((name, f.__globals__[name]))
            for const in code.co_consts:  # __import__("mfbook.x"), importlib.import_module(...)
                if isinstance(const, str) and _PACKAGE_NAME.fullmatch(const):
                    raise AssertionError(
                        f"{fn.__name__} names the module {const!r}{through}: write it yourself"
                    )
        for name, obj in used + _bound_values(f):
            module = _package_module(obj)
            if module:
                raise AssertionError(
                    f"{fn.__name__} uses {name} from {module}{through}: write it yourself"
                )
            own = inspect.isfunction(obj) and (
                obj.__globals__ is f.__globals__ or obj.__module__ == fn.__module__
            )
            if own and obj not in seen:  # a helper of the student's: look inside it too
                todo.append((obj, [*path, obj.__name__]))
