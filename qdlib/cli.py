"""The ``qd`` command: the course and its tools from a terminal.

qd run --profile cpu_small
qd run --profile rtx4060 --run-dir runs/first -p training.epochs 1 -p data.train_file my.jsonl
qd train --profile runpod --run-dir runs/big [--resume]   (also under torchrun / accelerate launch)
qd eval --run-dir runs/first [--split eval | --split my_questions.jsonl]
qd data check strategyqa:data/strategyqa_train.json --eval data/my_eval.jsonl
qd decompose --model runs/first/export/merged "Which city has more people, Seoul or Busan?"
qd decompose --model runs/first/export/adapter --file questions.txt --format json
qd decompose --model runs/first/export/merged --file questions.txt --out answers.jsonl
qd estimate --profile rtx4060
qd doctor [--json]

Each command imports what it needs when it runs (inside its function), so that ``qd --help`` and
``qd data check`` start without loading torch and transformers.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from qdlib.config import (
    ConfigError,
    bounded,
    load_config,
    merge_overrides,
    parse_override,
    setting_type,
)
from qdlib.data import DataError, shown, text_problem
from qdlib.files import atomic_write_json, escaped, write_jsonl
from qdlib.runs import LESSONS, RunDirError, RunInterrupted, check_run_dir, run_lock
from qdlib.sources import FORMATS

PROFILE_HELP = "a name in configs/ or a YAML path"
PATH_SETTINGS = (
    "data.train_file", "data.eval_file", "evaluation.test_file", "evaluation.test_predictions",
    "export.llama_cpp_dir",
)  # fmt: skip
DATA_SUFFIXES = (".json", ".jsonl", ".csv")


def from_here(spec: str) -> str:
    """A data spec given on the command line, its relative path taken from the working
    directory, as every command-line tool does (paths inside a profile are the project's).
    A hub id (``user/name``, no such file here) is left as it is."""
    fmt, sep, rest = spec.partition(":")
    prefix, target = (f"{fmt}:", rest) if sep and fmt in FORMATS else ("", spec)
    path = Path(target).expanduser()
    if path.is_absolute() or not (path.exists() or path.suffix.lower() in DATA_SUFFIXES):
        return spec
    return prefix + str(Path.cwd() / path)


def overrides_from_flags(pairs: list[list[str]]) -> dict:
    """The ``-p KEY VALUE`` flags as one override mapping; path settings from the working dir."""
    overrides = merge_overrides(*(parse_override(k, v) for k, v in pairs))
    for key in PATH_SETTINGS:
        section, name = key.split(".")
        value = overrides.get(section, {}).get(name)
        if isinstance(value, str):
            overrides[section][name] = from_here(value)
    return overrides


# ---------------------------------------------------------------- qd run, qd train


def profile_of(args: argparse.Namespace) -> str:
    """The profile a run uses: ``--profile``, or, with ``--resume``, the run's own config.yaml
    (the run continues as it was set up; ``-p`` may change only what may change mid-run)."""
    if args.resume and args.run_dir:
        check_run_dir(args.run_dir, resume=True)
        return str(Path(args.run_dir).absolute() / "config.yaml")
    return args.profile


def run_command(args: argparse.Namespace) -> int:
    """``qd run``: validate the settings first, then execute the lessons with papermill."""
    from qdlib.course import run_course

    overrides = overrides_from_flags(args.param)
    args.profile = profile_of(args)
    cfg = load_config(args.profile, overrides_from="-p", **overrides)  # before any notebook
    lessons = tuple(x for x in LESSONS if x in args.only) if args.only else LESSONS
    run_dir = run_course(
        args.profile,
        args.run_dir,
        overrides,
        overwrite=args.overwrite,
        lessons=lessons,
        resume=args.resume,
    )
    print(escaped(f"run finished ({cfg.profile}): {run_dir}"))
    return 0


def train_command(args: argparse.Namespace) -> int:
    """``qd train``: prepare the data and train the adapter into a run directory, no notebooks."""
    from qdlib.course import train_run

    overrides = overrides_from_flags(args.param)
    cfg = load_config(profile_of(args), overrides_from="-p", **overrides)
    train_run(cfg, args.run_dir, resume=args.resume, overwrite=args.overwrite)
    return 0


def add_run_and_train(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="execute notebooks 01-06 with papermill into a run directory")
    run.add_argument(
        "--only", nargs="+", choices=LESSONS, help="run these lessons only (in course order)"
    )
    run.set_defaults(func=run_command)
    train = sub.add_parser(
        "train",
        help="lessons 01 + 04 without notebooks; runs under torchrun / accelerate launch too",
    )
    train.set_defaults(func=train_command)
    for cmd in (run, train):
        cmd.add_argument(
            "--profile", default="cpu_small", help=PROFILE_HELP + " (--resume: the run's own)"
        )
        cmd.add_argument("--run-dir", type=Path, help="default: runs/<profile>-<date>-<time>")
        cmd.add_argument(
            "-p",
            "--param",
            nargs=2,
            action="append",
            default=[],
            metavar=("KEY", "VALUE"),
            help="override one setting, e.g. -p training.max_steps 50 (repeatable)",
        )
        keep = cmd.add_mutually_exclusive_group()
        keep.add_argument(
            "--resume", action="store_true", help="continue the run in --run-dir (checkpoints)"
        )
        keep.add_argument("--overwrite", action="store_true", help="replace a run that exists")


# ---------------------------------------------------------------- qd eval


def evaluate_command(args: argparse.Namespace) -> int:
    """``qd eval``: the run's config and adapter, on its eval split or on a file of records."""
    from qdlib.data import load_records
    from qdlib.evaluate import compare_table, split_report_dir
    from qdlib.runs import existing_run, live_writer, run_lock
    from qdlib.scorecard import evaluate_run, scorecard_table

    run_dir, split = existing_run(args.run_dir), args.split
    cfg = load_config(run_dir / "config.yaml")
    if split == "eval":
        source, out_dir = run_dir / "data/eval.jsonl", run_dir / "eval"
    else:
        source, out_dir = Path(split), split_report_dir(run_dir, Path(split))
    if out_dir.is_symlink():  # refused before an hour of generating, not after
        raise RunDirError(f"{out_dir} is a symbolic link; qdlib writes its reports inside the "
                          "run. Remove the link.")  # fmt: skip
    records = load_records(source).records[: cfg.evaluation.max_samples]
    test = None if split == "eval" else []  # the profile's test file beside the run's own split
    with run_lock(run_dir):  # one writer: not beside a --resume, nor another qd eval
        if writer := live_writer(run_dir):
            raise RunDirError(f"{run_dir} is being written by {writer}; evaluate it after.")
        metrics = evaluate_run(cfg, run_dir, records, out_dir, test)
    print(compare_table({name: metrics[name] for name in ("base", "tuned")}))
    if metrics.get("scorecard"):
        print(scorecard_table(metrics["scorecard"]))
    print(f"report written to {out_dir}")
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="score base vs tuned on a run's eval split or a file")
    ev.add_argument("--run-dir", type=Path, required=True, help="a run with adapter/")
    ev.add_argument("--split", default="eval", help="'eval' (the run's split) or a .json/.jsonl")
    ev.set_defaults(func=evaluate_command)


# ---------------------------------------------------------------- qd data check


def data_check_command(args: argparse.Namespace) -> int:
    """``qd data check``: print the data report; 1 when records are invalid or eval leaks."""
    from qdlib.config import PROJECT_ROOT
    from qdlib.datacheck import check_data
    from qdlib.files import atomic_write_json

    cfg = load_config(args.profile)
    tokenizer = None
    if not args.no_tokenizer:
        from qdlib.model import load_tokenizer

        try:
            tokenizer = load_tokenizer(cfg)
        except OSError as exc:  # a hub tokenizer while offline: report without token lengths
            print(f"note: no token lengths ({cfg.model.name}: {exc})", file=sys.stderr)
    held_out = from_here(args.eval) if args.eval else None
    report = check_data(
        from_here(args.source), held_out, tokenizer, cfg.data.max_seq_length, args.refs,
        root=PROJECT_ROOT,
    )  # fmt: skip
    print(report)
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0 if report.ok else 1


def add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="data tools").add_subparsers(
        dest="data_command", required=True
    )
    check = data.add_parser("check", help="report on a data file or source; exit 1 on errors")
    check.add_argument("source", help="FILE, HUB_ID or FORMAT:FILE (strategyqa, break, musique)")
    check.add_argument("--eval", help="held-out data to check for train/eval leakage")
    check.add_argument("--profile", default="cpu_small", help="tokenizer and max_seq_length")
    check.add_argument("--refs", choices=("keep", "words"), default="keep")
    check.add_argument("--no-tokenizer", action="store_true", help="skip token lengths")
    check.add_argument("--json", type=Path, help="also write the report as JSON here")
    check.set_defaults(func=data_check_command)


# ---------------------------------------------------------------- qd estimate, qd doctor


def estimate_command(args: argparse.Namespace) -> int:
    """``qd estimate``: the memory table and verdict for a profile."""
    from qdlib.memory import estimate

    card = args.card_gib * 1024 if args.card_gib else None
    e = estimate(load_config(args.profile), args.model, args.seq_len, args.batch, card)
    print(e.table())
    return 0


def doctor_command(args: argparse.Namespace) -> int:
    """``qd doctor``: check Python, torch, GPU, bitsandbytes, disk, RAM, hub and packages; 1 when
    a check fails (warn does not)."""
    from qdlib.doctor import report, run_checks, to_dict

    checks = run_checks()
    print(json.dumps(to_dict(checks), indent=2) if args.json else report(checks))
    return 0 if to_dict(checks)["ok"] else 1


def add_estimate_and_doctor(sub: argparse._SubParsersAction) -> None:
    est = sub.add_parser("estimate", help="will this profile fit the GPU? (memory estimate)")
    est.add_argument("--profile", default="rtx4060", help=PROFILE_HELP)
    est.add_argument("--model", help="another model id (architecture shipped, or AutoConfig)")
    est.add_argument("--seq-len", type=setting_type("data.max_seq_length"))
    est.add_argument("--batch", type=setting_type("training.batch_size"))
    est.add_argument(
        "--card-gib", type=bounded(float, 0.5, 4096.0), help="GPU memory; default: the profile's"
    )
    est.set_defaults(func=estimate_command)
    doc = sub.add_parser("doctor", help="is this machine ready? checks with fixes; 1 on a fail")
    doc.add_argument("--json", action="store_true", help="print the checks as JSON")
    doc.set_defaults(func=doctor_command)


# ---------------------------------------------------------------- qd decompose


def decompose_command(args: argparse.Namespace) -> int:
    """``qd decompose``: print each question's sub-questions as text or JSON, prompted and decoded
    as the profile says (its instruction language, ``evaluation.max_new_tokens``)."""
    from qdlib.inference import decompose, generation_settings, load_exported, read_questions

    questions = list(args.questions) + (read_questions(args.file) if args.file else [])
    if not questions:
        print("qd: give questions as arguments or --file.", file=sys.stderr)
        return 2
    for i, question in enumerate(questions, start=1):
        problem = text_problem(question, f"question {i}")
        if problem:
            raise DataError(problem)
    if args.out:
        check_out_file(args.out, args.overwrite)
    cfg = load_config(args.profile)
    settings = generation_settings(cfg) | {"batch_size": args.batch_size}
    if args.max_new_tokens:
        settings["max_new_tokens"] = args.max_new_tokens
    with run_lock(args.out) if args.out else nullcontext():  # one writer of --out at a time
        model, tokenizer = load_exported(args.model, trust_remote_code=cfg.model.trust_remote_code)
        results = decompose(model, tokenizer, questions, progress=len(questions) > args.batch_size,
                            **settings)  # fmt: skip
        if args.out:
            check_out_file(args.out, args.overwrite)  # nothing appeared there meanwhile
            write = write_jsonl if args.out.suffix == ".jsonl" else atomic_write_json
            write(args.out, results)
            print(escaped(f"{len(results)} decompositions written to {args.out}"))
            return 0
    if args.format == "json":
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    for r in results:
        print(f"Q: {escaped(r['question'])}")
        steps = r["sub_questions"]
        lines = (
            [f"  {i}. {escaped(s)}" for i, s in enumerate(steps, 1)]
            if steps
            else [f"  (not a list of sub-questions) {shown(r['output'], 200)}"]
        )
        print("\n".join(lines) + "\n")
    return 0


def check_out_file(path: Path, overwrite: bool) -> None:
    """``qd decompose --out``: a ``.jsonl`` or ``.json`` file to write, refused before any model
    is loaded if it is not one, or if a file is there already and ``--overwrite`` was not given
    (written atomically at the end: a failed or interrupted run leaves the old file whole)."""
    if path.suffix not in (".jsonl", ".json"):
        raise DataError(escaped(f"--out {path}: use .jsonl (one result per line) or .json."))
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DataError(escaped(f"--out {path}: not a regular file; nothing was written."))
    if path.exists() and not overwrite:
        raise DataError(escaped(f"--out {path} exists: choose another file, or add --overwrite."))
    if not path.parent.is_dir():
        raise DataError(escaped(f"--out {path}: the folder {path.parent} does not exist."))


def add_decompose(sub: argparse._SubParsersAction) -> None:
    dec = sub.add_parser("decompose", help="decompose questions with an exported model")
    dec.add_argument("--model", type=Path, required=True, help="export/merged or export/adapter")
    dec.add_argument("questions", nargs="*", help="questions (Korean or English)")
    dec.add_argument("--file", type=Path, help=".txt (one per line), .json or .jsonl")
    dec.add_argument("--format", choices=("text", "json"), default="text")
    dec.add_argument("--out", type=Path, help="write the results to this .jsonl or .json file")
    dec.add_argument("--overwrite", action="store_true", help="--out may replace its file")
    dec.add_argument(
        "--profile",
        default="cpu_small",
        help="the profile the model was trained with: its instruction language, "
        "max_new_tokens and model.trust_remote_code",
    )
    dec.add_argument("--batch-size", type=setting_type("evaluation.batch_size"), default=16)
    dec.add_argument(
        "--max-new-tokens",
        type=setting_type("evaluation.max_new_tokens"),
        help="default: profile's",
    )
    dec.set_defaults(func=decompose_command)


# ---------------------------------------------------------------- the command line


def parser() -> argparse.ArgumentParser:
    """``qd`` and its commands (each ``add_*`` function above builds one or two)."""
    top = argparse.ArgumentParser(prog="qd", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for add in (add_run_and_train, add_eval, add_data, add_decompose, add_estimate_and_doctor):
        add(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one ``qd`` command; a problem with the user's input or files exits 2 with its message
    (escaped: a path or a name from the user never sends control bytes to the terminal). On a
    console that cannot show a character (Korean on cp1252), it is written as an escape."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except RunInterrupted as exc:  # what the run directory kept, and how to continue
        print(f"qd: {escaped(str(exc))}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(
            "qd: interrupted; every file qd writes is written whole or not at all.", file=sys.stderr
        )
        return 130
    except (ConfigError, DataError, RunDirError, OSError) as exc:
        print(f"qd: {escaped(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
