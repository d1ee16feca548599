"""Catch bad data before it costs GPU hours: ``qd data check`` and the report in lesson 01.

The report counts records, lists invalid ones with their reasons, finds duplicates (after
Unicode NFC normalisation, so NFD and NFC Hangul match) inside the data and across train and eval
(leakage), shows step counts, token lengths with the profile's tokenizer and how many examples
``max_seq_length`` cuts, and the Korean/English mix.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdlib.data import Skipped, detect_language, normalize_question, step_count_histogram
from qdlib.prompts import encode_example
from qdlib.sources import load_any


@dataclass
class DataReport:
    """Everything ``qd data check`` prints; ``ok`` is False on invalid records or leakage."""

    source: str
    records: int
    skipped: list[Skipped]
    duplicates: list[list[str]]
    leaked: list[str] = field(default_factory=list)
    steps: dict[int, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    token_lengths: list[int] = field(default_factory=list)
    max_seq_length: int | None = None
    truncated: int | None = None

    @property
    def errors(self) -> list[Skipped]:
        """Invalid records (a dataset converter's by-design skips are not errors)."""
        return [s for s in self.skipped if s.kind == "invalid"]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.leaked

    def __str__(self) -> str:
        skipped = len(self.skipped) - len(self.errors)
        out = [
            f"{self.source}: {self.records} valid records, {len(self.errors)} invalid, "
            f"{skipped} skipped by the converter"
        ]
        out += [f"  {s.kind} {s.where}: {s.reason}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            out.append(f"  ... and {len(self.skipped) - 20} more")
        out.append(f"duplicates (same question after normalising): {len(self.duplicates)} groups")
        out += [f"  {' | '.join(group[:3])}" for group in self.duplicates[:10]]
        if self.leaked:
            out.append(f"LEAKAGE: {len(self.leaked)} eval questions also in train")
            out += [f"  {q}" for q in self.leaked[:10]]
        total = sum(self.languages.values()) or 1
        out.append(
            "languages: "
            + ", ".join(
                f"{k} {v} ({100 * v / total:.0f}%)" for k, v in sorted(self.languages.items())
            )
        )
        out.append("sub-questions per record:")
        out += _bars({str(k): v for k, v in self.steps.items()})
        if self.token_lengths:
            lengths = sorted(self.token_lengths)
            out.append(
                f"tokens per example (prompt + answer + EOS): min {lengths[0]}, median "
                f"{lengths[len(lengths) // 2]}, max {lengths[-1]}; "
                f"{self.truncated} cut by max_seq_length={self.max_seq_length}"
            )
            out += _bars(_bins(lengths))
        out.append("OK" if self.ok else "PROBLEMS FOUND (see above)")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "token_lengths"}
        d["skipped"] = [vars(s) for s in self.skipped]
        d["ok"] = self.ok
        return d


def _bars(counts: dict[str, int], width: int = 40) -> list[str]:
    top = max(counts.values(), default=1) or 1
    return [
        f"  {k:>9} {'#' * max(1, round(width * v / top)) if v else ''} {v}"
        for k, v in counts.items()
    ]


def _bins(values: list[int], n: int = 8) -> dict[str, int]:
    lo, hi = values[0], values[-1]
    step = max(1, -(-(hi - lo + 1) // n))
    counts: dict[str, int] = {}
    for start in range(lo, hi + 1, step):
        counts[f"{start}-{start + step - 1}"] = sum(start <= v < start + step for v in values)
    return counts


def duplicate_groups(records: list[dict[str, Any]]) -> list[list[str]]:
    """Questions that normalise to the same key, grouped (each group has two or more)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        groups[normalize_question(rec["question"])].append(rec["question"])
    return [g for g in groups.values() if len(g) > 1]


def check_data(
    spec: str,
    eval_spec: str | None = None,
    tokenizer: Any | None = None,
    max_seq_length: int | None = None,
    refs: str = "keep",
    root: Path | None = None,
) -> DataReport:
    """Report on a data source (and its leakage into ``eval_spec``), loading leniently."""
    loaded = load_any(spec, strict=False, refs=refs, root=root)
    records = loaded.records
    report = DataReport(
        source=spec,
        records=len(records),
        skipped=list(loaded.skipped),
        duplicates=duplicate_groups(records),
        steps=step_count_histogram(records),
        languages=dict(Counter(detect_language(r["question"]) for r in records)),
    )
    if eval_spec:
        held = load_any(eval_spec, strict=False, refs=refs, root=root)
        report.skipped += [s.located(eval_spec) for s in held.skipped]
        train_keys = {normalize_question(r["question"]) for r in records}
        report.leaked = [
            r["question"] for r in held.records if normalize_question(r["question"]) in train_keys
        ]
    if tokenizer is not None:
        lengths = [len(encode_example(r, tokenizer, 10**9)["input_ids"]) for r in records]
        report.token_lengths = lengths
        report.max_seq_length = max_seq_length
        report.truncated = sum(n > max_seq_length for n in lengths) if max_seq_length else 0
    return report


# ---------------------------------------------------------------- what a language costs


def tokens_per_character(tokenizer: Any, texts: list[str]) -> float:
    """Tokens the tokenizer spends per character of ``texts`` (spaces included)."""
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return tokens / max(1, sum(len(t) for t in texts))


def hangul_tokens(tokenizer: Any) -> int:
    """How many vocabulary entries hold a whole Hangul syllable (0: Korean is spelled in bytes)."""
    return sum(
        any("가" <= c <= "힣" for c in tokenizer.decode([i])) for i in range(len(tokenizer))
    )


def tokenizer_costs(tokenizers: dict[str, Any], texts: dict[str, list[str]]) -> str:
    """A Markdown table: per tokenizer, tokens per character and per text (question) in each
    language, and its Hangul vocabulary. ``tokenizers`` maps a name to a tokenizer, or to why it
    is not available. Per character shows the vocabulary; per question is what training pays
    (Korean questions are shorter than English ones)."""
    langs = list(texts)
    head = [f"tokens per character ({lang})" for lang in langs]
    head += [f"tokens per question ({lang})" for lang in langs] + ["Hangul syllables in vocab"]
    lines = ["| tokenizer | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name, tok in tokenizers.items():
        if isinstance(tok, str):
            lines.append(f"| {name} | " + " | ".join(["-"] * (2 * len(langs))) + f" | {tok} |")
            continue
        per_char = {lang: tokens_per_character(tok, texts[lang]) for lang in langs}
        chars = {lang: sum(map(len, texts[lang])) / max(1, len(texts[lang])) for lang in langs}
        cells = [f"{per_char[lang]:.2f}" for lang in langs]
        cells += [f"{per_char[lang] * chars[lang]:.1f}" for lang in langs]
        cells.append(f"{hangul_tokens(tok):,} of {len(tok):,}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
