"""Real questions (StrategyQA dev, 229): every baseline and the tuned model, side by side.

    .venv/bin/python benchmarks/real_questions.py [--profile cpu_small] [--limit N]
                                                  [--run RUN_DIR] [--no-model] [--out DIR]

One table, one row per system, each metric with its n and a 95% bootstrap interval:

- BART-large: the StrategyQA authors' published dev predictions (official SARI 0.556);
- rule baseline: the nearest StrategyQA train question's sub-questions, differing words swapped
  (no model, no learning; :func:`qdlib.baselines.rule_decompose`);
- untuned: the profile's base model with the course's prompt;
- few-shot: the same model with 3 worked examples from StrategyQA train before the question,
  drawn for each question;
- tuned (with ``--run``): the run's base model with its adapter, as ``qd eval`` loads it.

Every system is scored by :func:`qdlib.evaluate.score`, with StrategyQA train as the reference
questions for content recall. ``--no-model`` keeps the two that need no model (fast). Writes
``real_questions.{md,json}`` in ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from qdlib.baselines import (
    FewShotPrompt,
    ci_table,
    few_shot_prompt,
    published_generations,
    rule_baseline,
    summary_with_ci,
)
from qdlib.config import PROJECT_ROOT, Config, load_config
from qdlib.data import load_records
from qdlib.files import atomic_write_json, atomic_write_text
from qdlib.inference import Generation, generate
from qdlib.metrics import score
from qdlib.model import load_model, load_tokenizer, load_with_adapter
from qdlib.runs import existing_run

DATA = PROJECT_ROOT / "data" / "strategyqa"
DEV, TRAIN = DATA / "dev.jsonl", DATA / "train.jsonl"
BART = DATA / "dev_bart_large_predictions.jsonl"
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
KEYS = ("format_valid", "step_count_correct", "sari", "content_recall")
PUBLISHED_BART_SARI = 0.556  # the StrategyQA authors' README: BART-Decomp on dev
ABOUT = {
    "BART-large (published)": "the StrategyQA authors' dev predictions (bart-large tuned on train)",
    "rule baseline": "the nearest train question's sub-questions, differing words swapped",
    "untuned": "the profile's base model, the course's prompt",
    "few-shot (3)": "the same model, 3 worked examples from train before the question",
    "tuned": "the run's base model with its LoRA adapter (--run)",
}


def model_systems(
    cfg: Config, args: argparse.Namespace, questions: list[str], shots: FewShotPrompt
) -> dict[str, list[Generation]]:
    """The untuned model, its few-shot prompt (``shots``) and, with ``--run``, the tuned one."""
    tokenizer, model = load_tokenizer(cfg), load_model(cfg)
    settings = {"batch_size": cfg.evaluation.batch_size, "max_new_tokens": args.max_new_tokens}
    out = {
        "untuned": generate(model, tokenizer, questions, **settings),
        "few-shot (3)": generate(model, tokenizer, questions, prompt=shots, **settings),
    }
    if args.run:
        run_cfg = load_config(existing_run(args.run) / "config.yaml")
        tuned = load_with_adapter(run_cfg, args.run / "adapter")
        out["tuned"] = generate(tuned, load_tokenizer(run_cfg), questions, **settings)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu_small", help="the untuned model's profile")
    parser.add_argument("--limit", type=int, help="the first N dev questions only")
    parser.add_argument("--run", type=Path, help="also score this run's tuned adapter")
    parser.add_argument("--no-model", action="store_true", help="only BART and the rule baseline")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="gold has up to 5 steps")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    args = parser.parse_args(argv)
    if args.no_model and args.run:
        parser.error("--run needs the model: leave out --no-model")

    dev = load_records(DEV).records[: args.limit]
    train = load_records(TRAIN).records
    questions = [r["question"] for r in dev]
    cfg = load_config(args.profile)
    seed = cfg.seed
    shots = few_shot_prompt(train, questions, seed)
    start = time.perf_counter()
    systems = {
        "BART-large (published)": published_generations(dev, BART),
        "rule baseline": rule_baseline(questions, train),
    }
    if not args.no_model:
        systems |= model_systems(cfg, args, questions, shots)
    reference = [r["question"] for r in train]
    summaries = {
        name: summary_with_ci(score(dev, gens, reference), seed, KEYS, ci_below=math.inf)
        for name, gens in systems.items()
    }
    table = ci_table(summaries)
    result = {
        "data": str(DEV.relative_to(PROJECT_ROOT)),
        "questions": len(dev),
        "train_pool": len(train),
        "profile": None if args.no_model else args.profile,
        "model": None if args.no_model else cfg.model.name,
        "run": str(args.run) if args.run else None,
        "seed": seed,
        "few_shot_examples": None if args.no_model else [
            [ex["id"] for ex in shots.examples(q)] for q in questions
        ],  # the ids shown before each question
        "published_bart_sari": PUBLISHED_BART_SARI,
        "seconds": round(time.perf_counter() - start, 1),
        "systems": summaries,
    }
    notes = [
        f"# Real questions: StrategyQA dev ({len(dev)} questions)",
        "",
        "Mean [95% bootstrap interval] (n the metric applies to). Made by "
        f"`benchmarks/real_questions.py{' --no-model' if args.no_model else ''}`; training pool "
        f"for the rule baseline and the few-shot examples: StrategyQA train ({len(train)}).",
        f"Published SARI of BART-large on dev: {PUBLISHED_BART_SARI}."
        + ("" if args.no_model else f" Model: {cfg.model.name} (profile {args.profile})."),
        "",
        table,
        "",
        *(f"- {name}: {ABOUT[name]}" for name in summaries),
        "",
    ]
    print(table)
    atomic_write_json(args.out / "real_questions.json", result)
    atomic_write_text(args.out / "real_questions.md", "\n".join(notes))
    return result


if __name__ == "__main__":
    main()
