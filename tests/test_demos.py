"""What a demo claims about a question is checked against the training data, in code.

The README's demos (``Q:`` lines) are questions the default course never trained on: StrategyQA
dev questions, which no profile's training data holds. Lesson 06 prints, for each of its demo
questions, whether the run trained on it (a checked output).
"""

from __future__ import annotations

import re

import nbformat
import pytest

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.data import load_records, normalize_question
from qdlib.splits import prepare_splits

READMES = ("README.md", "README.ko.md")


def demo_questions(path) -> list[str]:
    text = (PROJECT_ROOT / path).read_text(encoding="utf-8")
    return re.findall(r"^Q: (.+)$", text, flags=re.M)


@pytest.fixture(scope="module")
def trained():
    splits = prepare_splits(load_config("cpu_small"))
    return {normalize_question(r["question"]) for r in splits.train}


@pytest.mark.parametrize("readme", READMES)
def test_readme_demos_are_questions_the_default_course_never_trained_on(readme, trained):
    questions = demo_questions(readme)
    assert questions, f"{readme} shows no demo"
    dev = {normalize_question(r["question"])
           for r in load_records(PROJECT_ROOT / "data/strategyqa/dev.jsonl").records}  # fmt: skip
    for q in questions:
        assert normalize_question(q) not in trained, f"{readme}: {q!r} is a training question"
        assert normalize_question(q) in dev, f"{readme}: {q!r} is not a StrategyQA dev question"


# A scorecard cell, as qdlib.baselines.ci_cell writes it: mean [95% interval] (n=...)
CELL = re.compile(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \(n=\d+\)")


def lesson_05_outputs() -> str:
    nb = nbformat.read(PROJECT_ROOT / "notebooks/05_evaluate.ipynb", as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", ""))
            texts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(texts)


@pytest.mark.parametrize("readme", READMES)
def test_readme_scores_are_the_executed_lesson_05s(readme):
    """Every score the README quotes in scorecard form is one the committed lesson 05 computed."""
    text = (PROJECT_ROOT / readme).read_text(encoding="utf-8")
    quoted = CELL.findall(text)
    assert len(quoted) >= 5, f"{readme} quotes no scorecard"
    outputs = lesson_05_outputs()
    assert [cell for cell in quoted if cell not in outputs] == []
