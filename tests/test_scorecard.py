"""Lesson 05's scorecard: every held-out section beside every baseline, like for like."""

from __future__ import annotations

import json

import pytest

from qdlib.config import load_config
from qdlib.data import normalize_question
from qdlib.inference import Generation
from qdlib.model import load_model
from qdlib.scorecard import (
    baseline_records,
    build_scorecard,
    few_shot_pool,
    plot_scorecard,
    read_test_file,
    scorecard_markdown,
    scorecard_table,
    split_sections,
    tuned_beats_baselines,
)
from qdlib.splits import prepare_splits, template_key


def mixed_cfg(**evaluation):
    """The recipe search's data step (StrategyQA with 10% held out as validation, and the
    templates, 2 of them held out whole), on the tiny model's profile."""
    sources = [{"spec": "data/strategyqa/train.jsonl", "eval_fraction": 0.1},
               {"spec": "data/teaching/decompose_teach.jsonl"}]  # fmt: skip
    data = {"train_file": None, "sources": sources, "holdout_by": "template",
            "holdout_fraction": 0.15}  # fmt: skip
    return load_config("cpu_tiny", data=data, evaluation=evaluation or None)


@pytest.fixture(scope="module")
def mixed():
    cfg = mixed_cfg()
    return cfg, prepare_splits(cfg)


def test_sections_say_where_each_held_out_question_comes_from(mixed):
    cfg, splits = mixed
    sections = split_sections(splits.eval, read_test_file(cfg), splits.train)
    assert list(sections) == ["in_template", "unseen_template", "validation", "real"]
    trained = {template_key(r) for r in splits.train if r.get("template")}
    assert all(template_key(r) in trained for r in sections["in_template"])
    assert not any(template_key(r) in trained for r in sections["unseen_template"])
    assert not any(r.get("template") for r in sections["validation"] + sections["real"])
    asked = {normalize_question(r["question"]) for r in splits.train}
    for records in sections.values():
        assert not asked & {normalize_question(r["question"]) for r in records}
    assert len(sections["real"]) == cfg.evaluation.max_samples  # the test file, capped


def test_the_untuned_model_answers_the_first_baseline_samples_of_each_section(mixed):
    """Lesson 05 and `qd eval` generate the untuned answers once, for these questions, and the
    scorecard's untuned row reads them: the same questions as its few-shot and tuned-same rows."""
    cfg, splits = mixed
    cfg = mixed_cfg(baseline_samples=3)
    asked = baseline_records(splits.eval, splits.train, cfg)
    sections = split_sections(splits.eval, [], splits.train)
    assert [r["question"] for r in asked] == [
        r["question"] for r in splits.eval
        if any(r in records[:3] for records in sections.values())
    ]  # fmt: skip
    assert len(asked) == 3 * len(sections) < len(splits.eval)
    everyone = mixed_cfg(baseline_samples=None)  # no cap: every question
    assert baseline_records(splits.eval, splits.train, everyone) == splits.eval


def test_few_shot_examples_are_of_the_sections_kind(mixed):
    _, splits = mixed
    assert all(r.get("template") for r in few_shot_pool("unseen_template", splits.train))
    assert not any(r.get("template") for r in few_shot_pool("real", splits.train))


@pytest.fixture(scope="module")
def card(mixed, tiny_tokenizer):
    _, splits = mixed
    cfg = mixed_cfg(max_new_tokens=8, baseline_samples=4, max_samples=6)
    sections = {name: records[:6] for name, records in
                split_sections(splits.eval, read_test_file(cfg), splits.train).items()}  # fmt: skip
    model = load_model(cfg)
    models = {"tuned": model, "untuned": model}
    return build_scorecard(cfg, sections, splits.train, models, tiny_tokenizer)


def test_every_section_has_every_baseline_with_its_n(card):
    summary, rows = card
    assert list(summary) == ["in_template", "unseen_template", "validation", "real"]
    for name, entry in summary.items():
        systems = entry["systems"]
        want = {"tuned", "tuned_same", "untuned", "few_shot", "rule"}
        assert set(systems) == want | ({"published"} if name == "real" else set())
        assert entry["n"] == 6 and systems["tuned"]["sari"]["n"] == 6
        assert systems["untuned"]["sari"]["n"] == systems["few_shot"]["sari"]["n"] == 4
        assert systems["tuned_same"]["sari"]["n"] == 4  # like for like with the baselines
        low, high = systems["rule"]["sari"]["ci"]
        assert low <= systems["rule"]["sari"]["mean"] <= high
    # the same model as "tuned" and "untuned": the same answers, so it cannot beat itself
    assert rows["real"]["tuned_same"] == rows["real"]["untuned"]
    assert tuned_beats_baselines(summary) == dict.fromkeys(summary, False)
    json.dumps(summary)  # metrics.json holds it


def test_published_predictions_join_the_real_section_by_id(card):
    _, rows = card
    bart = rows["real"]["published"]
    assert [r["question"] for r in bart] == [r["question"] for r in rows["real"]["tuned"]]
    assert all(r["predicted"] for r in bart)


def test_tuned_beats_baselines_reads_the_same_questions():
    def entry(tuned, tuned_same, untuned, few):
        def m(x):
            return {"sari": {"mean": x, "n": 1, "ci": None}}

        systems = {"tuned": m(tuned), "untuned": m(untuned), "few_shot": m(few)}
        return {"systems": systems | ({"tuned_same": m(tuned_same)} if tuned_same else {})}

    card = {"a": entry(0.9, None, 0.5, 0.6), "b": entry(0.9, 0.4, 0.5, 0.3)}
    assert tuned_beats_baselines(card) == {"a": True, "b": False}


def test_the_scorecard_reads_as_a_table_and_a_picture(card):
    summary, _ = card
    table = scorecard_table(summary)
    assert table.splitlines()[0] == "| system | in-template | unseen-template | validation | real |"
    assert "| published |  |  |  | 0." in table
    text = scorecard_markdown(summary)
    assert "- **real** (6): the test file" in text
    fig = plot_scorecard(summary)
    assert len(fig.axes[0].patches) == 4 * 4 + 1  # 4 systems x 4 sections, published once


def test_generations_passed_in_are_reused_not_generated_again(mixed, tiny_tokenizer):
    cfg, splits = mixed
    cfg = load_config("cpu_tiny", evaluation={"baseline_samples": 2, "max_new_tokens": 4})
    records = splits.eval[:3]
    canned = {r["question"]: Generation("1. " + r["sub_questions"][0], True, []) for r in records}

    class NoModel:  # generating with it fails: every answer must come from `done`
        def parameters(self):
            raise AssertionError("generated")

    sections = {"validation": [r for r in records if not r.get("template")] or records}
    models = {"tuned": NoModel(), "untuned": load_model(cfg)}
    _, rows = build_scorecard(cfg, sections, splits.train, models, tiny_tokenizer,
                              {"tuned": canned})  # fmt: skip
    assert [r["output"] for r in rows["validation"]["tuned"]] == [
        canned[r["question"]].text for r in sections["validation"]
    ]


def test_the_test_file_and_its_predictions_are_the_projects_from_any_directory(
    mixed, tiny_tokenizer, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a notebook runs in notebooks/, papermill wherever it is asked
    cfg = mixed_cfg(max_new_tokens=4, baseline_samples=2, max_samples=3)
    real = read_test_file(cfg)
    assert len(real) == 3
    model = load_model(cfg)
    summary, _ = build_scorecard(cfg, {"real": real}, mixed[1].train,
                                 {"tuned": model, "untuned": model}, tiny_tokenizer)  # fmt: skip
    assert summary["real"]["systems"]["published"]["sari"]["n"] == 3
