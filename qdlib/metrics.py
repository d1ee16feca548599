"""Task metrics for decompositions: does the model write the right sub-questions, in a usable form?

Each metric compares the gold sub-questions with a prediction (a list of sub-questions, or ``None``
when the output could not be parsed) and gives a number per example; :func:`aggregate` averages.

- ``format_valid``: the output parsed into sub-questions and generation stopped by itself (EOS).
- ``step_count_correct`` / ``step_count_error``: same number of steps as gold / absolute difference.
- ``exact_match``: every sub-question equal to the gold one after :func:`normalize`.
- ``sari``: SARI (Xu et al., 2016) exactly as the StrategyQA leaderboard evaluator computes it for
  decompositions; see :func:`sari`.
- ``rouge_l``: ROUGE-L F1 over Unicode word tokens (Hangul kept), steps joined with spaces.
- ``chrf``: chrF (Popović, 2015; beta 2, character 1- to 6-grams, spaces ignored), Korean-safe.
- ``refs_valid``: every ``#k`` reference points to an earlier step (1 <= k < its own step);
  ``None`` (not applicable) where the gold steps use no ``#k``.
- ``content_recall``: of the question's content terms (names, numbers, titles: the words that
  are rare among the questions scored together) that the gold steps carry, the share the
  predicted steps carry too; see :func:`content_recall`. SARI and chrF reward a template's words;
  this one asks whether the right *things* are in the steps.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from qdlib.data import STEP_REF, detect_language, normalize_question

# ---------------------------------------------------------------- normalisation and structure


def normalize(text: str) -> str:
    """Unicode NFC, lower case, single spaces, no trailing punctuation (the dedup key, too)."""
    return normalize_question(text)


def exact_match(gold: list[str], pred: list[str] | None) -> float:
    if pred is None or len(pred) != len(gold):
        return 0.0
    return float(all(normalize(g) == normalize(p) for g, p in zip(gold, pred, strict=True)))


def step_count_correct(gold: list[str], pred: list[str] | None) -> float:
    return float(pred is not None and len(pred) == len(gold))


def step_count_error(gold: list[str], pred: list[str] | None) -> float:
    return float(abs(len(gold) - len(pred or [])))


def references_valid(steps: list[str] | None, gold: list[str] | None = None) -> float | None:
    """1.0 when every ``#k`` in step i (1-based) has 1 <= k < i; 0.0 otherwise or unparsed.

    ``None`` (does not apply) when the ``gold`` steps use no ``#k`` at all: a dataset without
    references says nothing about them.
    """
    if gold is not None and not any(STEP_REF.search(g) for g in gold):
        return None
    if steps is None:
        return 0.0
    for i, step in enumerate(steps, start=1):
        if any(not 1 <= int(k) < i for k in STEP_REF.findall(step)):
            return 0.0
    return 1.0


# ---------------------------------------------------------------- SARI (StrategyQA evaluator)


def sari_tokens(text: str) -> list[str]:
    """The StrategyQA evaluator's tokenization: ``?`` split off, then whitespace."""
    return text.replace("?", " ?").split()


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    """Each distinct n-gram once (SARI works on n-gram *sets*)."""
    return Counter({tuple(tokens[i : i + n]): 1 for i in range(len(tokens) + 1 - n)})


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 1.0  # 0/0 = 1: nothing to do, done perfectly


def _f1(tp: float, selected: float, relevant: float) -> float:
    precision, recall = _ratio(tp, selected), _ratio(tp, relevant)
    return 2 * precision * recall / (precision + recall) if precision > 0 and recall > 0 else 0.0


def sari_parts(source: list[str], prediction: list[str], target: list[str]) -> dict[str, float]:
    """SARI and its keep, add and delete scores for one source, prediction and reference.

    For n = 1..4 over n-gram sets S (source), P (prediction) and T (reference):
    keep = F1 of S&P against S&T, add = F1 of P-S against T-S, delete = precision of S-P
    against S-T; each is averaged over n and SARI is the mean of the three. A ratio with an
    empty denominator counts as 1. This is the Tensor2Tensor variant the StrategyQA leaderboard
    uses (with its fix to the deletion score).
    """
    keep = add = delete = 0.0
    for n in range(1, 5):
        s, p, t = _ngrams(source, n), _ngrams(prediction, n), _ngrams(target, n)
        kept, should_keep = s & p, s & t
        tp = sum((kept & should_keep).values())
        keep += _f1(tp, sum(kept.values()), sum(should_keep.values()))
        added = p - s
        add += _f1(sum((added & t).values()), sum(added.values()), sum((t - s).values()))
        deleted, should_delete = s - p, s - t
        delete += _ratio(sum((deleted & should_delete).values()), sum(deleted.values()))
    parts = {"keep": keep / 4, "add": add / 4, "delete": delete / 4}
    return {"sari": sum(parts.values()) / 3, **parts}


def sari(question: str, gold: list[str], pred: list[str] | None) -> float:
    """SARI of a decomposition as the StrategyQA leaderboard scores it.

    The question is the source, the gold steps joined with spaces the single reference, the
    predicted steps joined with spaces the prediction (an unparsed output counts as empty).
    """
    return sari_parts(
        sari_tokens(question), sari_tokens(" ".join(pred or [])), sari_tokens(" ".join(gold))
    )["sari"]


# ---------------------------------------------------------------- ROUGE-L and chrF


def words(text: str) -> list[str]:
    """Lower-cased Unicode word tokens: Hangul, Latin, digits; punctuation dropped."""
    return re.findall(r"\w+", unicodedata.normalize("NFC", text).casefold())


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1: longest common subsequence of word tokens (Lin, 2004)."""
    ref, cand = words(reference), words(candidate)
    if not ref or not cand:
        return float(ref == cand)
    prev = [0] * (len(cand) + 1)
    for r in ref:
        row = [0]
        for j, c in enumerate(cand, start=1):
            row.append(prev[j - 1] + 1 if r == c else max(prev[j], row[j - 1]))
        prev = row
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def chrf(reference: str, candidate: str, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF: character n-gram F-beta, precision and recall averaged over n = 1..max_n.

    Whitespace is removed first (as in sacreBLEU's chrF); orders for which either side has no
    n-grams are skipped. Works on any script, Hangul included.
    """
    ref = re.sub(r"\s+", "", unicodedata.normalize("NFC", reference))
    cand = re.sub(r"\s+", "", unicodedata.normalize("NFC", candidate))
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        r = Counter(ref[i : i + n] for i in range(len(ref) - n + 1))
        c = Counter(cand[i : i + n] for i in range(len(cand) - n + 1))
        if not r or not c:
            continue
        overlap = sum((r & c).values())
        precisions.append(overlap / sum(c.values()))
        recalls.append(overlap / sum(r.values()))
    if not precisions:
        return float(ref == cand)
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r)


# ---------------------------------------------------------------- content carried over

# Korean particles (josa) that attach to a noun: "안창호가", "안창호는" and "안창호의" are one name.
_PARTICLES = sorted(
    "에서는 에서 으로 에게 까지 부터 보다 처럼 과 와 의 가 이 는 은 를 을 에 로 도 만".split(),
    key=len,
    reverse=True,
)
COMMON_SHARE, COMMON_MIN = 0.03, 3  # a term in 3% of the questions, and 3, is a template word


def _is_hangul(word: str) -> bool:
    return any("가" <= c <= "힣" for c in word)


def term(word: str) -> str:
    """A word as a content term: a Korean word loses its trailing particle (안창호가 -> 안창호)."""
    if _is_hangul(word):
        for p in _PARTICLES:
            if word.endswith(p) and len(word) > len(p):
                return word[: -len(p)]
    return word


def question_terms(question: str) -> set[str]:
    return {term(w) for w in words(question)}


def common_terms(questions: Iterable[str], share: float = COMMON_SHARE) -> frozenset[str]:
    """Terms frequent among ``questions``: the template's words ("capital", "태어난"), not content.

    A term is common when at least ``share`` of the questions, and at least 3, contain it. The
    more questions, the better the estimate: evaluation passes the training questions too.
    """
    questions = list(questions)
    df = Counter(t for q in questions for t in question_terms(q))
    floor = max(COMMON_MIN, share * len(questions))
    return frozenset(t for t, n in df.items() if n >= floor)


def carries(text_words: list[str], content: str) -> bool:
    """Whether text (as :func:`words`) holds a content term; a Korean word may add a particle."""
    return any(term(w) == content or (_is_hangul(content) and w.startswith(content))
               for w in text_words)  # fmt: skip


def content_recall(
    question: str, gold: list[str], pred: list[str] | None, common: frozenset[str] = frozenset()
) -> float | None:
    """Share of the question's content terms, as carried by the gold steps, that ``pred`` carries.

    Content terms are the question's terms that are not ``common`` (see :func:`common_terms`)
    and that the gold steps repeat, so a gold decomposition scores 1.0 by construction. ``None``
    when there are none (nothing to carry: the example does not count); 0.0 when unparsed.

    >>> common = frozenset({"태어난", "나라", "어디서", "태어났는가"})
    >>> gold = ["안창호는 어디서 태어났는가?"]
    >>> content_recall("안창호가 태어난 나라는?", gold, ["안창호는 어디서 태어났는가?"], common)
    1.0
    >>> content_recall("안창호가 태어난 나라는?", gold, ["신사임당은 어디서 태어났는가?"], common)
    0.0
    """
    gold_words = words(" ".join(gold))
    content = {t for t in question_terms(question) - common if carries(gold_words, t)}
    if not content:
        return None
    if pred is None:
        return 0.0
    pred_words = words(" ".join(pred))
    return sum(carries(pred_words, t) for t in content) / len(content)


# ---------------------------------------------------------------- per example and overall


def score_example(
    gold: list[str],
    pred: list[str] | None,
    stopped: bool,
    question: str = "",
    common: frozenset[str] = frozenset(),
) -> dict[str, float | None]:
    """All per-example scores for one prediction (``common``: see :func:`common_terms`)."""
    joined_gold, joined_pred = " ".join(gold), " ".join(pred or [])
    return {
        "format_valid": float(pred is not None and stopped),
        "step_count_correct": step_count_correct(gold, pred),
        "step_count_error": step_count_error(gold, pred),
        "exact_match": exact_match(gold, pred),
        "sari": sari(question, gold, pred),
        "rouge_l": rouge_l(joined_gold, joined_pred),
        "chrf": chrf(joined_gold, joined_pred),
        "refs_valid": references_valid(pred, gold),
        "content_recall": content_recall(question, gold, pred, common),
    }


def aggregate(scores: list[dict[str, float | None]]) -> dict[str, Any]:
    """Mean of each score over the examples it applies to (``None``: does not apply).

    ``n`` is the number of examples; ``applies`` counts, for the scores that skip some, how many
    examples each mean is over. A score that applies to none is ``None``, never 0 or 1.
    """
    if not scores:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(scores)}
    applies: dict[str, int] = {}
    for key in scores[0]:
        values = [s[key] for s in scores if s[key] is not None]
        out[key] = sum(values) / len(values) if values else None
        if len(values) < len(scores):
            applies[key] = len(values)
    if applies:
        out["applies"] = applies
    return out


def bootstrap_ci(
    values: Iterable[float], seed: int, n_boot: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of ``values`` (95% by default).

    Draw ``len(values)`` values with replacement, ``n_boot`` times; the interval holds the middle
    ``level`` of those resamples' means. Same seed, same interval. With few examples it is wide:
    a difference between two models inside it may be luck.
    """
    values = list(values)
    if not values:
        raise ValueError("bootstrap_ci: no values; an interval needs at least one example.")
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(n_boot))
    cut = round((1 - level) / 2 * n_boot)  # resamples left out at each end
    return means[cut], means[n_boot - 1 - cut]


# ---------------------------------------------------------------- reading and scoring answers

_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"


_NUMBERED = re.compile(r"^\s*(?:(?:step\s*)?\(?(\d+)\s*[.):]|\(?(\d+)\))\s*(.*\S)\s*$", re.I)


_CIRCLED_ITEM = re.compile(rf"^\s*([{_CIRCLED}])\s*(.*\S)\s*$")


_BULLET = re.compile(r"^\s*[-*•·▪‣]\s+(.*\S)\s*$")


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



def score(
    records: list[dict[str, Any]],
    generations: list[Any],
    reference: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Per-example predictions and scores for records and their generations
    (:class:`qdlib.inference.Generation`: an answer's text and whether it stopped).

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

