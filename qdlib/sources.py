"""Public decomposition datasets in, ``{"question", "sub_questions"}`` records out.

Each converter reads the dataset's own file layout (or, online, its Hugging Face id) and yields
records with the source id kept in ``id`` and the dataset's name in ``source``. No input row is
lost silently: every row becomes a record or a line in the skip report.

What ``#k`` means in each dataset (kept as it is by default; ``refs="words"`` rewrites it):

- StrategyQA: ``decomposition`` steps refer to the answer of an earlier step as ``#1``, ``#2``.
- BREAK (QDMR): each step ``return ...`` may refer to the *result* of step k as ``#k``.
- MuSiQue: ``question_decomposition[i].question`` refers to earlier answers as ``#1``; some
  steps use knowledge-base notation ``entity >> relation``, kept verbatim.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qdlib.data import (
    STEP_REF,
    DataError,
    LoadResult,
    Skipped,
    detect_language,
    hub_dataset,
    json_value,
    load_source,
    read_utf8,
    record_problem,
)
from qdlib.files import BadLine, jsonl_lines

FORMATS = ("records", "strategyqa", "break", "musique")
REF_WORDS = {"en": "the answer to step {k}", "ko": "{k}단계의 답"}


def rewrite_refs(step: str, language: str) -> str:
    """``"Is #2 before #1?"`` -> ``"Is the answer to step 2 before the answer to step 1?"``."""
    return STEP_REF.sub(lambda m: REF_WORDS[language].format(k=m.group(1)), step)


def refs_in_words(rec: dict[str, Any]) -> dict[str, Any]:
    """The record with every ``#k`` in its steps written out, in the question's language."""
    lang = detect_language(rec["question"])
    return rec | {"sub_questions": [rewrite_refs(s, lang) for s in rec["sub_questions"]]}


def _finish(
    rows: list[tuple[str, dict[str, Any] | None, str]], source: str, refs: str, gold: bool = True
) -> LoadResult:
    """Validate converted rows (``gold``: see :func:`qdlib.data.record_problem`). A ``None``
    record is a skip: by design (a dataset's test row), unless its reason says the row is broken
    (``"invalid: ..."``)."""
    result = LoadResult(records=[], source=source)
    for where, rec, reason in rows:
        if rec is None:
            kind, _, text = (
                reason.partition(": ")
                if reason.startswith("invalid: ")
                else ("skipped", "", reason)
            )
            result.skipped.append(Skipped(where, text, kind=kind))
            continue
        problem = record_problem(rec, gold)
        if problem:
            result.skipped.append(Skipped(where, problem))
            continue
        result.records.append(refs_in_words(rec) if refs == "words" else rec)
    if not result.records:
        raise DataError(f"{source}: no usable records ({len(result.skipped)} skipped).")
    return result


def strategyqa(path: Path, refs: str = "keep", gold: bool = True) -> LoadResult:
    """StrategyQA JSON: a list of ``{qid, question, answer, facts, decomposition, evidence}``
    (``gold=False``: a model's predictions in that layout, their ``#k`` kept as written)."""
    data = json_value(Path(path))
    if not isinstance(data, list):
        raise DataError(f"{path}: StrategyQA files are a JSON list of questions.")
    rows = []
    for i, item in enumerate(data):
        where = f"index {i}"
        if not isinstance(item, dict) or "decomposition" not in item:
            rows.append((where, None, 'no "decomposition" (StrategyQA test files have none).'))
            continue
        rec = {
            "id": item.get("qid", str(i)),
            "question": item.get("question"),
            "sub_questions": item["decomposition"],
            "source": "strategyqa",
        }
        rows.append((where, rec, ""))
    return _finish(rows, str(path), refs, gold)


def break_qdmr(path: Path, refs: str = "keep") -> LoadResult:
    """BREAK CSV (QDMR or QDMR-high-level): ``question_id, question_text, decomposition, ...``.

    Steps are separated by ``;`` and start with ``return``; the word is dropped. Test-set rows
    have an empty decomposition and are skipped with a reason.
    """
    reader = csv.DictReader(io.StringIO(read_utf8(Path(path))))
    try:
        return _finish(list(_break_rows(reader, path)), str(path), refs)
    except csv.Error as exc:  # a field over the csv module's limit, a stray NUL, ...
        raise DataError(f"{path}, line {reader.line_num}: not readable as CSV ({exc}).") from None


def _break_rows(reader: csv.DictReader, path: Path) -> Iterator[tuple[str, Any, str]]:
    need = {"question_id", "question_text", "decomposition"}
    if not need <= set(reader.fieldnames or []):
        raise DataError(
            f"{path}: a BREAK CSV needs the columns {sorted(need)}; got {reader.fieldnames}."
        )
    for row in reader:
        where = f"line {reader.line_num}"
        decomposition = (row["decomposition"] or "").strip()
        if not decomposition:
            yield where, None, "empty decomposition (a BREAK test-set row)."
            continue
        steps = [re.sub(r"^\s*return\s+", "", s).strip() for s in decomposition.split(";")]
        rec = {
            "id": row["question_id"],
            "question": row["question_text"],
            "sub_questions": steps,
            "source": "break",
        }
        yield where, rec, ""


def musique(path: Path, refs: str = "keep") -> LoadResult:
    """MuSiQue JSONL: ``{id, question, question_decomposition: [{question, ...}], answerable}``."""
    rows = []
    for lineno, item in jsonl_lines(read_utf8(Path(path))):
        where = f"line {lineno}"
        if isinstance(item, BadLine):
            rows.append((where, None, f"invalid: {item.reason}"))
            continue
        steps = item.get("question_decomposition") if isinstance(item, dict) else None
        if not isinstance(steps, list) or not steps:
            rows.append((where, None, 'no "question_decomposition" list.'))
            continue
        rec = {
            "id": item.get("id", str(lineno)),
            "question": item.get("question"),
            "sub_questions": [s.get("question") if isinstance(s, dict) else s for s in steps],
            "source": "musique",
        }
        rows.append((where, rec, ""))
    return _finish(rows, str(path), refs)


CONVERTERS: dict[str, Callable[..., LoadResult]] = {
    "strategyqa": strategyqa,
    "break": break_qdmr,
    "musique": musique,
}


def parse_spec(spec: str) -> tuple[str, str]:
    """``"strategyqa:data/strategyqa_train.json"`` -> ``("strategyqa", "data/...")``.

    Without a known prefix the spec is our own records format (a file or a hub id).
    """
    fmt, sep, rest = spec.partition(":")
    if sep and fmt in FORMATS:
        return fmt, rest
    return "records", spec


def load_any(
    spec: str, strict: bool = True, refs: str = "keep", root: Path | None = None
) -> LoadResult:
    """Records from any supported source: ``FILE``, ``HUB_ID`` or ``FORMAT:FILE_OR_HUB_ID``.

    ``strict`` applies to our own records format. A converter never stops on a row: dataset
    quirks (BREAK test rows without a decomposition, ...) are expected and go to the skip report.
    """
    fmt, target = parse_spec(spec)
    if fmt == "records":
        result = load_source(target, strict=strict, root=root)
        if refs == "words":
            result.records = [refs_in_words(rec) for rec in result.records]
        return result
    path = Path(target).expanduser()
    if not path.is_absolute() and root is not None and (root / path).exists():
        path = root / path
    if path.exists():
        return CONVERTERS[fmt](path, refs=refs)
    with tempfile.TemporaryDirectory(prefix="qdlib-") as folder:  # gone once converted
        return CONVERTERS[fmt](_download(fmt, target, Path(folder)), refs=refs)


def _download(fmt: str, name: str, folder: Path) -> Path:
    """A hub dataset saved to a file in ``folder``, in the converter's layout (online only)."""
    ds = hub_dataset(name, f"Download the {fmt} files and give their path.")
    out = folder / f"{fmt}.{'csv' if fmt == 'break' else 'json'}"
    rows = [dict(r) for r in ds]
    if fmt == "break":
        ds.to_csv(str(out), index=False)
    elif fmt == "musique":
        out = out.with_suffix(".jsonl")
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    else:
        out.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return out
