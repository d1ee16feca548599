"""Lesson 05: what the scores of held-out answers show: tables, probes, the report in ``eval/``.

The answers come from :mod:`qdlib.inference` and are scored by :mod:`qdlib.metrics` (an output
that is not a list of sub-questions counts as a format failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qdlib.figures import both, subplots
from qdlib.files import (
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    save_figure,
)
from qdlib.metrics import chrf, common_terms, sari_parts, sari_tokens, score_example, summarize

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
    none qualifies. A record with the same names (the same question with its names swapped, or
    the same ``entities``) is no twin: its gold is the target's own.
    """
    names = frozenset(target.get("entities") or ())
    others = [
        r for r in records
        if r is not target and not (names and frozenset(r.get("entities") or ()) == names)
        and sorted(r["sub_questions"]) != sorted(target["sub_questions"])
    ]  # fmt: skip
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


def model_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model's metrics from ``metrics.json``, without the scorecard kept beside them."""
    return {name: m for name, m in metrics.items() if name != "scorecard"}


def breakdown_table(metrics: dict[str, dict[str, Any]], by: str) -> str:
    """Markdown: one row per group (``by_language`` or ``by_kind``), each model's main rates; n
    is each model's, in order, where the models answered different numbers of questions."""
    metrics = model_metrics(metrics)
    names = list(metrics)
    groups = list(metrics[names[-1]].get(by, {}))
    head = [f"{n} {k.replace('_', ' ')}" for k in BREAKDOWN_KEYS for n in names]
    lines = [f"| {by[3:]} | n | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
    for g in groups:
        group = {n: metrics[n][by].get(g, {}) for n in names}
        cells = [_cell(group[n].get(k)) for k in BREAKDOWN_KEYS for n in names]
        counts = [str(group[n].get("n", 0)) for n in names]
        count = counts[0] if len(set(counts)) == 1 else " / ".join(counts)
        lines.append(f"| {g} | {count} | " + " | ".join(cells) + " |")
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
    first, last = names[0], names[-1]
    lines = [line for line in by_question(rows) if last in line]
    lines.sort(key=lambda line: line[last]["scores"]["sari"])
    models = {n: metrics[n] for n in names}
    parts = ["# Evaluation report", "", compare_table(models), ""]
    if card_md:
        parts += [card_md, ""]
    for by, title in (("by_language", "By language"), ("by_kind", "By kind of question")):
        if metrics[last].get(by):
            parts.extend([f"## {title}", "", breakdown_table(models, by), ""])

    def section(title: str, chosen: list[dict[str, dict[str, Any]]]) -> None:
        parts.extend([f"## {title}", ""])
        parts.extend(example_markdown(line[last], line) for line in chosen)

    section(f"Best ({last}, by SARI)", lines[::-1][:3])
    section(f"Worst ({last}, by SARI)", lines[:3])
    if len(names) > 1:
        both_answered = [line for line in lines if first in line]
        both_answered.sort(
            key=lambda line: line[last]["scores"]["sari"] - line[first]["scores"]["sari"]
        )
        section(f"Most changed ({first} -> {last})", both_answered[::-1][:3])
    return "\n".join(parts)


def by_question(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
    """One ``{system: row}`` per question of the system that answered the most, in its order: a
    system that answered fewer questions (the untuned model: ``evaluation.baseline_samples``)
    appears only on the questions it answered."""
    most = max(rows.values(), key=len)
    index = {n: {r["question"]: r for r in answered} for n, answered in rows.items()}
    return [{n: index[n][r["question"]] for n in rows if r["question"] in index[n]} for r in most]


def prediction_lines(
    rows: dict[str, list[dict[str, Any]]], extra: dict[str, Any] | None = None
) -> list[str]:
    """JSON lines, one per question (:func:`by_question`): the question, its gold, and each
    system's output and scores where it answered."""
    lines = []
    for line in by_question(rows):
        some = next(iter(line.values()))
        out = (extra or {}) | {k: some[k] for k in ("question", "gold", "kind", "language")}
        for n, r in line.items():
            out[n] = {k: r[k] for k in ("output", "predicted", "stopped", "scores")}
        lines.append(json.dumps(out, ensure_ascii=False) + "\n")
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
    fig, ax = subplots(figsize=(8, 3.4))
    width = 0.8 / len(metrics)
    for j, (name, m) in enumerate(metrics.items()):
        xs = [i + j * width for i in range(len(RATE_KEYS))]
        ax.bar(xs, [m[k] or 0.0 for k in RATE_KEYS], width, label=name)
    ticks = [i + width * (len(metrics) - 1) / 2 for i in range(len(RATE_KEYS))]
    ax.set_xticks(ticks, [k.replace("_", " ") for k in RATE_KEYS], rotation=15)
    ax.set(ylim=(0, 1.05), ylabel=both("mean over examples", "예제 평균"),
           title=both("base vs tuned", "베이스 모델 대 미세조정 모델", " · "))  # fmt: skip
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- during training


# ---------------------------------------------------------------- whole runs, widgets


def split_report_dir(run_dir: Path, split: Path) -> Path:
    """Where ``qd eval --split FILE`` writes: ``eval-splits/<file's name>`` in the run, never on
    top of the run's own ``eval/`` (odd names are made safe)."""
    name = re.sub(r"[^\w.-]+", "_", Path(split).stem).strip("._") or "split"
    if (Path(run_dir) / "eval-splits").is_symlink():  # as eval/ itself: never written through
        raise IsADirectoryError(f"{Path(run_dir) / 'eval-splits'} is a symbolic link; qdlib "
                                "writes its reports inside the run. Remove the link.")  # fmt: skip
    return Path(run_dir) / "eval-splits" / name


