"""Lesson 01's whole data step: every source loaded, filtered, deduplicated, split and mixed.

One source (``data.train_file``) or a weighted mix (``data.sources``): each is split on its own,
so every source is represented in eval, and a held-out question never reaches training.

``data.holdout_by`` says what eval holds out. ``none``: single records, so a held-out question's
template (and most of its steps, word for word) was trained, and eval measures template filling.
``template``: whole templates. ``entity``: every name of an eval question is kept out of training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from qdlib.config import PROJECT_ROOT, Config, SourceSection
from qdlib.data import (
    DataError,
    Skipped,
    dedup,
    detect_language,
    normalize_question,
    split_records,
    step_count_histogram,
)
from qdlib.sources import load_any

# The record field each grouping reads; records without it are split one by one.
GROUP_FIELDS = {"template": "template", "entity": "entities"}
GROUP_NAMES = {"template": "templates", "entity": "entities"}


def in_languages(
    records: list[dict[str, Any]], languages: list[str] | None
) -> list[dict[str, Any]]:
    """The records whose question is in one of ``languages`` (all of them when None)."""
    if languages is None:
        return records
    return [r for r in records if detect_language(r["question"]) in languages]


# ---------------------------------------------------------------- holding out whole groups


@dataclass
class Holdout:
    """Which grouping kept eval apart from training, and how many groups went each way."""

    by: str = "none"
    train_groups: int = 0
    eval_groups: int = 0
    ungrouped: int = 0  # records without the grouping's field: split one by one
    dropped: int = 0  # training records that shared a template or named an eval entity
    eval_names: list[str] = field(default_factory=list)  # the held-out templates
    in_group: int = 0  # eval records whose group is trained (holdout_fraction: in-template)

    def __str__(self) -> str:
        if self.by == "none":
            return ""
        unit = GROUP_NAMES[self.by]
        text = f"held out by {self.by}: {self.train_groups} {unit} in train, "
        text += f"{self.eval_groups} held out whole"
        if self.in_group:
            text += f"; {self.in_group} eval questions of trained {unit} held out one by one"
        if self.dropped:
            text += f"; {self.dropped} training records that shared one with eval left out"
        if self.ungrouped:
            field_name = GROUP_FIELDS[self.by]
            text += f"; {self.ungrouped} records without a {field_name!r} field split one by one"
        return text


def language_of(record: dict[str, Any]) -> str:
    """The record's ``lang`` field, else the language of its question."""
    return record.get("lang") or detect_language(record["question"])


def template_key(record: dict[str, Any]) -> str:
    """``en/compare_city``: a template is per language (its Korean twin is another template)."""
    return f"{language_of(record)}/{record['template']}"


def n_held_out(n: int, eval_fraction: float) -> int:
    """``round(n * eval_fraction)``, at least one and leaving at least one (as split_records)."""
    k = round(n * eval_fraction)
    if eval_fraction > 0 and n > 1:
        k = min(max(k, 1), n - 1)
    return k


def held_out_templates(records: list[dict[str, Any]], eval_fraction: float, seed: int) -> set[str]:
    """About ``eval_fraction`` of each language's templates (at least one), chosen by ``seed``.

    The same template names in every language: a held-out pattern is not trained in translation.
    """
    keys = {template_key(r) for r in records}
    names = sorted({r["template"] for r in records})
    random.Random(seed).shuffle(names)
    held = set()
    for lang in sorted({language_of(r) for r in records}):
        present = [f"{lang}/{name}" for name in names if f"{lang}/{name}" in keys]
        held |= set(present[: n_held_out(len(present), eval_fraction)])
    return held


def held_out_entities(records: list[dict[str, Any]], eval_fraction: float, seed: int) -> set[str]:
    """Entities such that about ``eval_fraction`` of each language's records name only them.

    Records are taken in seeded order and their entities held out until enough records name
    nothing else: every kind of question reaches eval, not only those with one name.
    """
    rng = random.Random(seed)
    held: set[str] = set()
    for lang in sorted({language_of(r) for r in records}):
        same = [r for r in records if language_of(r) == lang]
        target, n_eval = n_held_out(len(same), eval_fraction), 0
        for record in rng.sample(same, len(same)):
            if n_eval >= target:
                break
            held |= set(record["entities"])
            n_eval = sum(set(r["entities"]) <= held for r in same)
    return held


def is_held_out(record: dict[str, Any], held: set[str], by: str) -> bool:
    """Whether ``record`` belongs to eval: its template is held out, or all its entities are."""
    if by == "template":
        return template_key(record) in held
    return set(record["entities"]) <= held


def split_by(
    records: list[dict[str, Any]],
    by: str,
    eval_fraction: float,
    seed: int,
    holdout_fraction: float | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Train, eval and how many records had no group: :func:`split_records` for ``none``, and
    for records without the grouping's field (e.g. real data has no template).

    ``holdout_fraction`` (with a grouping): hold out that share of the groups whole, then
    ``eval_fraction`` of the remaining grouped records at random, so that eval has questions of
    groups never trained (unseen-template) and of groups trained (in-template). ``None``: hold
    out ``eval_fraction`` of the groups and nothing else.

    With ``entity``, a training record that names a held-out entity is still here: the mix
    (:func:`shares_a_group`) leaves it out, and so keeps it out of any other source's train too.
    """
    if by == "none":
        return (*split_records(records, eval_fraction, seed), 0)
    key = GROUP_FIELDS[by]
    grouped = [r for r in records if r.get(key)]
    loose = [r for r in records if not r.get(key)]
    choose = held_out_templates if by == "template" else held_out_entities
    whole = eval_fraction if holdout_fraction is None else holdout_fraction
    held = choose(grouped, whole, seed) if whole > 0 else set()
    train = [r for r in grouped if not is_held_out(r, held, by)]
    held_out = [r | {"held_out": by} for r in grouped if is_held_out(r, held, by)]
    if holdout_fraction is not None:
        train, in_group = split_records(train, eval_fraction, seed)
        held_out += in_group
    loose_train, loose_eval = split_records(loose, eval_fraction, seed)
    return train + loose_train, held_out + loose_eval, len(loose)


def eval_groups(held_out: list[dict[str, Any]], by: str) -> set[str]:
    """The templates (``en/compare_city``) or entities (case-folded) eval holds whole.

    Records held out whole say so (``held_out``: :func:`split_by` marks them, and every record
    of a ``data.eval_file``). In-template eval questions (held out one by one with
    ``holdout_fraction``) keep their template in training.
    """
    whole = [r for r in held_out if r.get("held_out") == by]
    if by == "template":
        return {template_key(r) for r in whole if r.get("template")}
    if by == "entity":
        return {e.casefold() for r in whole for e in r.get("entities") or []}
    return set()


def shares_a_group(record: dict[str, Any], groups: set[str], by: str) -> bool:
    """Whether a training record has a held-out template, or its question names a held-out
    entity (contains it, ignoring case): "Seoul" held out keeps out "Seoul National University"
    too."""
    if by == "template":
        return bool(record.get("template")) and template_key(record) in groups
    if by == "entity":
        question = record["question"].casefold()
        return any(entity in question for entity in groups)
    return False


def count_groups(records: list[dict[str, Any]], by: str) -> int:
    """How many templates, or distinct entities, ``records`` hold."""
    if by == "template":
        return len({template_key(r) for r in records if r.get("template")})
    return len({e for r in records for e in r.get("entities") or []})


def template_table(records: list[dict[str, Any]], held_out: set[str] = frozenset()) -> str:
    """Markdown: one row per template of ``records`` (``en/compare_city``): how many questions,
    whether it is held out whole (``held_out``: template keys), one question and its steps."""
    first: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for r in records:
        if r.get("template"):
            key = template_key(r)
            first.setdefault(key, r)
            counts[key] = counts.get(key, 0) + 1
    lines = ["| template | questions | held out | one of them | its steps |", "|---" * 5 + "|"]
    for key in sorted(first):
        r = first[key]
        steps = " / ".join(r["sub_questions"]).replace("|", "\\|")
        where = "whole" if key in held_out else ""
        lines.append(f"| {key} | {counts[key]} | {where} | {r['question']} | {steps} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the data step


@dataclass
class Splits:
    """Train and eval records, and what was done to get them (for the data report)."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    loaded: int
    skipped: list[Skipped]
    duplicates: int
    leaked: int
    mix: list[dict[str, Any]] = field(default_factory=list)
    other_languages: int = 0  # records left out by data.languages
    holdout: Holdout = field(default_factory=Holdout)

    def report(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "skipped": [vars(s) for s in self.skipped],
            "duplicates_dropped": self.duplicates,
            "other_languages_left_out": self.other_languages,
            "eval_questions_dropped_from_train": self.leaked,
            "holdout": vars(self.holdout),
            "train": len(self.train),
            "eval": len(self.eval),
            "train_steps_histogram": step_count_histogram(self.train),
            "sources": self.mix,
        }

    def __str__(self) -> str:
        n_other = self.other_languages
        other = f"{n_other} in other languages left out, " if n_other else ""
        lines = [
            f"{self.loaded} records loaded, {len(self.skipped)} skipped, {other}"
            f"{self.duplicates} duplicates dropped, "
            f"{self.leaked} eval questions taken out of train "
            f"-> train {len(self.train)}, eval {len(self.eval)}"
        ]
        if self.holdout.by != "none":
            lines.append(str(self.holdout))
        if len(self.mix) > 1:
            lines += [
                f"  {m['spec']}: {m['records']} records, weight {m['weight']} -> "
                f"train {m['train']}, eval {m['eval']}"
                + (f", then the last {m['finish']} steps alone" if m.get("finish") else "")
                for m in self.mix
            ]
        return "\n".join(lines)


def weight_records(
    records: list[dict[str, Any]], weight: float, rng: random.Random
) -> list[dict[str, Any]]:
    """Down- or up-sample: weight 0.5 keeps a seeded half, 2.5 repeats all twice plus a half.

    Not ``datasets.interleave_datasets``: it draws each example's source at random, so a weight
    would be a probability, not a count, and ``Dataset.from_list`` gives every record the first
    record's keys (a StrategyQA record after a template one would lose its ``id``)."""
    whole = int(weight)
    part = rng.sample(records, round((weight - whole) * len(records)))
    return records * whole + part


def mix_train(
    parts: list[tuple[SourceSection, list[dict[str, Any]], list[dict[str, Any]]]],
    held_out: list[dict[str, Any]],
    cfg: Config,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int, int]:
    """Each source's training part, cleaned, weighted and mixed, then the examples of the last
    steps when a source finishes the run (:func:`finishing_tail`); the mix report; how many
    records were left out because their question is in eval, because an earlier source already
    gave it (a duplicate, not a leak), and because they share a template or an entity with eval."""
    by = cfg.data.holdout_by
    groups = eval_groups(held_out, by)
    in_eval = {normalize_question(r["question"]) for r in held_out}
    taken: set[str] = set()
    train, tail, mix, leaked, repeated, dropped = [], [], [], 0, 0, 0
    for i, (src, tr, ev) in enumerate(parts):
        kept = [r for r in tr if normalize_question(r["question"]) not in in_eval]
        fresh = [r for r in kept if normalize_question(r["question"]) not in taken]
        apart = [r for r in fresh if not shares_a_group(r, groups, by)]
        leaked, repeated = leaked + len(tr) - len(kept), repeated + len(kept) - len(fresh)
        dropped += len(fresh) - len(apart)
        taken |= {normalize_question(r["question"]) for r in apart}
        weighted = weight_records(apart, src.weight, random.Random(cfg.seed + i))
        train += weighted
        if src.finish_fraction:
            if not apart:  # else the mix's last examples would be taken for the finishing ones
                raise DataError(
                    f"data.sources[{i}] ({src.spec}) finishes the run (finish_fraction), but none "
                    "of its records is left for training: hold out less, or set it to 0."
                )
            tail = finishing_tail(apart, cfg.finish_steps() * cfg.examples_per_step(),
                                  random.Random(cfg.seed + i))  # fmt: skip
        mix.append(
            {
                "spec": src.spec,
                "records": len(tr) + len(ev),
                "weight": src.weight,
                "train": len(weighted),
                "eval": len(ev),
            }
            | ({"finish": cfg.finish_steps()} if src.finish_fraction else {})
        )
    if len(parts) > 1:
        random.Random(cfg.seed).shuffle(train)
    return train + tail, mix, leaked, repeated, dropped


def finishing_tail(
    records: list[dict[str, Any]], n: int, rng: random.Random
) -> list[dict[str, Any]]:
    """``n`` examples for the run's last steps (``finish_fraction``), after the mix: the source's
    training records in seeded order, again in a new order each time they run out."""
    tail: list[dict[str, Any]] = []
    while len(tail) < n:
        tail += rng.sample(records, len(records))
    return tail[:n]


def prepare_splits(cfg: Config) -> Splits:
    """Load every source, validate, dedup, cap, split each by seed, weight the training parts, mix.

    Each source is split on its own (so every source is represented in eval), then training
    records whose question is in eval, or already taken from an earlier source, are dropped
    before weighting: a held-out question never reaches training. With ``data.holdout_by``,
    neither does a held-out template or entity, from any source (or from ``data.eval_file``).
    """
    d = cfg.data
    sources = d.sources or [SourceSection(d.train_file, 1.0, d.max_samples)]
    several = len(sources) > 1
    skipped: list[Skipped] = []
    loaded_total = dups = other = ungrouped = 0
    parts = []
    for i, src in enumerate(sources):
        loaded = load_any(src.spec, strict=d.strict, refs=d.refs, root=PROJECT_ROOT)
        loaded_total += len(loaded.records) + len(loaded.skipped)
        skipped += [s.located(src.spec) if several else s for s in loaded.skipped]
        records = in_languages(loaded.records, d.languages)
        other += len(loaded.records) - len(records)
        records, n = dedup(records)
        dups += n
        if src.max_samples is not None and len(records) > src.max_samples:
            keep = random.Random(cfg.seed + i).sample(range(len(records)), src.max_samples)
            records = [records[k] for k in sorted(keep)]
        if d.eval_file:
            parts.append((src, records, []))
            continue
        fraction = d.eval_fraction if src.eval_fraction is None else src.eval_fraction
        tr, ev, n_loose = split_by(
            records, d.holdout_by, fraction, cfg.seed + i, d.holdout_fraction
        )
        parts.append((src, tr, ev))
        ungrouped += n_loose
    if d.eval_file:
        held = load_any(d.eval_file, strict=d.strict, refs=d.refs, root=PROJECT_ROOT)
        skipped += [s.located(d.eval_file) for s in held.skipped]
        held_out, _ = dedup(in_languages(held.records, d.languages))
        if d.holdout_by != "none":  # a file held out as a whole: its groups too
            held_out = [r | {"held_out": d.holdout_by} for r in held_out]
    else:
        held_out, n = dedup([r for _, _, ev in parts for r in ev])
        dups += n
    train, mix, leaked, repeated, dropped = mix_train(parts, held_out, cfg)
    if not train:  # refused here, before a run directory is touched
        raise DataError(
            f"no training record is left: {leaked} are eval questions, {dropped} share a "
            f"{d.holdout_by} with eval, of {loaded_total} loaded. Give more data, or hold out less."
        )
    holdout = holdout_summary(train, held_out, d.holdout_by, ungrouped, dropped)
    return Splits(train, held_out, loaded_total, skipped, dups + repeated, leaked, mix, other,
                  holdout)  # fmt: skip


def holdout_summary(
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    by: str,
    ungrouped: int,
    dropped: int,
) -> Holdout:
    """The :class:`Holdout` line of the data report (empty for ``none``)."""
    if by == "none":
        return Holdout()
    whole = eval_groups(held_out, by)
    names = sorted(whole) if by == "template" else []
    key = GROUP_FIELDS[by]
    in_group = sum(bool(r.get(key)) and r.get("held_out") != by for r in held_out)
    return Holdout(
        by, count_groups(train, by), len(whole), ungrouped, dropped, names, in_group
    )
