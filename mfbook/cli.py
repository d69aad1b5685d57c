"""Command line: ``python -m mfbook train | reproduce | data | kernels | assign`` (``--help``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mfbook.io import atomic_write
from mfbook.reproduce import names
from mfbook.train import PRESETS


def write_history(folder, history: dict) -> Path:
    """Write a run's ``history.json`` into ``folder`` (atomically; a symbolic link is refused)."""
    return atomic_write(Path(folder) / "history.json", json.dumps(history, indent=1) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mfbook", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one preset with one seed, checkpointing every epoch")
    t.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1")
    t.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    t.add_argument("--out", default=None, help="folder for checkpoint.pt and history.json")
    t.add_argument(
        "--no-resume", action="store_true", help="start afresh even if a checkpoint exists"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("reproduce", help="produce a stored result the chapters load")
    r.add_argument("name", choices=names())
    r.add_argument("--force", action="store_true", help="recompute even if a current result exists")
    r.add_argument("--device", default="auto")
    r.add_argument("--results", default=None, help="results folder (default book/results)")
    r.add_argument("--quiet", action="store_true")

    d = sub.add_parser("data", help="fetch/verify MNIST into the local cache")
    d.add_argument("--root", default=None, help="cache folder (default $MFBOOK_DATA or ~/.cache)")

    k = sub.add_parser("kernels", help="compile the fused CPU kernels now (else on first use)")
    k.add_argument("--force", action="store_true", help="compile again even if cached")

    a = sub.add_parser("assign", help="course assignments: student versions and grading")
    a_sub = a.add_subparsers(dest="assign_command", required=True)
    a_sub.add_parser("student", help="regenerate book/assignments/*.ipynb from the masters")
    g = a_sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<assignment>.ipynb into a CSV")
    g.add_argument("submissions", help="folder with one subfolder of notebooks per student")
    g.add_argument("--out", default="grades.csv", help="the CSV to write (default grades.csv)")
    g.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    g.add_argument("--jobs", type=int, default=1, help="notebooks graded at a time (default 1)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        from mfbook.train import preset, train

        config = preset(args.preset)
        if args.epochs is not None:
            config = config.replace(epochs=args.epochs)
        out = Path(args.out or f"runs/{args.preset}-seed{args.seed}")
        result = train(
            config,
            device=args.device,
            progress=not args.quiet,
            seed=args.seed,
            checkpoint=out / "checkpoint.pt",
            resume=not args.no_resume,
        )
        write_history(out, result.history)
        final = {k: v[-1] for k, v in result.history.items() if k.startswith("test_error")}
        print(json.dumps({"out": str(out), "final": final}))
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
        else:
            rows = assignments.grade_folder(
                args.submissions, csv_path=args.out, timeout=args.timeout, jobs=args.jobs
            )
            for row in rows:
                print(
                    f"{row['student']:<20} {row['assignment']:<24} {row['total']:g}/{row['max']:g}"
                )
            print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
