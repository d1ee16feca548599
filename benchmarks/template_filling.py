"""What a program with no model scores on the default course's held-out questions.

The cpu_small profile holds out 70 questions of the teaching set at random, so each held-out
question shares its template (and most of its steps, word for word) with training questions. The
rule baseline (``qdlib.baselines.rule_decompose``: the nearest training question's sub-questions,
with the words that differ swapped in) shows what that split measures: template filling.

    python benchmarks/template_filling.py       # writes benchmarks/results/template_filling.*
"""

from __future__ import annotations

import json
from pathlib import Path

from qdlib.baselines import rule_baseline
from qdlib.config import load_config
from qdlib.evaluate import compare_table
from qdlib.metrics import score, summarize
from qdlib.splits import prepare_splits

OUT = Path(__file__).parent / "results" / "template_filling"


def main() -> None:
    results = {}
    for holdout in ("none", "template"):
        cfg = load_config("cpu_small", data={"holdout_by": holdout})
        splits = prepare_splits(cfg)
        questions = [r["question"] for r in splits.eval]
        train_questions = [r["question"] for r in splits.train]
        gens = rule_baseline(questions, splits.train)
        results[f"rule baseline, holdout_by {holdout}"] = summarize(
            score(splits.eval, gens, train_questions)
        )
    table = compare_table(results)
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    OUT.with_suffix(".md").write_text(
        "# The rule baseline on the cpu_small profile's held-out teaching questions\n\n"
        "No model: the nearest training question's sub-questions with the differing words "
        "swapped in (`qdlib.baselines.rule_decompose`). `holdout_by none` is the course's "
        "default split (every held-out template is also trained); `template` holds out whole "
        "templates. Made by `python benchmarks/template_filling.py`.\n\n" + table + "\n",
        encoding="utf-8",
    )
    print(table)


if __name__ == "__main__":
    main()
