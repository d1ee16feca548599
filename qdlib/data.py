"""Lesson 01: records, read and checked.

A record is ``{"question": str, "sub_questions": [str, ...]}`` (other keys are kept). Files are a
JSON list (errors name the index) or JSONL (errors name the line); every problem names the file,
the line or index, and the field. What the model sees of a record is :mod:`qdlib.prompts`.
"""

from __future__ import annotations

import json
import os
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qdlib import files
from qdlib.files import BadLine, escaped, jsonl_lines, unique_keys

# "#2" in a step means the answer of step 2 (StrategyQA, BREAK and MuSiQue write it so)
STEP_REF = re.compile(r"#(\d+)")



class DataError(ValueError):
    """A record or file that cannot be used; the message names the file, line or index, field."""


@dataclass
class Skipped:
    """One input row left out, and why.

    ``kind`` is ``"invalid"`` for a record that breaks the format (an error to fix) or
    ``"skipped"`` for a row a dataset converter leaves out by design (e.g. a test-set row with no
    decomposition).
    """

    where: str
    reason: str
    kind: str = "invalid"

    def located(self, source: str) -> Skipped:
        """The same skip, its place prefixed with the file or source it came from."""
        return replace(self, where=f"{source}, {self.where}")


@dataclass
class LoadResult:
    """Records that passed validation, and a report of those that did not."""

    records: list[dict[str, Any]]
    skipped: list[Skipped] = field(default_factory=list)
    source: str = ""

    def report(self) -> str:
        lines = [f"{self.source}: {len(self.records)} records loaded, {len(self.skipped)} skipped."]
        lines += [f"  {s.where}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


# ---------------------------------------------------------------- validation and loading


MAX_TEXT_CHARS = 2000  # a question or a sub-question; the longest in the public datasets is ~500
MAX_STEPS = 32


def text_problem(text: Any, field_name: str) -> str | None:
    """What is wrong with one text field: not a string, empty, too long, a control character,
    or nothing visible (only zero-width or format characters)."""
    if not isinstance(text, str):
        return f"{field_name} must be a non-empty string; got {_kind(text)}."
    if not text.strip():
        return f"{field_name} must be a non-empty string; got an empty string."
    if len(text) > MAX_TEXT_CHARS:
        return (
            f"{field_name} is {len(text):,} characters long; at most {MAX_TEXT_CHARS:,} are "
            f"allowed (it starts {shown(text, 40)})."
        )
    for i, c in enumerate(text):
        if unicodedata.category(c) == "Cc" and c not in "\t\n\r":
            return f"{field_name} holds a control character (U+{ord(c):04X}) at position {i}."
        if unicodedata.category(c) == "Cs":  # half of a pair: no character, and no UTF-8 for it
            return (f"{field_name} holds a lone surrogate (U+{ord(c):04X}) at position {i}: "
                    "half of a character (an emoji cut in two?), not text.")  # fmt: skip
    if all(c.isspace() or unicodedata.category(c) == "Cf" for c in text):
        return f"{field_name} has no visible text (only zero-width or format characters)."
    return None


def record_problem(obj: Any, gold: bool = True) -> str | None:
    """What is wrong with one record, or ``None`` when it is valid. ``gold``: a decomposition to
    learn from, whose ``#k`` must each name an earlier step; a model's predictions (``False``)
    keep theirs, for the ``refs_valid`` metric to judge."""
    if not isinstance(obj, dict):
        return (
            f'a record must be a JSON object with "question" and "sub_questions"; got {_kind(obj)}.'
        )
    if "question" not in obj:
        return 'field "question" is missing.'
    problem = text_problem(obj["question"], 'field "question"')
    if problem:
        return problem
    if "sub_questions" not in obj:
        return 'field "sub_questions" is missing.'
    subs = obj["sub_questions"]
    if not isinstance(subs, list):
        return f'field "sub_questions" must be a non-empty list of strings; got {_kind(subs)}.'
    if not subs:
        return 'field "sub_questions" must be a non-empty list of strings; got an empty list.'
    if len(subs) > MAX_STEPS:
        return f'field "sub_questions" has {len(subs)} steps; at most {MAX_STEPS} are allowed.'
    for i, step in enumerate(subs):
        problem = text_problem(step, f'field "sub_questions" item {i}') or (
            ref_problem(step, i) if gold else None)  # fmt: skip
        if problem:
            return problem
    return None


def ref_problem(step: str, i: int) -> str | None:
    """A ``#k`` in item ``i`` (step ``i + 1``) must name an earlier step: ``#1`` to ``#i``."""
    bad = next((k for k in map(int, STEP_REF.findall(step)) if not 1 <= k <= i), None)
    if bad is None:
        return None
    before = f"only #1 to #{i} come before it" if i else "no step comes before it"
    return (f'field "sub_questions" item {i} refers to #{bad}, and {before}: "#k" is the '
            "answer of an earlier step k.")  # fmt: skip


def shown(text: str, limit: int = 80) -> str:
    """Text from data as a message shows it: on one line, quoted, escaped, cut at ``limit``."""
    one_line = escaped(text).replace("\n", "\\n").replace("\t", "\\t")
    cut = one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."
    return f"'{cut}'"


def _kind(v: Any) -> str:
    if isinstance(v, str):
        return f"the string {v!r:.40}"
    if v is None:
        return "null"
    name = {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return f"{name.get(type(v), type(v).__name__)} {json.dumps(v, ensure_ascii=False)[:40]}"


def load_records(path: str | Path, strict: bool = True, gold: bool = True) -> LoadResult:
    """Load and validate a ``.json`` (list) or ``.jsonl`` file of records.

    With ``strict=True`` the first bad record raises :class:`DataError`; with ``strict=False``
    bad records are skipped and listed in ``result.skipped``: never dropped silently. ``gold``:
    see :func:`record_problem` (a model's predictions are loaded with ``gold=False``).
    """
    path = Path(path)
    check_readable_file(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        raise DataError(
            f"{path}: a CSV file is not our records format. If it is BREAK's, give it as "
            f"break:{path}; otherwise convert it to JSONL (see data/DATA_FORMAT.md)."
        )
    text = read_utf8(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected records in JSON or JSONL.")
    jsonl = path.suffix == ".jsonl" or (path.suffix != ".json" and not text.lstrip()[:1] == "[")
    return _validate(items_of(path, text, jsonl), str(path), strict, gold)


def check_readable_file(path: Path) -> None:
    """A :class:`DataError` that says what is wrong with ``path``: missing, a folder, a link to
    nothing or a loop of links."""
    path = Path(path)
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            raise DataError(f"{path}: a symbolic link loop (it points back at itself).") from None
        except FileNotFoundError:
            raise DataError(f"{path}: a symbolic link to nothing ({os.readlink(path)}).") from None
    if not path.exists():
        raise DataError(f"{path}: no such file (looked in {Path.cwd()} for relative paths).")
    if path.is_dir():
        raise DataError(f"{path}: a folder; give a .json or .jsonl file.")


def read_utf8(path: Path) -> str:
    """The file's text, or a :class:`DataError` naming the line that is not UTF-8."""
    try:
        return files.read_utf8(path)
    except files.TextInputError as exc:
        raise DataError(str(exc)) from None


def json_value(path: Path, text: str | None = None) -> Any:
    """The JSON value of a file (or of its ``text``, already read), or a :class:`DataError` naming
    the file, line and column that are wrong: qdlib's one JSON reader for what a user gives."""
    try:
        return json.loads(read_utf8(path) if text is None else text, object_pairs_hook=unique_keys)
    except files.DuplicateKey as exc:
        raise DataError(f"{path}: {exc}; keep one.") from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})."
        ) from exc
    except RecursionError:
        raise DataError(f"{path}: not usable JSON: nested too deeply.") from None


def items_of(path: Path, text: str, jsonl: bool) -> list[tuple[str, Any]]:
    """``(where, value)`` per item of a JSONL file (``line N``) or a JSON list (``index N``)."""
    if jsonl:
        return [(f"line {lineno}", value) for lineno, value in jsonl_lines(text)]
    data = json_value(path, text)
    if not isinstance(data, list):
        raise DataError(
            f"{path}: a .json file must hold a list of records; got {_kind(data)}. "
            "Use JSONL (one record per line) or wrap the records in [ ... ]."
        )
    return [(f"index {i}", item) for i, item in enumerate(data)]


def _validate(
    items: list[tuple[str, Any]], source: str, strict: bool, gold: bool = True
) -> LoadResult:
    result = LoadResult(records=[], source=source)
    for where, obj in items:
        problem = obj.reason if isinstance(obj, BadLine) else record_problem(obj, gold)
        if problem is None:
            result.records.append(obj)
            continue
        if strict:
            bad = (isinstance(o, BadLine) or record_problem(o, gold) is not None for _, o in items)
            more = sum(bad) - 1
            extra = f" ({more} more bad records in this file.)" if more else ""
            raise DataError(
                f"{source}, {where}: {problem}{extra}\nFix the record, or load with strict=False "
                "to skip bad records and get a report of what was skipped."
            )
        result.skipped.append(Skipped(where, problem))
    if not result.records:
        reasons = [f"  {s.where}: {s.reason}" for s in result.skipped[:5]]
        more = len(result.skipped) - len(reasons)
        raise DataError(
            f"{source}: no valid records ({len(result.skipped)} skipped).{layout_hint(items)}\n"
            + "\n".join(reasons)
            + (f"\n  ... and {more} more." if more > 0 else "")
        )
    return result


def layout_hint(items: list[tuple[str, Any]]) -> str:
    """A hint when the records look like a public dataset's layout (``FORMAT:FILE`` reads it)."""
    first = next((obj for _, obj in items if isinstance(obj, dict)), {})
    layouts = {
        "decomposition": ("StrategyQA", "strategyqa"),
        "question_decomposition": ("MuSiQue", "musique"),
    }
    for key, (name, prefix) in layouts.items():
        if key in first and "sub_questions" not in first:
            return f" This looks like {name}: give it as {prefix}:PATH."
    return ""


def load_source(spec: str, strict: bool = True, root: Path | None = None) -> LoadResult:
    """A local file (``.json``/``.jsonl``) or a Hugging Face dataset id (``user/name``)."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    if path.exists() or path.suffix in {".json", ".jsonl"}:
        return load_records(path, strict=strict)
    return _load_hub_dataset(spec, strict)


def hub_dataset(name: str, fix: str) -> Any:
    """The ``train`` split of a Hugging Face dataset; when it cannot be had (offline, a typo, a
    private set), a :class:`DataError` that says why and ``fix``."""
    import datasets  # here, not at the top: `qd` imports this module and starts faster without

    try:
        return datasets.load_dataset(name, split="train")
    except Exception as exc:  # offline, missing, private: say which and what to do
        raise DataError(
            f"{name}: not a local file, and loading it as a Hugging Face dataset failed "
            f"({type(exc).__name__}: {exc}). {fix}"
        ) from exc


def _load_hub_dataset(name: str, strict: bool) -> LoadResult:
    ds = hub_dataset(name, "Check the path, or go online / log in for a hub id.")
    items = [(f"row {i}", dict(row)) for i, row in enumerate(ds)]
    return _validate(items, f"dataset {name}", strict)


# ---------------------------------------------------------------- cleaning and splitting


def normalize_question(text: str) -> str:
    """Key for duplicates: Unicode NFC, case-folded, single spaces, no trailing punctuation."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" ?？.!。")


def dedup(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Keep the first record of each normalized question; return (kept, number dropped)."""
    seen: set[str] = set()
    kept = []
    for rec in records:
        key = normalize_question(rec["question"])
        if key not in seen:
            seen.add(key)
            kept.append(rec)
    return kept, len(records) - len(kept)


def split_records(
    records: list[dict[str, Any]], eval_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle with ``seed`` and hold out ``eval_fraction`` (same seed, same split).

    ``datasets``' ``train_test_split`` does this much, but not the grouped holdout beside it
    (``qdlib.splits.split_by``: whole templates or entities), so both stay on plain records."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = round(len(records) * eval_fraction)
    if eval_fraction > 0 and len(records) > 1:
        n_eval = min(max(n_eval, 1), len(records) - 1)
    eval_ids = set(order[:n_eval])
    train = [records[i] for i in order if i not in eval_ids]
    held_out = [records[i] for i in order if i in eval_ids]
    return train, held_out


def detect_language(text: str) -> str:
    """``"ko"`` when Hangul makes up a noticeable share of the letters, else ``"en"``."""
    letters = [c for c in text if c.isalpha()]
    hangul = sum(1 for c in letters if "가" <= c <= "힣" or "ᄀ" <= c <= "ᇿ")
    return "ko" if letters and hangul / len(letters) >= 0.2 else "en"


def step_count_histogram(records: list[dict[str, Any]]) -> dict[int, int]:
    return dict(sorted(Counter(len(r["sub_questions"]) for r in records).items()))
