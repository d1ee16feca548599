"""Lesson 03's rank experiment runs every variant the same way and reports what each cost."""

from __future__ import annotations

import pytest

from qdlib.config import load_config
from qdlib.experiments import (
    VARIANTS,
    disagreements,
    plot_rank_experiment,
    rank_experiment,
    rank_table,
)


@pytest.mark.slow
def test_every_variant_trains_the_same_budget_and_is_scored():
    cfg = load_config("cpu_tiny", data={"max_samples": 60}, training={"batch_size": 4})
    results = rank_experiment(cfg, steps=2, questions=2)
    assert [r["variant"] for r in results] == list(VARIANTS)
    by = {r["variant"]: r for r in results}
    # more rank, more trainable values; DoRA adds one magnitude per output feature on top
    assert by["r=4"]["trainable"] < by["r=16"]["trainable"] < by["r=64"]["trainable"]
    assert by["r=16, DoRA"]["trainable"] > by["r=16"]["trainable"]
    assert by["r=16, rsLoRA"]["trainable"] == by["r=16"]["trainable"]
    assert all(r["seconds_per_step"] > 0 and r["loss_first"] > 0 for r in results)
    assert "| r=16, DoRA |" in rank_table(results)
    assert len(plot_rank_experiment(results).axes) == 4
    assert all(len(r["answers"]) == len(r["questions"]) == 2 for r in results)


def test_disagreements_pick_the_questions_the_variants_answered_differently():
    base = {"questions": ["A?", "B?", "C?"]}
    results = [
        {"variant": "r=4", "answers": ["1. a", "1. b", "1. c"], **base},
        {"variant": "r=16", "answers": ["1. a", "1. x", "1. c"], **base},
    ]
    assert disagreements(results) == [
        {"question": "B?", "answers": {"r=4": "1. b", "r=16": "1. x"}}
    ]
    same = [dict(r, answers=["1. a", "1. b", "1. c"]) for r in results]
    assert [d["question"] for d in disagreements(same)] == ["A?"]  # none differ: the first one
