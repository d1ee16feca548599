"""Task metrics for decompositions: does the model write the right sub-questions, in a usable form?

Each metric takes the gold sub-questions and a prediction (a list of sub-questions, or ``None``
when the output could not be parsed) and gives a number per example; :func:`aggregate` averages.

- ``format_valid``: the output parsed as a numbered list and generation stopped by itself (EOS).
- ``step_count_correct``: as many sub-questions as the gold decomposition.
- ``step_count_error``: absolute difference in the number of sub-questions.
- ``exact_match``: every sub-question equal to the gold one after :func:`normalize`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any


def normalize(text: str) -> str:
    """Unicode NFC, lower case, single spaces, no trailing punctuation."""
    text = unicodedata.normalize("NFC", text).casefold()
    return re.sub(r"\s+", " ", text).strip().rstrip(" ?？.!。")


def exact_match(gold: list[str], pred: list[str] | None) -> float:
    if pred is None or len(pred) != len(gold):
        return 0.0
    return float(all(normalize(g) == normalize(p) for g, p in zip(gold, pred, strict=True)))


def step_count_correct(gold: list[str], pred: list[str] | None) -> float:
    return float(pred is not None and len(pred) == len(gold))


def step_count_error(gold: list[str], pred: list[str] | None) -> float:
    return float(abs(len(gold) - len(pred or [])))


def score_example(gold: list[str], pred: list[str] | None, stopped: bool) -> dict[str, float]:
    """All per-example scores for one prediction."""
    return {
        "format_valid": float(pred is not None and stopped),
        "step_count_correct": step_count_correct(gold, pred),
        "step_count_error": step_count_error(gold, pred),
        "exact_match": exact_match(gold, pred),
    }


def aggregate(scores: list[dict[str, float]]) -> dict[str, Any]:
    """Mean of each score over examples, with the number of examples."""
    if not scores:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(scores)}
    for key in scores[0]:
        out[key] = sum(s[key] for s in scores) / len(scores)
    return out
