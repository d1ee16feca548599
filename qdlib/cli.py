"""The ``qd`` command: run the course headlessly.

qd run --profile cpu_tiny
qd run --profile rtx4060 --run-dir runs/first -p training.epochs 1 -p data.train_file my.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qdlib.config import ConfigError, load_config, merge_overrides, parse_override
from qdlib.runs import LESSONS, RunDirError, run_course


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qd", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks 01-06 with papermill into a run directory")
    run.add_argument("--profile", default="cpu_tiny", help="a name in configs/ or a YAML path")
    run.add_argument("--run-dir", type=Path, help="default: runs/<profile>-<date>-<time>")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override one setting, e.g. -p training.max_steps 50 (repeatable)",
    )
    run.add_argument("--overwrite", action="store_true", help="reuse a run directory that exists")
    run.add_argument(
        "--only", nargs="+", choices=LESSONS, help="run these lessons only (in course order)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = merge_overrides(*(parse_override(k, v) for k, v in args.param))
        cfg = load_config(args.profile, **overrides)  # fail here, before any notebook starts
        lessons = tuple(x for x in LESSONS if x in args.only) if args.only else LESSONS
        run_dir = run_course(
            args.profile, args.run_dir, overrides, overwrite=args.overwrite, lessons=lessons
        )
    except (ConfigError, RunDirError) as exc:
        print(f"qd: {exc}", file=sys.stderr)
        return 2
    print(f"run finished ({cfg.profile}): {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
