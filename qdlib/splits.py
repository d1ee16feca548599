"""Lesson 01's whole data step: every source loaded, filtered, deduplicated, split and mixed.

One source (``data.train_file``) or a weighted mix (``data.sources``): each is split on its own,
so every source is represented in eval, and a held-out question never reaches training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from qdlib.config import PROJECT_ROOT, Config, SourceSection
from qdlib.data import (
    Skipped,
    dedup,
    detect_language,
    normalize_question,
    split_records,
    step_count_histogram,
)
from qdlib.sources import load_any


def in_languages(
    records: list[dict[str, Any]], languages: list[str] | None
) -> list[dict[str, Any]]:
    """The records whose question is in one of ``languages`` (all of them when None)."""
    if languages is None:
        return records
    return [r for r in records if detect_language(r["question"]) in languages]


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

    def report(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "skipped": [vars(s) for s in self.skipped],
            "duplicates_dropped": self.duplicates,
            "other_languages_left_out": self.other_languages,
            "eval_questions_dropped_from_train": self.leaked,
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
        if len(self.mix) > 1:
            lines += [
                f"  {m['spec']}: {m['records']} records, weight {m['weight']} -> "
                f"train {m['train']}, eval {m['eval']}"
                for m in self.mix
            ]
        return "\n".join(lines)


def weight_records(
    records: list[dict[str, Any]], weight: float, rng: random.Random
) -> list[dict[str, Any]]:
    """Down- or up-sample: weight 0.5 keeps a seeded half, 2.5 repeats all twice plus a half."""
    whole = int(weight)
    part = rng.sample(records, round((weight - whole) * len(records)))
    return records * whole + part


def prepare_splits(cfg: Config) -> Splits:
    """Load every source, validate, dedup, cap, split each by seed, weight the training parts, mix.

    Each source is split on its own (so every source is represented in eval), then training
    records whose question is in eval, or already taken from an earlier source, are dropped
    before weighting: a held-out question never reaches training.
    """
    d = cfg.data
    sources = d.sources or [SourceSection(d.train_file, 1.0, d.max_samples)]
    several = len(sources) > 1
    skipped: list[Skipped] = []
    loaded_total = dups = other = 0
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
        else:
            parts.append((src, *split_records(records, d.eval_fraction, cfg.seed + i)))
    if d.eval_file:
        held = load_any(d.eval_file, strict=d.strict, refs=d.refs, root=PROJECT_ROOT)
        skipped += [s.located(d.eval_file) for s in held.skipped]
        held_out, _ = dedup(in_languages(held.records, d.languages))
    else:
        held_out, n = dedup([r for _, _, ev in parts for r in ev])
        dups += n
    taken = {normalize_question(r["question"]) for r in held_out}
    train, mix, leaked = [], [], 0
    for i, (src, tr, ev) in enumerate(parts):
        kept = [r for r in tr if normalize_question(r["question"]) not in taken]
        leaked += len(tr) - len(kept)
        taken |= {normalize_question(r["question"]) for r in kept}
        weighted = weight_records(kept, src.weight, random.Random(cfg.seed + i))
        train += weighted
        mix.append(
            {
                "spec": src.spec,
                "records": len(tr) + len(ev),
                "weight": src.weight,
                "train": len(weighted),
                "eval": len(ev),
            }
        )
    if several:
        random.Random(cfg.seed).shuffle(train)
    return Splits(train, held_out, loaded_total, skipped, dups, leaked, mix, other)
