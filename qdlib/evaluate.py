"""Lesson 05: generate decompositions for held-out questions, parse them, and score them.

Generation is batched with left padding (so every prompt ends where generation starts), greedy by
default, and stops at the EOS. Outputs that are not a numbered list count as format failures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from qdlib.data import prompt_ids
from qdlib.metrics import aggregate, score_example
from qdlib.runs import atomic_write_json, atomic_write_text

_NUMBERED = re.compile(r"^\s*(\d+)\s*[.)]\s*(.*\S)\s*$")


@dataclass
class Generation:
    """One decoded answer: its text, whether it stopped by itself (EOS), and its token ids."""

    text: str
    stopped: bool
    ids: list[int]


def parse_sub_questions(text: str) -> list[str] | None:
    """``"1. A?\\n2. B?"`` -> ``["A?", "B?"]``; ``None`` unless a numbered list 1, 2, 3..."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    items = []
    for expected, line in enumerate(lines, start=1):
        m = _NUMBERED.match(line)
        if not m or int(m.group(1)) != expected:
            return None
        items.append(m.group(2))
    return items or None


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    batch_size: int = 16,
    max_new_tokens: int = 96,
    language: str = "auto",
    progress: bool = True,
) -> list[Generation]:
    """Greedy decompositions for ``questions``, in batches of similar prompt length."""
    from transformers import GenerationConfig

    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.eval()
    on = next(model.parameters()).device
    prompts = [prompt_ids(q, tokenizer, language) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: dict[int, Generation] = {}
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generating", disable=not progress):
        width = max(len(prompts[i]) for i in batch)
        ids = [[tokenizer.pad_token_id] * (width - len(prompts[i])) + prompts[i] for i in batch]
        mask = [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch]
        out = model.generate(
            input_ids=torch.tensor(ids, device=on),
            attention_mask=torch.tensor(mask, device=on),
            generation_config=gen_cfg,
        )
        for row, i in zip(out[:, width:].tolist(), batch, strict=True):
            results[i] = _decode(row, tokenizer)
    return [results[i] for i in range(len(questions))]


def _decode(new_ids: list[int], tokenizer: Any) -> Generation:
    eos = tokenizer.eos_token_id
    stopped = eos in new_ids
    kept = new_ids[: new_ids.index(eos)] if stopped else new_ids
    if not stopped:  # trailing padding after a stop is not part of the answer
        while kept and kept[-1] == tokenizer.pad_token_id:
            kept = kept[:-1]
    return Generation(tokenizer.decode(kept, skip_special_tokens=True), stopped, kept)


def score(records: list[dict[str, Any]], generations: list[Generation]) -> list[dict[str, Any]]:
    """Per-example predictions and scores for records and their generations."""
    rows = []
    for rec, gen in zip(records, generations, strict=True):
        pred = parse_sub_questions(gen.text)
        rows.append(
            {
                "question": rec["question"],
                "gold": rec["sub_questions"],
                "output": gen.text,
                "predicted": pred,
                "stopped": gen.stopped,
                "scores": score_example(rec["sub_questions"], pred, gen.stopped),
            }
        )
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return aggregate([r["scores"] for r in rows])


def compare_table(metrics: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per metric, one column per model."""
    names = list(metrics)
    keys = [k for k in next(iter(metrics.values())) if k != "n"]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{metrics[n][k]:.3f}" for n in names) + " |")
    lines.append("| examples | " + " | ".join(str(metrics[n]["n"]) for n in names) + " |")
    return "\n".join(lines)


def write_report(eval_dir: Any, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write ``metrics.json`` and ``predictions.jsonl`` (one line per question, all models)."""
    metrics = {name: summarize(r) for name, r in rows.items()}
    atomic_write_json(eval_dir / "metrics.json", metrics)
    names = list(rows)
    lines = []
    for i, first in enumerate(rows[names[0]]):
        line = {"question": first["question"], "gold": first["gold"]}
        for n in names:
            r = rows[n][i]
            line[n] = {k: r[k] for k in ("output", "predicted", "stopped", "scores")}
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    atomic_write_text(eval_dir / "predictions.jsonl", "".join(lines))
    return metrics


def plot_metrics(metrics: dict[str, dict[str, Any]]) -> Any:
    """Grouped bars of the 0-1 metrics, one colour per model."""
    from matplotlib.figure import Figure

    keys = ["format_valid", "step_count_correct", "exact_match"]
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    for j, (name, m) in enumerate(metrics.items()):
        xs = [i + j * width for i in range(len(keys))]
        ax.bar(xs, [m[k] for k in keys], width, label=name)
    ax.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(keys))], keys)
    ax.set(ylim=(0, 1.05), ylabel="share of examples", title="base vs tuned")
    ax.legend()
    fig.tight_layout()
    return fig
