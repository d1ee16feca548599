"""Small experiments on the real model that a lesson shows: what LoRA's rank, DoRA and rsLoRA
cost and buy for the same short training budget (lesson 03).

Each variant trains the profile's model from the same start, on the same examples in the same
order, for the same number of steps; then it answers the same held-out questions.
``scripts/rank_experiment.py`` runs it and keeps the numbers in ``benchmarks/results/``; lesson
03 shows them, and runs it again when its ``rank_experiment`` parameter is true.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from qdlib.config import Config
from qdlib.figures import both, subplots
from qdlib.inference import generate, generation_settings
from qdlib.lora import trainable_report
from qdlib.metrics import score, summarize
from qdlib.model import load_tokenizer
from qdlib.prompts import tokenize_splits
from qdlib.splits import prepare_splits
from qdlib.train import setup

VARIANTS: dict[str, dict[str, Any]] = {
    "r=4": {"r": 4, "alpha": 8},
    "r=16": {"r": 16, "alpha": 32},
    "r=64": {"r": 64, "alpha": 128},
    "r=16, rsLoRA": {"r": 16, "alpha": 32, "use_rslora": True},
    "r=16, DoRA": {"r": 16, "alpha": 32, "use_dora": True},
}


def variant_config(cfg: Config, lora: dict[str, Any], steps: int) -> Config:
    """The profile with another ``lora`` section and a fixed number of steps, saving nothing,
    on the mix alone (no source finishes a run this short)."""
    training = dataclasses.replace(cfg.training, max_steps=steps, logging_steps=1,
                                   save_steps=10**6, eval_steps=None)  # fmt: skip
    mixed = [dataclasses.replace(src, finish_fraction=0.0) for src in cfg.data.sources]
    return dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, **lora), training=training,
                               data=dataclasses.replace(cfg.data, sources=mixed))  # fmt: skip


def train_variant(cfg: Config, tokenizer: Any, tokenized: Any) -> tuple[Any, dict[str, Any]]:
    """One variant, from the base model: the trained model and what it cost."""
    with tempfile.TemporaryDirectory() as out:
        trainer = setup(cfg, tokenizer, tokenized, Path(out))
        model = trainer.model
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    report = trainable_report(model)
    return model, {
        "trainable": report.trainable,
        "trainable_share": report.share,
        "seconds_per_step": seconds / trainer.state.global_step,
        "loss_first": losses[0],
        "loss_last": sum(losses[-3:]) / len(losses[-3:]),
    }


def rank_experiment(
    cfg: Config, steps: int = 24, questions: int = 16, variants: dict | None = None
) -> list[dict[str, Any]]:
    """Train each variant for ``steps`` steps and score it on ``questions`` held-out questions."""
    splits = prepare_splits(cfg)
    tokenizer = load_tokenizer(cfg)
    needed = steps * cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    held_out = splits.eval[:questions]
    tokenized = tokenize_splits(splits.train[:needed], held_out, tokenizer,
                                cfg.data.max_seq_length, cfg.data.language)  # fmt: skip
    seen = [r["question"] for r in splits.train]
    results = []
    for name, lora in (variants or VARIANTS).items():
        vcfg = variant_config(cfg, lora, steps)
        model, cost = train_variant(vcfg, tokenizer, tokenized)
        gens = generate(model, tokenizer, [r["question"] for r in held_out], progress=False,
                        **generation_settings(vcfg))  # fmt: skip
        m = summarize(score(held_out, gens, seen))
        results.append({"variant": name, **lora, **cost,
                        **{k: m[k] for k in ("format_valid", "step_count_correct", "exact_match",
                                             "content_recall")},
                        "questions": [r["question"] for r in held_out],
                        "answers": [g.text for g in gens]})  # fmt: skip
    return results


def disagreements(results: list[dict[str, Any]], limit: int = 2) -> list[dict[str, Any]]:
    """Up to ``limit`` held-out questions the variants answered differently (else the first one).

    Each is ``{"question": ..., "answers": {variant: answer}}``: where rank or method changed
    what the model writes, not only its numbers.
    """
    questions = results[0]["questions"]
    differ = [i for i in range(len(questions)) if len({r["answers"][i] for r in results}) > 1]
    return [
        {"question": questions[i], "answers": {r["variant"]: r["answers"][i] for r in results}}
        for i in (differ or [0])[:limit]
    ]


def rank_table(results: list[dict[str, Any]]) -> str:
    """The experiment as a Markdown table, one row per variant."""
    head = ("| variant | trainable values | share | s/step | loss first → last | format | "
            "steps right | exact match |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['trainable']:,} | {r['trainable_share']:.2%} "
            f"| {r['seconds_per_step']:.2f} | {r['loss_first']:.2f} → {r['loss_last']:.3f} "
            f"| {r['format_valid']:.2f} | {r['step_count_correct']:.2f} | {r['exact_match']:.2f} |"
        )
    return "\n".join(lines)


def plot_rank_experiment(results: list[dict[str, Any]]) -> Any:
    """Four bars per variant: trainable share, time per step, final loss, exact match."""
    names = [r["variant"] for r in results]
    panels = [("trainable_share", both("trainable share", "학습하는 매개변수 비율")),
              ("seconds_per_step", both("seconds per step", "스텝당 초")),
              ("loss_last", both("loss at the end", "마지막 손실")),
              ("exact_match", both("exact match", "완전 일치"))]  # fmt: skip
    fig, axes = subplots(1, 4, figsize=(13, 3))
    for ax, (key, title) in zip(axes, panels, strict=True):
        ax.bar(names, [r[key] for r in results], color="#4C72B0")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=35, labelsize=8)
    fig.tight_layout()
    return fig
