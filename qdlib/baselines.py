"""The baselines a tuned model's scores stand beside: what would a number be without fine-tuning?

- **Few-shot prompt**: the same untuned model, shown 3 worked examples from the training records
  before the question, drawn anew for each question: what to try before fine-tuning
  (:func:`few_shot_examples`, :func:`few_shot_prompt`, passed to :func:`qdlib.inference.generate`).
- **Rule baseline**: no model, no learning: the most similar training question's sub-questions,
  with the words that differ swapped in (:func:`rule_decompose`). Template filling, by hand.
- **Published predictions**: another system's decompositions, read from a file and joined by id
  (BART-large on StrategyQA dev: :func:`published_generations`).

Each gives :class:`~qdlib.evaluate.Generation` objects, so :func:`qdlib.evaluate.score` scores
them exactly as it scores the model. :func:`summary_with_ci` reports each metric with its n and,
for small samples, a 95% bootstrap interval.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from qdlib.data import DataError, detect_language, load_records, normalize_question, shown
from qdlib.inference import Generation
from qdlib.metrics import bootstrap_ci, term, words
from qdlib.prompts import prompt_ids, render_answer

N_SHOTS = 3


def as_generations(decompositions: list[list[str]]) -> list[Generation]:
    """Lists of sub-questions as answers written in the trained format, each stopped by itself."""
    return [Generation(render_answer(steps), True, []) for steps in decompositions]


# ---------------------------------------------------------------- few-shot prompt


def few_shot_examples(
    train: list[dict[str, Any]], question: str, seed: int, k: int = N_SHOTS
) -> list[dict[str, Any]]:
    """The ``k`` worked examples shown before ``question``: drawn from the training records by
    ``seed`` and the question itself, so each question has its own draw, the same on every run.

    Why not one set of three for every question: which three a learner happens to pick moves
    the score more than the questions do. On cpu_small's held-out templates, eight fixed draws
    scored SARI 0.25 to 0.64 (mean 0.41); drawn per question, the mean is the learner's expected
    score, and the bootstrap interval over questions also covers the draw
    (``benchmarks/results/recipe_search.md``).
    """
    return random.Random(f"{seed}:{normalize_question(question)}").sample(train, k)


@dataclass(frozen=True)
class FewShotPrompt:
    """The prompt builder to pass to :func:`qdlib.inference.generate` (``prompt=``): each
    question after its own worked examples, drawn from ``pool`` (:func:`few_shot_examples`).
    Build it with :func:`few_shot_prompt`, which keeps evaluated questions out of the pool."""

    pool: list[dict[str, Any]]
    seed: int

    def examples(self, question: str) -> list[dict[str, Any]]:
        """The worked examples shown before ``question``."""
        return few_shot_examples(self.pool, question, self.seed)

    def __call__(self, question: str, tokenizer: Any, language: str = "auto") -> list[int]:
        return prompt_ids(question, tokenizer, language, self.examples(question))


def few_shot_prompt(train: list[dict[str, Any]], evaluated: list[str], seed: int) -> FewShotPrompt:
    """A :class:`FewShotPrompt` drawing from the ``train`` records.

    No ``evaluated`` question (compared normalized) is ever shown: it would hold its own answer.
    The course's splits keep them out of training already; a file evaluated with ``qd eval
    --split`` may share questions with training, and those are left out of the draw.
    """
    held_out = {normalize_question(q) for q in evaluated}
    pool = [r for r in train if normalize_question(r["question"]) not in held_out]
    if len(pool) < N_SHOTS:
        raise DataError(
            f"the few-shot prompt needs {N_SHOTS} training records as worked examples that are "
            f"not evaluated questions; the training pool has {len(pool)} (of {len(train)}). "
            "Give a larger training file."
        )
    return FewShotPrompt(pool, seed)


# ---------------------------------------------------------------- rule baseline


def jaccard(a: set[str], b: set[str]) -> float:
    """Shared words over all words: 1.0 for the same word sets, 0.0 for none in common."""
    return len(a & b) / len(a | b) if a or b else 1.0


def nearest_record(question: str, train: list[dict[str, Any]]) -> dict[str, Any]:
    """The training record whose question shares the most words with ``question`` (Jaccard on
    :func:`qdlib.metrics.words`; the first one on a tie)."""
    mine = set(words(question))
    return max(train, key=lambda r: jaccard(mine, set(words(r["question"]))))


def substitutions(theirs: str, ours: str) -> dict[str, str]:
    """The spans where two questions differ, aligned: ``{their words: our words}``.

    The word sequences are aligned (difflib); each replaced span pairs word by word when both
    sides have as many words, else as a whole. A Korean word is taken without its particle.

    >>> substitutions("Is Rome bigger than Paris?", "Is Seoul bigger than Busan?")
    {'Rome': 'Seoul', 'Paris': 'Busan'}
    """
    a, b = [re.findall(r"\w+", unicodedata.normalize("NFC", q)) for q in (theirs, ours)]
    matcher = SequenceMatcher(None, [w.casefold() for w in a], [w.casefold() for w in b])
    swaps = {}
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace":
            continue
        olds, news = a[i1:i2], b[j1:j2]
        if len(olds) != len(news):
            olds, news = [" ".join(olds)], [" ".join(news)]
        swaps |= {term(o): term(n) for o, n in zip(olds, news, strict=True) if term(o) != term(n)}
    return swaps


# Korean particles that change with the word before them: (after a final consonant, after a vowel)
_PARTICLE_PAIRS = (("은", "는"), ("이", "가"), ("을", "를"), ("과", "와"))


def fit_particle(word: str, particle: str) -> str:
    """The form of a Korean ``particle`` that fits after ``word``: 이순신은 but 김구는."""
    last = word[-1]
    closed = "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 != 0  # ends in a consonant
    for after_consonant, after_vowel in _PARTICLE_PAIRS:
        if particle in (after_consonant, after_vowel):
            return after_consonant if closed else after_vowel
    return particle


def fill_in(steps: list[str], swaps: dict[str, str]) -> list[str]:
    """``steps`` with every span of ``swaps`` replaced, all at once, as whole words (case and the
    punctuation between words ignored). A Korean word keeps its particle, made to fit."""
    if not swaps:
        return list(steps)
    new_for = {" ".join(words(old)): new for old, new in swaps.items()}
    spans = [
        r"\W+".join(map(re.escape, old.split())) for old in sorted(swaps, key=len, reverse=True)
    ]
    pattern = re.compile(rf"(?<!\w)({'|'.join(spans)})(\w*)", re.IGNORECASE)

    def swap(m: re.Match[str]) -> str:
        old, rest = m.groups()
        if rest and detect_language(old) != "ko":
            return m.group()  # only the start of a longer word ("Rome" in "Romeo")
        new = new_for[" ".join(words(old))]
        return new + (fit_particle(new, rest) if rest else "")

    return [pattern.sub(swap, s) for s in steps]


def rule_decompose(question: str, train: list[dict[str, Any]]) -> list[str]:
    """The nearest training question's sub-questions, with the words that differ swapped in.

    "Which is older, Seoul or Busan?" next to a trained "Which is older, Rome or Paris?" gives
    "How old is Seoul?", "How old is Busan?", ... : what copying a template can reach.
    """
    near = nearest_record(question, train)
    return fill_in(near["sub_questions"], substitutions(near["question"], question))


def rule_baseline(questions: list[str], train: list[dict[str, Any]]) -> list[Generation]:
    """:func:`rule_decompose` for each question, as generations for :func:`qdlib.evaluate.score`."""
    return as_generations([rule_decompose(q, train) for q in questions])


# ---------------------------------------------------------------- published predictions


def published_generations(records: list[dict[str, Any]], path: str | Path) -> list[Generation]:
    """Another system's decompositions of ``records``, from a records file joined by ``id``.

    Each prediction must be for the same question (compared normalized); a record without a
    prediction is an error naming the file and the id, never a silent gap.
    """
    by_id = {p.get("id"): p for p in load_records(path, gold=False).records}  # a model's output
    steps = []
    for i, rec in enumerate(records):
        pred = by_id.get(rec.get("id"))
        if pred is None:
            raise DataError(
                f"{path}: no prediction with id {rec.get('id')!r} (evaluated record {i}, "
                f'{shown(rec["question"])}); every evaluated record needs one, joined by "id".'
            )
        if normalize_question(pred["question"]) != normalize_question(rec["question"]):
            raise DataError(
                f"{path}: the prediction with id {rec.get('id')!r} is for another question "
                f"({shown(pred['question'])}, not {shown(rec['question'])})."
            )
        steps.append(pred["sub_questions"])
    return as_generations(steps)


# ---------------------------------------------------------------- scores with their uncertainty

CI_KEYS = ("format_valid", "step_count_correct", "exact_match", "sari", "content_recall")


def summary_with_ci(
    rows: list[dict[str, Any]],
    seed: int,
    keys: tuple[str, ...] = CI_KEYS,
    ci_below: float = 100,
) -> dict[str, dict[str, Any]]:
    """Each metric of scored ``rows`` (:func:`qdlib.evaluate.score`): its mean, the n it is over,
    and, where n < ``ci_below``, its 95% bootstrap interval (:func:`qdlib.metrics.bootstrap_ci`).

    n counts the rows the metric applies to (content recall skips questions with nothing to
    carry). Pass ``ci_below=math.inf`` for an interval at every n.
    """
    out = {}
    for key in keys:
        values = [r["scores"][key] for r in rows if r["scores"][key] is not None]
        mean = sum(values) / len(values) if values else None
        ci = bootstrap_ci(values, seed) if values and len(values) < ci_below else None
        out[key] = {"mean": mean, "n": len(values), "ci": ci}
    return out


def ci_table(summaries: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: one row per system, one column per metric: ``mean [low, high] (n)``."""
    keys = list(next(iter(summaries.values())))
    lines = ["| system | " + " | ".join(k.replace("_", " ") for k in keys) + " |"]
    lines.append("|---" * (len(keys) + 1) + "|")
    for name, summary in summaries.items():
        lines.append(f"| {name} | " + " | ".join(ci_cell(summary[k]) for k in keys) + " |")
    return "\n".join(lines)


def ci_cell(m: dict[str, Any]) -> str:
    if m["mean"] is None:
        return f"n/a (n={m['n']})"
    ci = f" [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" if m["ci"] else ""
    return f"{m['mean']:.3f}{ci} (n={m['n']})"
