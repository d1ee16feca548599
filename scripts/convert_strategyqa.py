"""Convert StrategyQA, as the authors' repository splits it, into ``data/strategyqa/*.jsonl``.

The source is https://github.com/eladsegal/strategyqa (MIT), the official code of "Did Aristotle
Use a Laptop?" (Geva et al., TACL 2021). Its ``data/strategyqa/train.json`` and ``dev.json`` are
the authors' 90%/10% random split of the official StrategyQA train set (the official test set has
no decompositions); ``dev.json`` is what their BART-Decomp model was validated on (SARI) and what
``data/strategyqa/generated/bart_decomp_dev_predictions.jsonl``, their published predictions,
decomposes.

Every file goes through qdlib's own converter, :func:`qdlib.sources.strategyqa`, so the records are
exactly what ``strategyqa:FILE`` gives in a profile: ``{"id": qid, "question", "sub_questions":
decomposition, "source": "strategyqa"}``, ``#k`` references kept. The predictions become records
of the same shape, plus ``predicted_by`` (they are a model's output, never gold, never trained on).

Usage (``--rev`` reads the files from git, so a mirror without a work tree does too)::

    git clone https://github.com/eladsegal/strategyqa.git /tmp/strategyqa
    python scripts/convert_strategyqa.py /tmp/strategyqa \\
        --rev 1ba1e97452e189569357876f2854b01357ffbe37

It refuses (exit code 1) when a row is skipped, when a dev question (or id) is also in train, or
when the predictions do not cover dev question by question.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdlib.data import DataError, LoadResult, normalize_question, read_utf8
from qdlib.files import BadLine, jsonl_lines, write_jsonl
from qdlib.sources import strategyqa

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "strategyqa"

# output file name -> the upstream file it is converted from
UPSTREAM = {
    "train.jsonl": "data/strategyqa/train.json",
    "dev.jsonl": "data/strategyqa/dev.json",
    "dev_bart_large_predictions.jsonl": (
        "data/strategyqa/generated/bart_decomp_dev_predictions.jsonl"
    ),
}
PREDICTED_BY = (
    "BART-Decomp (facebook/bart-large fine-tuned on train.jsonl): "
    "the StrategyQA authors' published dev predictions"
)


def question_key(text: str) -> str:
    """Case-folded, whitespace collapsed: the key two splits must not share."""
    return re.sub(r"\s+", " ", text.casefold()).strip()


def convert_split(path: Path) -> LoadResult:
    """A StrategyQA JSON list (``train.json``, ``dev.json``) through qdlib's converter."""
    return strategyqa(Path(path))


def convert_predictions(path: Path) -> LoadResult:
    """The authors' BART-Decomp predictions JSONL (``{qid, question, decomposition,
    gold_decomposition, loss}`` a line) as records labelled ``predicted_by``.

    Each line's predicted ``decomposition`` goes through the same converter as the gold files
    (written as a StrategyQA JSON list of ``{qid, question, decomposition}``), so its steps are
    the model's, verbatim; the gold steps and the loss are left out (dev.jsonl has the gold).
    """
    rows: list[dict[str, Any]] = []
    for lineno, item in jsonl_lines(read_utf8(Path(path))):
        if isinstance(item, BadLine) or not isinstance(item, dict):
            raise DataError(f"{path}, line {lineno}: not a prediction object.")
        rows.append({k: item[k] for k in ("qid", "question", "decomposition") if k in item})
    with tempfile.TemporaryDirectory(prefix="qdlib-") as tmp:
        as_list = Path(tmp) / "bart_decomp_dev_predictions.json"
        as_list.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        result = strategyqa(as_list, gold=False)  # a model's output: its #k are as written
    result.source = str(path)
    result.records = [rec | {"predicted_by": PREDICTED_BY} for rec in result.records]
    return result


def read_upstream(repo: Path, path: str, rev: str | None) -> bytes:
    """One upstream file: from git at ``rev``, or from ``repo``'s work tree."""
    if rev is None:
        return (repo / path).read_bytes()
    done = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"], capture_output=True)
    if done.returncode:
        raise DataError(f"{repo}: git show {rev}:{path}: {done.stderr.decode().strip()}")
    return done.stdout


def problems(converted: dict[str, LoadResult]) -> list[str]:
    """Why the converted files must not be written: skips, dev in train, predictions off dev."""
    out = [
        f"{name}: {len(r.skipped)} rows skipped ({r.skipped[0].where}: {r.skipped[0].reason})"
        for name, r in converted.items()
        if r.skipped
    ]
    train, dev = converted["train.jsonl"].records, converted["dev.jsonl"].records
    train_keys = {question_key(r["question"]) for r in train}
    train_norm = {normalize_question(r["question"]) for r in train}
    train_ids = {r["id"] for r in train}
    for rec in dev:
        if question_key(rec["question"]) in train_keys or (
            normalize_question(rec["question"]) in train_norm
        ):
            out.append(f"dev question also in train: {rec['question']!r}")
        if rec["id"] in train_ids:
            out.append(f"dev id also in train: {rec['id']}")
    preds = converted.get("dev_bart_large_predictions.jsonl")
    if preds is not None and [(r["id"], r["question"]) for r in preds.records] != [
        (r["id"], r["question"]) for r in dev
    ]:
        out.append("the predictions are not dev's questions, in dev's order")
    return out


def convert(upstream: Path, out: Path, rev: str | None = None) -> dict[str, LoadResult]:
    """Convert the upstream files and write ``out/*.jsonl``; nothing is written on a problem."""
    converted: dict[str, LoadResult] = {}
    with tempfile.TemporaryDirectory(prefix="qdlib-") as tmp:
        for name, path in UPSTREAM.items():
            raw = Path(tmp) / Path(path).name
            raw.write_bytes(read_upstream(Path(upstream), path, rev))
            convert_file = convert_predictions if "predictions" in name else convert_split
            converted[name] = convert_file(raw)
    found = problems(converted)
    if found:
        raise DataError("not written:\n  " + "\n  ".join(found))
    out.mkdir(parents=True, exist_ok=True)
    for name, result in converted.items():
        write_jsonl(out / name, result.records)
    return converted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", type=Path, help="a clone of eladsegal/strategyqa")
    parser.add_argument("--rev", help="read the files at this commit (git show) instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: data/strategyqa")
    args = parser.parse_args(argv)
    try:
        converted = convert(args.upstream, args.out, args.rev)
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, result in converted.items():
        n_in = len(result.records) + len(result.skipped)
        print(f"{args.out / name}: {n_in} in, {len(result.records)} out, "
              f"{len(result.skipped)} skipped (from {UPSTREAM[name]})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
