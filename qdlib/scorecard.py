"""Lesson 05's scorecard: every held-out section beside every baseline, with its n and interval.

A score alone says little: 0.99 on questions whose template was trained is template filling, and
0.55 on real questions may be what a trivial program reaches. So the questions are cut into
**sections** by where they come from (:data:`SECTIONS`), and each section is answered by the
tuned model and by its **baselines** (:data:`SYSTEMS`):

- ``untuned``: the same base model without the adapter, the course's prompt;
- ``few_shot``: the untuned model with 3 worked examples of the same kind from the training
  records before the question, drawn for each question (:mod:`qdlib.baselines`): what to try
  before fine-tuning;
- ``rule``: no model, no learning: the nearest training question's steps, names swapped;
- ``published``: another system's predictions for the test file (BART-large on StrategyQA dev).

The untuned model rarely stops, so it is slow; ``evaluation.baseline_samples`` caps how many
questions of a section it and its few-shot prompt answer (the first ones), and the tuned model is
also scored on those same questions (``tuned_same``), so every comparison is like for like.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qdlib.baselines import (
    ci_cell,
    few_shot_prompt,
    published_generations,
    rule_baseline,
    summary_with_ci,
)
from qdlib.data import load_records
from qdlib.evaluate import example_markdown, write_report
from qdlib.figures import both, subplots
from qdlib.inference import Generation, WithoutAdapter, generate, generation_settings
from qdlib.metrics import score
from qdlib.model import load_tokenizer, load_with_adapter
from qdlib.splits import template_key

SECTIONS = {
    "in_template": "held-out questions of templates that were trained: template filling",
    "unseen_template": "questions of templates held out whole: a pattern never trained",
    "validation": "held-out real questions of the training sources: where recipes are chosen",
    "real": "the test file (StrategyQA dev): never trained on, never used to choose a recipe",
}
TEMPLATE_SECTIONS = ("in_template", "unseen_template")
SYSTEMS = ("tuned", "tuned_same", "untuned", "few_shot", "rule", "published")
CARD_KEYS = ("format_valid", "step_count_correct", "exact_match", "content_recall", "sari")


def section_of(record: dict[str, Any], trained_templates: set[str]) -> str:
    """``in_template`` or ``unseen_template`` for a templated question (was its template
    trained?), ``validation`` for a real one."""
    if not record.get("template"):
        return "validation"
    return "in_template" if template_key(record) in trained_templates else "unseen_template"


def split_sections(
    held_out: list[dict[str, Any]],
    test: list[dict[str, Any]],
    train: list[dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """The held-out records by section, the test records as ``real``; no empty section."""
    trained = {template_key(r) for r in train if r.get("template")}
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTIONS}
    for record in held_out:
        out[section_of(record, trained)].append(record)
    out["real"] = list(test)
    return {name: records for name, records in out.items() if records}


def baseline_records(
    held_out: list[dict[str, Any]], train: list[dict[str, Any]], cfg: Any
) -> list[dict[str, Any]]:
    """The held-out records the untuned model answers, in their order: the first
    ``evaluation.baseline_samples`` of each section (:func:`split_sections`), the questions that
    its scorecard rows (``untuned``, ``few_shot``, ``tuned_same``) are scored on."""
    cap = cfg.evaluation.baseline_samples
    sections = split_sections(held_out, [], train)
    asked = {r["question"] for records in sections.values() for r in records[:cap]}
    return [r for r in held_out if r["question"] in asked]


def few_shot_pool(section: str, train: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training records a section's worked examples come from: templated ones for the
    template sections, real ones for the others (all of them when that kind is missing)."""
    templated = section in TEMPLATE_SECTIONS
    return [r for r in train if bool(r.get("template")) == templated] or train


def answer_section(
    section: str,
    records: list[dict[str, Any]],
    train: list[dict[str, Any]],
    models: dict[str, Any],
    tokenizer: Any,
    cfg: Any,
    done: dict[str, dict[str, Generation]] | None = None,
    published: str | Path | None = None,
) -> dict[str, list[Generation]]:
    """Every system's answers to a section's ``records``.

    ``models``: ``{"tuned": base + adapter, "untuned": base}``. ``done``: answers already
    generated, by system and question (lesson 05 has the tuned and untuned answers to every
    held-out question): reused, not generated again. The untuned model and its few-shot prompt
    answer the first ``evaluation.baseline_samples`` questions only.
    """
    done = done or {}
    settings = generation_settings(cfg)
    questions = [r["question"] for r in records]
    few = questions[: cfg.evaluation.baseline_samples]

    def model_answers(system: str, asked: list[str]) -> list[Generation]:
        known = done.get(system, {})
        if all(q in known for q in asked):
            return [known[q] for q in asked]
        return generate(models[system], tokenizer, asked, **settings)

    shots = few_shot_prompt(few_shot_pool(section, train), questions, cfg.seed)
    answers = {
        "tuned": model_answers("tuned", questions),
        "untuned": model_answers("untuned", few),
        "few_shot": generate(models["untuned"], tokenizer, few, prompt=shots, **settings),
        "rule": rule_baseline(questions, train),
    }
    if published is not None:
        answers["published"] = published_generations(records, published)
    return answers


def score_section(
    records: list[dict[str, Any]],
    answers: dict[str, list[Generation]],
    reference: list[str],
) -> dict[str, list[dict[str, Any]]]:
    """Scored rows per system (:func:`qdlib.evaluate.score`); ``tuned_same`` is the tuned model
    on the questions the untuned model answered, when that is fewer than all."""
    rows = {name: score(records[: len(gens)], gens, reference) for name, gens in answers.items()}
    n_few = len(answers["untuned"])
    if n_few < len(records):  # scored as the baselines are: the same questions, the same terms
        rows["tuned_same"] = score(records[:n_few], answers["tuned"][:n_few], reference)
    return {name: rows[name] for name in SYSTEMS if name in rows}


def summarize_sections(
    scored: dict[str, dict[str, list[dict[str, Any]]]], seed: int
) -> dict[str, dict[str, Any]]:
    """``{section: {"about", "n", "systems": {system: summary_with_ci}}}``: every metric with its
    n and a 95% bootstrap interval (:func:`qdlib.baselines.summary_with_ci`)."""
    return {
        section: {
            "about": SECTIONS[section],
            "n": len(rows["tuned"]),
            "systems": {
                name: summary_with_ci(r, seed, CARD_KEYS, ci_below=math.inf)
                for name, r in rows.items()
            },
        }
        for section, rows in scored.items()
    }


def tuned_beats_baselines(card: dict[str, dict[str, Any]], key: str = "sari") -> dict[str, bool]:
    """Per section: does the tuned model beat the untuned model and its few-shot prompt on ``key``,
    on the same questions?"""
    out = {}
    for section, entry in card.items():
        systems = entry["systems"]
        tuned = systems.get("tuned_same", systems["tuned"])[key]["mean"]
        out[section] = all(tuned > systems[b][key]["mean"] for b in ("untuned", "few_shot"))
    return out


def scorecard_table(card: dict[str, dict[str, Any]], key: str = "sari") -> str:
    """Markdown: one row per system, one column per section: ``mean [low, high] (n)``."""
    sections = list(card)
    lines = ["| system | " + " | ".join(s.replace("_", "-") for s in sections) + " |"]
    lines.append("|---" * (len(sections) + 1) + "|")
    for name in SYSTEMS:
        if not any(name in card[s]["systems"] for s in sections):
            continue
        cells = [
            ci_cell(card[s]["systems"][name][key]) if name in card[s]["systems"] else ""
            for s in sections
        ]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scorecard_markdown(card: dict[str, dict[str, Any]]) -> str:
    """The report's scorecard: what each section is, then SARI and exact match per system."""
    parts = ["## Scorecard: every section beside its baselines", ""]
    parts += [f"- **{s.replace('_', '-')}** ({card[s]['n']}): {card[s]['about']}" for s in card]
    for key in ("sari", "exact_match", "step_count_correct"):
        parts += ["", f"{key.replace('_', ' ')}, mean [95% interval] (n):", ""]
        parts.append(scorecard_table(card, key))
    return "\n".join(parts) + "\n"


def section_examples(
    rows: dict[str, list[dict[str, Any]]], k: int = 3, systems: tuple[str, ...] = ("tuned",)
) -> str:
    """Markdown: a section's ``k`` best and ``k`` worst questions for the tuned model (by SARI),
    each with the gold steps and the answers of ``systems`` that answered it."""
    tuned = rows["tuned"]
    order = sorted(range(len(tuned)), key=lambda i: tuned[i]["scores"]["sari"])
    parts = []
    for title, ids in (("Best", order[::-1][:k]), ("Worst", order[:k])):
        parts += [f"**{title} (tuned, by SARI)**", ""]
        for i in ids:
            shown = {s: rows[s][i] for s in systems if s in rows and i < len(rows[s])}
            parts.append(example_markdown(tuned[i], shown))
    return "\n".join(parts)


def plot_scorecard(card: dict[str, dict[str, Any]], key: str = "sari") -> Any:
    """Grouped bars: one group per section, one bar per system, the 95% interval as a whisker."""
    fig, ax = subplots(figsize=(8, 3.4))
    shown = [n for n in SYSTEMS if n != "tuned_same"]
    names = [n for n in shown if any(n in e["systems"] for e in card.values())]
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs, means, errs = [], [], [[], []]
        for i, entry in enumerate(card.values()):
            m = entry["systems"].get(name, {}).get(key)
            if m is None or m["mean"] is None:
                continue
            xs.append(i + j * width)
            means.append(m["mean"])
            low, high = m["ci"] or (m["mean"], m["mean"])
            errs[0].append(m["mean"] - low)
            errs[1].append(high - m["mean"])
        ax.bar(xs, means, width, yerr=errs, capsize=2, label=name.replace("_", " "))
    ticks = [i + width * (len(names) - 1) / 2 for i in range(len(card))]
    labels = [f"{s.replace('_', '-')}\n(n={e['n']})" for s, e in card.items()]
    ax.set_xticks(ticks, labels)
    ax.set(ylim=(0, 1.05), ylabel=both(key.replace("_", " "), "점수", " · "),
           title=both(f"{key} by section and system", f"구역과 시스템별 {key}"))  # fmt: skip
    ax.legend(fontsize=8, ncol=len(names))
    fig.tight_layout()
    return fig


def build_scorecard(
    cfg: Any,
    sections: dict[str, list[dict[str, Any]]],
    train: list[dict[str, Any]],
    models: dict[str, Any],
    tokenizer: Any,
    done: dict[str, dict[str, Generation]] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[dict[str, Any]]]]]:
    """Answer and score every section with every system: the card, and the scored rows.

    The test file's published predictions (``evaluation.test_predictions``) join the ``real``
    section.
    """
    reference = [r["question"] for r in train]
    scored = {}
    for name, records in sections.items():
        published = cfg.evaluation.test_predictions if name == "real" else None
        published = cfg.resolve_path(published) if published else None
        answers = answer_section(name, records, train, models, tokenizer, cfg, done, published)
        scored[name] = score_section(records, answers, reference)
    return summarize_sections(scored, cfg.seed), scored


def read_test_file(cfg: Any) -> list[dict[str, Any]]:
    """The profile's test file (``evaluation.test_file``), capped at ``evaluation.max_samples``;
    none without one."""
    if not cfg.evaluation.test_file:
        return []
    path = cfg.resolve_path(cfg.evaluation.test_file)  # a profile's paths are the project's
    return load_records(path).records[: cfg.evaluation.max_samples]


def evaluate_run(
    cfg: Any,
    run_dir: Path,
    records: list[dict[str, Any]],
    out_dir: Path,
    test: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``qd eval``: base + the run's adapter on ``records`` and the base model on
    :func:`baseline_records` (one copy of the weights: :class:`~qdlib.inference.WithoutAdapter`),
    the scorecard with the ``test`` records (default: the profile's test file) and every
    baseline, written as one report (:func:`qdlib.evaluate.write_report`)."""
    tokenizer = load_tokenizer(cfg)
    adapter = Path(run_dir) / "adapter"
    tuned = load_with_adapter(cfg, adapter)
    models = {"tuned": tuned, "untuned": WithoutAdapter(tuned)}  # one copy of the base
    train_path = Path(run_dir) / "data/train.jsonl"
    train = load_records(train_path).records if train_path.exists() else []
    asked = {"tuned": records, "untuned": baseline_records(records, train, cfg)}
    settings = generation_settings(cfg)
    answers = {
        name: generate(models[name], tokenizer, [r["question"] for r in chosen], **settings)
        for name, chosen in asked.items()
    }
    seen = [r["question"] for r in train]
    rows = {"base": score(asked["untuned"], answers["untuned"], seen),
            "tuned": score(records, answers["tuned"], seen)}  # fmt: skip
    test = read_test_file(cfg) if test is None else test
    sections = split_sections(records, test, train)
    done = {
        name: {r["question"]: g for r, g in zip(asked[name], gens, strict=True)}
        for name, gens in answers.items()
    }
    card, card_rows = (
        build_scorecard(cfg, sections, train, models, tokenizer, done) if train else ({}, {})
    )
    return write_report(out_dir, rows, card=card, card_md=scorecard_markdown(card) if card else "",
                        card_figure=plot_scorecard(card) if card else None,
                        card_rows=card_rows)  # fmt: skip
