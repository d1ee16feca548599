"""Lesson 05: generate decompositions for held-out questions, parse them, and score them.

Generation is batched with left padding (so every prompt ends where generation starts), greedy by
default, and stops at the EOS. Outputs that are not a numbered list count as format failures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, TrainerCallback

from qdlib.data import detect_language, prompt_ids
from qdlib.io import (
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    save_figure,
)
from qdlib.metrics import aggregate, chrf, common_terms, sari_parts, sari_tokens, score_example

_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
_NUMBERED = re.compile(r"^\s*(?:(?:step\s*)?\(?(\d+)\s*[.):]|\(?(\d+)\))\s*(.*\S)\s*$", re.I)
_CIRCLED_ITEM = re.compile(rf"^\s*([{_CIRCLED}])\s*(.*\S)\s*$")
_BULLET = re.compile(r"^\s*[-*•·▪‣]\s+(.*\S)\s*$")


@dataclass
class Generation:
    """One decoded answer: its text, whether it stopped by itself (EOS), and its token ids."""

    text: str
    stopped: bool
    ids: list[int]


def parse_sub_questions(text: str) -> list[str] | None:
    """The sub-questions in a model's output, whatever list form it used; ``None`` if none.

    Accepted, in this order: a JSON list of strings; a numbered list (``1.``, ``1)``, ``(1)``,
    ``Step 1:``, ``①``) numbered 1, 2, 3... without gaps; a bulleted list (``-``, ``*``, ``•``);
    one question per line (every line ends with ``?``). A single leading line ending in ``:``
    ("Sub-questions:") is skipped. Anything else is a format failure, never a guess.

    >>> parse_sub_questions("1. How old is A?\\n2. How old is B?")
    ['How old is A?', 'How old is B?']
    >>> parse_sub_questions("Step 1: How old is A?\\nStep 2: How old is B?")
    ['How old is A?', 'How old is B?']
    >>> parse_sub_questions("A is older.") is None
    True
    """
    text = text.strip()
    if text.startswith("["):
        return _json_list(text)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].rstrip().endswith(":"):
        lines = lines[1:]
    if not lines:
        return None
    for parse in (_numbered, _bulleted, _question_lines):
        items = parse(lines)
        if items:
            return items
    return None


def _json_list(text: str) -> list[str] | None:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return None
    ok = isinstance(items, list) and items and all(isinstance(x, str) and x.strip() for x in items)
    return [x.strip() for x in items] if ok else None


def _numbered(lines: list[str]) -> list[str] | None:
    items = []
    for expected, line in enumerate(lines, start=1):
        m = _NUMBERED.match(line)
        if m:
            number, item = int(m.group(1) or m.group(2)), m.group(3)
        else:
            c = _CIRCLED_ITEM.match(line)
            if not c:
                return None
            number, item = _CIRCLED.index(c.group(1)) + 1, c.group(2)
        if number != expected:
            return None
        items.append(item)
    return items


def _bulleted(lines: list[str]) -> list[str] | None:
    matches = [_BULLET.match(line) for line in lines]
    return [m.group(1) for m in matches] if all(matches) else None  # type: ignore[union-attr]


def _question_lines(lines: list[str]) -> list[str] | None:
    """Plain lines, each a question; a broken numbered or bulleted list is not one."""
    stripped = [line.strip() for line in lines]
    if any(p.match(s) for s in stripped for p in (_NUMBERED, _CIRCLED_ITEM, _BULLET)):
        return None
    return stripped if all(s.endswith(("?", "？")) for s in stripped) else None


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    batch_size: int = 16,
    max_new_tokens: int = 96,
    language: str = "auto",
    progress: bool = True,
    prompt: Callable[[str, Any, str], list[int]] = prompt_ids,
) -> list[Generation]:
    """Greedy decompositions for ``questions``, in batches of similar prompt length.

    ``prompt(question, tokenizer, language)`` gives each prompt's token ids: the course's prompt
    by default, a few-shot one for that baseline (:func:`qdlib.baselines.few_shot_prompt`).
    """
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,  # training turns the model's own use_cache off (see qdlib.train)
    )
    model.eval()
    on = next(model.parameters()).device
    prompts = [prompt(q, tokenizer, language) for q in questions]
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
            results[i] = decode_answer(row, tokenizer)
    return [results[i] for i in range(len(questions))]


def decode_answer(new_ids: list[int], tokenizer: Any) -> Generation:
    """The answer's text and ids: up to the EOS, or, when ``max_new_tokens`` cut it off, up to the
    last whole character (a Hangul syllable can take several byte-level tokens, and a cut between
    them would decode as U+FFFD)."""
    eos = tokenizer.eos_token_id
    stopped = eos in new_ids
    kept = new_ids[: new_ids.index(eos)] if stopped else new_ids
    while not stopped and kept and kept[-1] == tokenizer.pad_token_id:
        kept = kept[:-1]  # padding after a cut is not part of the answer
    text = tokenizer.decode(kept, skip_special_tokens=True)
    if not stopped:
        for _ in range(3):  # a character is at most 4 bytes: at most 3 tokens to take back
            if not (kept and text.endswith("\ufffd")):
                break
            kept = kept[:-1]
            text = tokenizer.decode(kept, skip_special_tokens=True)
    return Generation(text, stopped, kept)


def score(
    records: list[dict[str, Any]],
    generations: list[Generation],
    reference: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Per-example predictions and scores for records and their generations.

    Which words are the template's rather than content (:func:`qdlib.metrics.common_terms`) is
    learned from these records' questions and the ``reference`` questions (pass the training
    questions: the more, the better). Each row keeps the record's ``kind`` (when the data has
    one) and its language, for the breakdowns.
    """
    common = common_terms([*reference, *(r["question"] for r in records)])
    rows = []
    for rec, gen in zip(records, generations, strict=True):
        pred = parse_sub_questions(gen.text)
        gold = rec["sub_questions"]
        rows.append(
            {
                "question": rec["question"],
                "gold": gold,
                "kind": rec.get("kind"),
                "language": detect_language(rec["question"]),
                "output": gen.text,
                "predicted": pred,
                "stopped": gen.stopped,
                "scores": score_example(gold, pred, gen.stopped, rec["question"], common),
            }
        )
    return rows


def summarize(rows: list[dict[str, Any]], breakdowns: bool = False) -> dict[str, Any]:
    """Mean scores, with the counts behind the rates (how many parsed, stopped, matched).

    With ``breakdowns``, also the same per language (``by_language``) and, when the data says,
    per kind of question (``by_kind``: bridge, comparison, ...).
    """
    out = aggregate([r["scores"] for r in rows])
    if breakdowns:
        for key, name in (("language", "by_language"), ("kind", "by_kind")):
            groups = sorted({r[key] for r in rows if r.get(key)})
            if groups:
                out[name] = {g: summarize([r for r in rows if r.get(key) == g]) for g in groups}
    out["counts"] = {
        "parsed": sum(r["predicted"] is not None for r in rows),
        "stopped": sum(bool(r["stopped"]) for r in rows),
        "format_valid": sum(int(r["scores"]["format_valid"]) for r in rows),
        "step_count_correct": sum(int(r["scores"]["step_count_correct"]) for r in rows),
        "exact_match": sum(int(r["scores"]["exact_match"]) for r in rows),
    }
    return out


METRIC_KEYS = (
    "format_valid", "step_count_correct", "step_count_error", "exact_match", "content_recall",
    "sari", "rouge_l", "chrf", "refs_valid",
)  # fmt: skip
RATE_KEYS = (
    "format_valid", "step_count_correct", "exact_match", "content_recall", "sari", "rouge_l", "chrf"
)  # fmt: skip


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def compare_table(metrics: dict[str, dict[str, Any]], keys: tuple[str, ...] = METRIC_KEYS) -> str:
    """A Markdown table: one row per metric, one column per model (``n/a``: does not apply)."""
    names = list(metrics)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(_cell(metrics[n].get(k)) for n in names) + " |")
    if all("n" in metrics[n] for n in names):
        lines.append("| examples | " + " | ".join(str(metrics[n]["n"]) for n in names) + " |")
    return "\n".join(lines)


PROBE_KEYS = (
    "step_count_correct", "exact_match", "content_recall", "sari", "sari_keep", "sari_add",
    "sari_delete", "rouge_l", "chrf", "refs_valid",
)  # fmt: skip


def template_twin(target: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The other record whose gold reads most like ``target``'s: the same template, other names.

    Among the records of the same kind (when the data says) and the same number of steps, the
    one whose joined gold steps have the highest chrF against ``target``'s; any other record when
    none qualifies.
    """
    others = [r for r in records if r is not target]
    twins = [
        r for r in others
        if r.get("kind") == target.get("kind")
        and len(r["sub_questions"]) == len(target["sub_questions"])
    ]  # fmt: skip
    gold = " ".join(target["sub_questions"])
    return max(twins or others, key=lambda r: chrf(gold, " ".join(r["sub_questions"])))


def probe_metrics(
    question: str,
    gold: list[str],
    candidates: dict[str, list[str] | None],
    reference: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Every metric for several candidate decompositions of one question, SARI split in its parts.

    ``candidates`` maps a name to a list of sub-questions (``None``: nothing parsed); each counts
    as having stopped by itself. Shows what a metric rewards and what it misses: pass the gold
    itself, another question's gold (the template with other names), the model's outputs.
    ``reference`` are the questions that tell template words from content (as in :func:`score`).
    """
    common = common_terms([*reference, question])
    source, target = sari_tokens(question), sari_tokens(" ".join(gold))
    out = {}
    for name, pred in candidates.items():
        parts = sari_parts(source, sari_tokens(" ".join(pred or [])), target)
        sari_cols = {f"sari_{k}": v for k, v in parts.items() if k != "sari"}
        out[name] = score_example(gold, pred, True, question, common) | sari_cols
    return out


BREAKDOWN_KEYS = ("format_valid", "step_count_correct", "exact_match", "content_recall")


def breakdown_table(metrics: dict[str, dict[str, Any]], by: str) -> str:
    """Markdown: one row per group (``by_language`` or ``by_kind``), each model's main rates."""
    names = list(metrics)
    groups = list(metrics[names[-1]].get(by, {}))
    head = [f"{n} {k.replace('_', ' ')}" for k in BREAKDOWN_KEYS for n in names]
    lines = [f"| {by[3:]} | n | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
    for g in groups:
        cells = [_cell(metrics[n][by][g].get(k)) for k in BREAKDOWN_KEYS for n in names]
        lines.append(f"| {g} | {metrics[names[-1]][by][g]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def example_markdown(row: dict[str, Any], others: dict[str, dict[str, Any]]) -> str:
    """One question as Markdown: the question, its gold steps, each system's steps and SARI."""
    lines = [f"**{row['question']}**", "", "gold: " + " / ".join(row["gold"])]
    for name, r in others.items():
        shown = " / ".join(r["predicted"]) if r["predicted"] else repr(r["output"][:200])
        lines.append(f"{name} (SARI {r['scores']['sari']:.2f}): {shown}")
    return "\n".join(f"- {line}" if i else line for i, line in enumerate(lines) if line) + "\n"


def report_markdown(
    metrics: dict[str, Any], rows: dict[str, list[dict[str, Any]]], card_md: str = ""
) -> str:
    """``report.md``: the table, the scorecard (when given), then the last model's best, worst
    and most changed examples."""
    names = list(rows)
    last = names[-1]
    order = sorted(range(len(rows[last])), key=lambda i: rows[last][i]["scores"]["sari"])
    parts = ["# Evaluation report", "", compare_table({n: metrics[n] for n in names}), ""]
    if card_md:
        parts += [card_md, ""]
    for by, title in (("by_language", "By language"), ("by_kind", "By kind of question")):
        if metrics[last].get(by):
            parts.extend([f"## {title}", "", breakdown_table(metrics, by), ""])

    def section(title: str, ids: list[int]) -> None:
        parts.extend([f"## {title}", ""])
        parts.extend(example_markdown(rows[last][i], {n: rows[n][i] for n in names}) for i in ids)

    section(f"Best ({last}, by SARI)", order[::-1][:3])
    section(f"Worst ({last}, by SARI)", order[:3])
    if len(names) > 1:
        first = names[0]
        gain = sorted(
            range(len(order)),
            key=lambda i: rows[last][i]["scores"]["sari"] - rows[first][i]["scores"]["sari"],
        )
        section(f"Most changed ({first} -> {last})", gain[::-1][:3])
    return "\n".join(parts)


def prediction_lines(
    rows: dict[str, list[dict[str, Any]]], extra: dict[str, Any] | None = None
) -> list[str]:
    """JSON lines, one per question of the first system's rows: the question, its gold, and each
    system's output and scores (a system that answered fewer questions, only where it did)."""
    names = list(rows)
    lines = []
    for i, first in enumerate(rows[names[0]]):
        line = (extra or {}) | {k: first[k] for k in ("question", "gold", "kind", "language")}
        for n in names:
            if i < len(rows[n]):
                r = rows[n][i]
                line[n] = {k: r[k] for k in ("output", "predicted", "stopped", "scores")}
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    return lines


def write_report(
    eval_dir: Path,
    rows: dict[str, list[dict[str, Any]]],
    card: dict[str, Any] | None = None,
    card_md: str = "",
    card_figure: Any = None,
    card_rows: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
) -> dict[str, Any]:
    """Write the report's files as one folder, whole or not at all, and return the metrics.

    ``metrics.json`` (per model and metric, with counts), ``predictions.jsonl`` (one line per
    question: gold, every model's output and scores), ``report.md`` and ``metrics.png``; with a
    scorecard (:mod:`qdlib.scorecard`), ``metrics.json`` also holds it under ``"scorecard"``,
    ``report.md`` shows it (``card_md``), ``scorecard.png`` draws it and
    ``scorecard_predictions.jsonl`` holds every system's answer in every section
    (``card_rows``). They go into a temporary folder that replaces ``eval_dir`` once all are
    written: a full disk or a kill never leaves new metrics beside old predictions.
    """
    metrics: dict[str, Any] = {name: summarize(r, breakdowns=True) for name, r in rows.items()}
    if card:
        metrics["scorecard"] = card
    lines = prediction_lines(rows)
    card_lines = [
        line for section, by_system in (card_rows or {}).items()
        for line in prediction_lines(by_system, {"section": section})
    ]  # fmt: skip

    def write(folder: Path) -> None:
        atomic_write_json(folder / "metrics.json", metrics)
        atomic_write_text(folder / "predictions.jsonl", "".join(lines))
        if card_lines:
            atomic_write_text(folder / "scorecard_predictions.jsonl", "".join(card_lines))
        atomic_write_text(folder / "report.md", report_markdown(metrics, rows, card_md))
        save_figure(folder / "metrics.png", plot_metrics({n: metrics[n] for n in rows}))
        if card_figure is not None:
            save_figure(folder / "scorecard.png", card_figure)

    atomic_dir(Path(eval_dir), write)
    return metrics


def plot_metrics(metrics: dict[str, dict[str, Any]]) -> Any:
    """Grouped bars of the 0-1 metrics, one colour per model."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once
    width = 0.8 / len(metrics)
    for j, (name, m) in enumerate(metrics.items()):
        xs = [i + j * width for i in range(len(RATE_KEYS))]
        ax.bar(xs, [m[k] or 0.0 for k in RATE_KEYS], width, label=name)
    ticks = [i + width * (len(metrics) - 1) / 2 for i in range(len(RATE_KEYS))]
    ax.set_xticks(ticks, [k.replace("_", " ") for k in RATE_KEYS], rotation=15)
    ax.set(ylim=(0, 1.05), ylabel="mean over examples", title="base vs tuned")
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- during training


class GenerationMetricsCallback(TrainerCallback):
    """Every ``every`` steps, decode a few eval questions and log task metrics beside the loss.

    Eval loss can fall while the model still never stops or writes the wrong number of steps;
    these numbers (``gen_format_valid``, ``gen_step_count_correct``, ``gen_sari``) show it. They go
    wherever the Trainer logs: ``log_history``, TensorBoard or W&B.
    """

    def __init__(self, trainer: Any, records: list[dict[str, Any]], every: int, **gen: Any):
        self.trainer, self.records, self.every, self.gen = trainer, records, every, gen

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every:
            return
        model = self.trainer.model
        questions = [r["question"] for r in self.records]
        gens = generate(model, self.trainer.processing_class, questions, progress=False, **self.gen)
        model.train()
        m = summarize(score(self.records, gens))
        keys = ("format_valid", "step_count_correct", "sari")
        self.trainer.log({f"gen_{k}": round(m[k], 4) for k in keys})


def watch_generation(trainer: Any, cfg: Any, eval_records: list[dict[str, Any]]) -> None:
    """With ``evaluation.generate_every: N``, log task metrics on ``evaluation.generate_samples``
    eval questions every N training steps (:class:`GenerationMetricsCallback`)."""
    ev = cfg.evaluation
    if ev.generate_every and eval_records:
        records = eval_records[: ev.generate_samples]
        gen = generation_settings(cfg)
        trainer.add_callback(GenerationMetricsCallback(trainer, records, ev.generate_every, **gen))


# ---------------------------------------------------------------- whole runs, widgets


def generation_settings(cfg: Any) -> dict[str, Any]:
    """How a profile decodes: batch size, ``max_new_tokens`` and the instruction language.

    One place, so evaluation, export parity and the try-it box prompt exactly as training did.
    """
    return {
        "batch_size": cfg.evaluation.batch_size,
        "max_new_tokens": cfg.evaluation.max_new_tokens,
        "language": cfg.data.language,
    }


def split_report_dir(run_dir: Path, split: Path) -> Path:
    """Where ``qd eval --split FILE`` writes: ``eval-splits/<file's name>`` in the run, never on
    top of the run's own ``eval/`` (odd names are made safe)."""
    name = re.sub(r"[^\w.-]+", "_", Path(split).stem).strip("._") or "split"
    return Path(run_dir) / "eval-splits" / name


def try_it(
    models: dict[str, Any],
    tokenizer: Any,
    question: str = "서울과 부산 중 인구가 더 많은 도시는?",
    **settings: Any,
) -> Any:
    """An ipywidgets box: type a question (Korean or English), see each model's decomposition."""
    text = w.Textarea(
        value=question,
        placeholder="질문을 입력하세요 / Type a question",
        layout=w.Layout(width="100%"),
    )
    button = w.Button(description="Decompose", button_style="primary")
    width = f"{100 // len(models) - 1}%"
    outputs = {n: w.Output(layout=w.Layout(width=width, border="1px solid #ccc")) for n in models}

    def decompose(_: Any = None) -> None:
        for name, model in models.items():
            gen = generate(model, tokenizer, [text.value], progress=False, **settings)[0]
            steps = parse_sub_questions(gen.text)
            shown = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)) if steps else gen.text
            outputs[name].outputs = ()
            outputs[name].append_stdout(f"{name}\n{'-' * len(name)}\n{shown}\n")

    button.on_click(decompose)
    return w.VBox([text, button, w.HBox(list(outputs.values()))])
