"""Command line: ``python -m mfbook train | reproduce | data | kernels | assign`` (``--help``)."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from mfbook import __version__
from mfbook._lock import FolderLocked, folder_lock
from mfbook.checkpoint import CheckpointError
from mfbook.io import atomic_write, refuse_symlink
from mfbook.reproduce import names
from mfbook.train import MAX_SEED, PRESETS, resolve_device


def write_history(folder, history: dict) -> Path:
    """Write a run's ``history.json`` into ``folder`` (atomically; a symbolic link is refused)."""
    return atomic_write(Path(folder) / "history.json", json.dumps(history, indent=1) + "\n")


class _Parser(argparse.ArgumentParser):
    """argparse, with a user error as one line on stderr (naming the argument), status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help for usage)\n")


def _seed(text: str) -> int:
    """--seed: a whole number in [0, MAX_SEED]."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_SEED}: {text!r}")
    return value


def _positive(text: str) -> int:
    """--epochs: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number: {text!r}")
    return value


def _device(text: str) -> str:
    """--device: auto, cpu, cuda or cuda:N, available on this machine."""
    try:
        kind = resolve_device(text).type
    except RuntimeError:  # torch.device of an unknown name
        kind = None
    except ValueError as err:  # a GPU that is not there
        raise argparse.ArgumentTypeError(str(err)) from None
    if kind not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _folder(text: str) -> Path:
    """--out: a folder to write, existing or not (never an existing file, nor below one)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    path = Path(text)
    for above in (path, *path.parents):
        if above.exists() and not above.is_dir():
            raise argparse.ArgumentTypeError(f"{above} is an existing file, not a folder")
    return path


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mfbook", description=__doc__)
    p.add_argument("--version", action="version", version=f"mfbook {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one preset with one seed, checkpointing every epoch")
    t.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument(
        "--device", type=_device, default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1"
    )
    t.add_argument("--epochs", type=_positive, default=None, help="override the preset's epochs")
    t.add_argument("--out", type=_folder, default=None, help="folder for checkpoint.pt etc.")
    t.add_argument(
        "--no-resume", action="store_true", help="start afresh even if a checkpoint exists"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("reproduce", help="produce a stored result the chapters load")
    r.add_argument("name", choices=names())
    r.add_argument("--force", action="store_true", help="recompute even if a current result exists")
    r.add_argument("--device", type=_device, default="auto")
    r.add_argument("--results", default=None, help="results folder (default book/results)")
    r.add_argument("--quiet", action="store_true")

    d = sub.add_parser("data", help="fetch/verify MNIST into the local cache")
    d.add_argument("--root", default=None, help="cache folder (default $MFBOOK_DATA or ~/.cache)")

    k = sub.add_parser("kernels", help="compile the fused CPU kernels now (else on first use)")
    k.add_argument("--force", action="store_true", help="compile again even if cached")

    a = sub.add_parser("assign", help="course assignments: student versions, grading, nbgrader")
    a_sub = a.add_subparsers(dest="assign_command", required=True)
    a_sub.add_parser("student", help="regenerate book/assignments/*.ipynb from the masters")
    g = a_sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<assignment>.ipynb into a CSV")
    g.add_argument("submissions", help="folder with one subfolder of notebooks per student")
    g.add_argument("--out", default="grades.csv", help="the CSV to write (default grades.csv)")
    g.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    g.add_argument("--jobs", type=int, default=1, help="notebooks graded at a time (default 1)")
    g.add_argument(
        "--notebook-timeout",
        type=float,
        default=600,
        help="seconds per notebook, all its cells together (default 600)",
    )
    g.add_argument(
        "--keep-executed",
        metavar="DIR",
        default=None,
        help="keep the executed notebooks as DIR/<student>/<assignment>.ipynb",
    )
    n = a_sub.add_parser(
        "nbgrader-course", help="lay out an nbgrader course folder from the masters"
    )
    n.add_argument("folder", help="the course folder (source/ and nbgrader_config.py go there)")
    return p


def _train(args) -> int:
    """``train``: one run in its --out folder, which it locks (:mod:`mfbook._lock`)."""
    from mfbook.train import preset, train

    config = preset(args.preset)
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    out = args.out or Path(f"runs/{args.preset}-seed{args.seed}")
    try:
        for name in ("history.json", "checkpoint.pt"):  # refused before training, not after
            refuse_symlink(out / name)
        with folder_lock(out):
            result = train(
                config,
                device=args.device,
                progress=not args.quiet,
                seed=args.seed,
                checkpoint=out / "checkpoint.pt",
                resume=not args.no_resume,
            )
            write_history(out, result.history)
    except (FolderLocked, CheckpointError) as err:  # another run there; a checkpoint not ours
        hint = " (--no-resume starts afresh)" if isinstance(err, CheckpointError) else ""
        first = str(err).splitlines()[0]  # torch's reasons may go on for lines
        print(f"python -m mfbook train: error: {first}{hint}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        print(f"python -m mfbook train: error: argument --out: {err}", file=sys.stderr)
        return 2
    final = {k: v[-1] for k, v in result.history.items() if k.startswith("test_error")}
    print(json.dumps({"out": str(out), "final": final}))
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    elif args.command == "reproduce":
        from mfbook.reproduce import reproduce

        s = reproduce(
            args.name,
            force=args.force,
            device=args.device,
            root=args.results,
            progress=not args.quiet,
        )
        keys = ("final_mean", "final_std", "fractions", "seconds")
        print(json.dumps({"name": args.name, **{k: s[k] for k in keys if k in s}}))
    elif args.command == "data":
        from mfbook.data import prepare_mnist

        print(prepare_mnist(root=args.root))
    elif args.command == "kernels":
        from mfbook.fast import kernels

        try:
            print(kernels.build(force=args.force))
        except (RuntimeError, OSError) as err:  # no compiler, or an unwritable cache folder
            print(f"not built: {err}", file=sys.stderr)
            return 1
        print(kernels.status())
    elif args.command == "assign":
        from mfbook import assignments

        if args.assign_command == "student":
            for path in assignments.generate_all():
                print(path.relative_to(assignments.ROOT))
        elif args.assign_command == "nbgrader-course":
            from mfbook._nbgrader_course import nbgrader_course

            for path in nbgrader_course(args.folder):
                print(path)
        else:
            rows = assignments.grade_folder(
                args.submissions,
                csv_path=args.out,
                timeout=args.timeout,
                jobs=args.jobs,
                notebook_timeout=args.notebook_timeout,
                keep_executed=args.keep_executed,
            )
            for row in rows:
                print(
                    f"{row['student']:<20} {row['assignment']:<24} {row['total']:g}/{row['max']:g}"
                )
            print(f"wrote {args.out}")
            errors = [row["error"] for row in rows if row["error"]]
            for error in errors:
                print(f"error: {error}", file=sys.stderr)
            if errors:  # the table is written; the exit status says it needs a look
                print(f"{len(errors)} notebook(s) could not be graded in full", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
