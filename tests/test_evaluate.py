"""Parsing generated text, the task metrics, batched generation and the report files."""

from __future__ import annotations

import json

import pytest

from qdlib.evaluate import Generation, generate, parse_sub_questions, score, write_report
from qdlib.metrics import aggregate, exact_match, normalize, score_example


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. A?\n2. B?", ["A?", "B?"]),
        ("  1) A?\n\n2) B?\n", ["A?", "B?"]),
        ("1. 서울의 인구는?\n2. 부산의 인구는?", ["서울의 인구는?", "부산의 인구는?"]),
        ("2. A?\n3. B?", None),  # does not start at 1
        ("1. A?\nsome prose", None),
        ("", None),
        ("1.", None),
    ],
)
def test_parse_numbered_lists(text, expected):
    assert parse_sub_questions(text) == expected


def test_normalize_ignores_case_space_unicode_form_and_final_punctuation():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "서울의  인구는?")
    assert normalize(nfd) == normalize("서울의 인구는") == "서울의 인구는"
    assert normalize("What IS it ?") == "what is it"


def test_exact_match_needs_every_step():
    gold = ["A?", "B?"]
    assert exact_match(gold, ["a", "b?"]) == 1.0
    assert exact_match(gold, ["A?"]) == 0.0
    assert exact_match(gold, None) == 0.0


def test_format_validity_needs_a_stop():
    assert score_example(["A?"], ["A?"], stopped=False)["format_valid"] == 0.0
    assert score_example(["A?"], ["A?"], stopped=True)["format_valid"] == 1.0


def test_aggregate_means():
    scores = [score_example(["A?", "B?"], ["A?"], True), score_example(["A?"], ["A?"], True)]
    agg = aggregate(scores)
    assert agg["n"] == 2 and agg["step_count_correct"] == 0.5 and agg["step_count_error"] == 0.5


def test_batched_generation_equals_one_at_a_time(tiny_cfg, tiny_tokenizer):
    from qdlib.model import load_model

    model = load_model(tiny_cfg)
    questions = ["서울과 부산 중 인구가 더 많은 도시는?", "Who wrote Hamlet?", "A?"]
    batched = generate(model, tiny_tokenizer, questions, batch_size=3, max_new_tokens=8)
    single = [generate(model, tiny_tokenizer, [q], batch_size=1, max_new_tokens=8)[0]
              for q in questions]
    assert [g.ids for g in batched] == [g.ids for g in single]


def test_report_files_are_written(tmp_path):
    recs = [{"question": "Q?", "sub_questions": ["A?", "B?"]}]
    rows = {
        "base": score(recs, [Generation("blah", False, [1])]),
        "tuned": score(recs, [Generation("1. A?\n2. B?", True, [2])]),
    }
    metrics = write_report(tmp_path, rows)
    assert metrics["tuned"]["exact_match"] == 1.0 and metrics["base"]["format_valid"] == 0.0
    line = json.loads((tmp_path / "predictions.jsonl").read_text(encoding="utf-8"))
    assert line["tuned"]["predicted"] == ["A?", "B?"]
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == metrics
    assert not list(tmp_path.glob(".*tmp"))
