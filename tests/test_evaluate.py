"""Parsing generated text, the task metrics, batched generation and the report files."""

from __future__ import annotations

import json

import pytest

from qdlib.evaluate import write_report
from qdlib.inference import Generation, generate
from qdlib.metrics import (
    aggregate,
    exact_match,
    normalize,
    parse_sub_questions,
    score,
    score_example,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. A?\n2. B?", ["A?", "B?"]),
        ("  1) A?\n\n2) B?\n", ["A?", "B?"]),
        ("1. 서울의 인구는?\n2. 부산의 인구는?", ["서울의 인구는?", "부산의 인구는?"]),
        ("(1) A?\n(2) B?", ["A?", "B?"]),
        ("Step 1: A?\nStep 2: B?", ["A?", "B?"]),
        ("① 서울의 인구는?\n② 부산의 인구는?", ["서울의 인구는?", "부산의 인구는?"]),
        ("- A?\n- B?", ["A?", "B?"]),
        ("• A?\n• B?", ["A?", "B?"]),
        ("A?\nB?", ["A?", "B?"]),
        ('["A?", "B?"]', ["A?", "B?"]),
        ("Sub-questions:\n1. A?\n2. B?", ["A?", "B?"]),
        ("2. A?\n3. B?", None),  # does not start at 1
        ("1. A?\n3. B?", None),  # a gap is not a list, nor plain question lines
        ("1. A?\nsome prose", None),
        ("- A?\nsome prose", None),
        ("The answer is Paris.", None),
        ("[1, 2]", None),
        ("[unclosed", None),
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
    single = [
        generate(model, tiny_tokenizer, [q], batch_size=1, max_new_tokens=8)[0] for q in questions
    ]
    assert [g.ids for g in batched] == [g.ids for g in single]


def report_rows():
    recs = [
        {"question": "Q?", "sub_questions": ["A?", "B?"]},
        {"question": "서울과 부산?", "sub_questions": ["서울?", "부산?"]},
    ]
    return {
        "base": score(recs, [Generation("blah", False, [1]), Generation("1. 서울?", True, [3])]),
        "tuned": score(
            recs,
            [Generation("1. A?\n2. B?", True, [2]), Generation("1. 서울?\n2. 부산?", True, [4])],
        ),
    }


def test_report_files_are_written(tmp_path):
    metrics = write_report(tmp_path, report_rows())
    assert metrics["tuned"]["exact_match"] == 1.0 and metrics["base"]["format_valid"] == 0.5
    assert metrics["base"]["counts"] == {
        "parsed": 1,
        "stopped": 1,
        "format_valid": 1,
        "step_count_correct": 0,
        "exact_match": 0,
    }
    lines = (tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[1])["tuned"]["predicted"] == ["서울?", "부산?"]
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == metrics
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| sari |" in report and "## Most changed (base -> tuned)" in report
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "metrics.png",
        "predictions.jsonl",
        "report.md",
    ]


def test_report_write_is_atomic(tmp_path, monkeypatch):
    write_report(tmp_path, report_rows())
    before = (tmp_path / "report.md").read_text(encoding="utf-8")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path, report_rows())
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_try_it_widget_shows_each_model(tiny_cfg, tiny_tokenizer):
    import ipywidgets

    from qdlib.inference import try_it
    from qdlib.model import load_model

    box = try_it({"base": load_model(tiny_cfg)}, tiny_tokenizer, max_new_tokens=4)
    question, button, outputs = box.children
    assert isinstance(question, ipywidgets.Textarea) and "서울" in question.value
    button.click()
    (out,) = outputs.children
    assert out.outputs and out.outputs[0]["text"].startswith("base\n----")


# ---------------------------------------------------------------- no half characters


def test_an_answer_cut_inside_a_character_ends_at_the_last_whole_one(tiny_tokenizer):
    from qdlib.inference import decode_answer

    ids = tiny_tokenizer("1. 서울뷁", add_special_tokens=False)["input_ids"]  # 뷁: not in the data
    assert len(tiny_tokenizer.decode(ids[-1:])) == 1 and ids[-1] != ids[-2]  # byte tokens
    cut = decode_answer(ids[:-1], tiny_tokenizer)  # max_new_tokens hit between 뷁's bytes
    assert tiny_tokenizer.decode(ids[:-1]).endswith("\ufffd")  # the control: a plain decode
    assert (cut.text, cut.stopped) == ("1. 서울", False)
    assert tiny_tokenizer.decode(cut.ids) == "1. 서울"


def test_an_answer_that_stopped_is_kept_whole(tiny_tokenizer):
    from qdlib.inference import decode_answer

    ids = tiny_tokenizer("1. 서울?", add_special_tokens=False)["input_ids"]
    done = decode_answer([*ids, tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id],
                         tiny_tokenizer)  # fmt: skip
    assert (done.text, done.stopped, done.ids) == ("1. 서울?", True, ids)


def test_a_base_models_answer_ends_at_the_blank_line_before_its_next_block(tiny_tokenizer):
    """Without a chat template the prompt is plain text in blocks; an untuned base model that has
    written its list goes on with the next block ("질문: ..."): the blank line ends its answer,
    as the EOS ends a tuned one, and the ids stop where the blank line is complete."""
    from qdlib.inference import decode_answer
    from qdlib.prompts import BLOCK_BREAK, answer_end

    ids = tiny_tokenizer("1. 서울?\n2. 부산?\n\n질문: 다음", add_special_tokens=False)["input_ids"]
    cut = decode_answer(ids, tiny_tokenizer, BLOCK_BREAK)
    assert (cut.text, cut.stopped) == ("1. 서울?\n2. 부산?", True)
    assert tiny_tokenizer.decode(cut.ids).endswith("\n\n") and len(cut.ids) < len(ids)
    assert decode_answer(ids, tiny_tokenizer).stopped is False  # an instruct model: EOS only
    assert answer_end(tiny_tokenizer) is None  # the tiny tokenizer has a chat template
    plain = type("Base", (), {"chat_template": None})()
    assert answer_end(plain) == BLOCK_BREAK


def test_generation_stops_a_base_model_at_the_blank_line(tiny_cfg, tiny_tokenizer, monkeypatch):
    """generate hands the blank line to transformers' stop_strings for a model without a chat
    template, and only for one."""
    from qdlib.inference import generate
    from qdlib.model import load_model

    seen = []
    model = load_model(tiny_cfg)
    real = model.generate

    def spy(**kwargs):
        seen.append(kwargs["generation_config"].stop_strings)
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    question = ["서울과 부산 중 어디가 큰가?"]
    generate(model, tiny_tokenizer, question, max_new_tokens=4, progress=False)
    monkeypatch.setattr(tiny_tokenizer, "chat_template", None)
    out = generate(model, tiny_tokenizer, question, max_new_tokens=4, progress=False)
    assert seen == [None, ["\n\n"]] and "\n\n" not in out[0].text


def test_scores_break_down_by_language_and_kind():
    from qdlib.metrics import summarize

    records = [
        {"question": "A와 B의 인구는?", "sub_questions": ["A?"], "kind": "comparison"},
        {"question": "Which is older, A or B?", "sub_questions": ["A?"], "kind": "comparison"},
        {"question": "Where was X born?", "sub_questions": ["X?"], "kind": "bridge"},
    ]
    gens = [Generation("1. A?", True, []), Generation("1. B?", True, []), Generation("x", True, [])]
    m = summarize(score(records, gens), breakdowns=True)
    assert m["by_language"]["ko"]["exact_match"] == 1.0 and m["by_language"]["en"]["n"] == 2
    assert m["by_kind"]["comparison"]["exact_match"] == 0.5
    assert m["by_kind"]["bridge"]["format_valid"] == 0.0


def test_metric_probes_show_what_each_metric_rewards_and_misses():
    from qdlib.evaluate import PROBE_KEYS, compare_table, probe_metrics

    q = "Who was born first, the director of Jaws or the author of Dune?"
    gold = [
        "Who directed Jaws?",
        "Who wrote Dune?",
        "When was #1 born?",
        "When was #2 born?",
        "Who was born first, #3 or #4?",
    ]
    other = ["Who directed Alien?", "Who wrote Emma?", *gold[2:]]
    seen = ["Who directed Alien?", "Who was born first, A or B?", "What is the capital of Peru?"]
    m = probe_metrics(
        q,
        gold,
        {"gold": gold, "template": other, "one step": [q], "none": None},
        reference=seen * 3,
    )
    assert all(m["gold"][k] == 1.0 for k in ("exact_match", "content_recall", "sari", "chrf"))
    # The template with other names: structure and wording score high, content not at all.
    assert m["template"]["step_count_correct"] == 1.0 and m["template"]["content_recall"] == 0.0
    assert m["template"]["sari"] > 0.6 and m["template"]["chrf"] > 0.6
    # Copying the question carries every name, in the wrong structure.
    assert m["one step"]["content_recall"] == 1.0 and m["one step"]["step_count_correct"] == 0.0
    # Saying nothing still earns SARI's deletion credit: the floor a base model starts from.
    assert m["none"]["sari_keep"] == m["none"]["sari_add"] == 0.0
    assert m["none"]["sari"] == pytest.approx(m["none"]["sari_delete"] / 3)
    assert m["none"]["sari"] > 0
    table = compare_table(m, PROBE_KEYS)
    assert "| sari_delete |" in table and "examples" not in table


def test_reference_validity_does_not_apply_to_gold_without_references():
    from qdlib.evaluate import probe_metrics

    m = probe_metrics(
        "Is Seoul bigger than Busan?",
        ["How big is Seoul?", "How big is Busan?"],
        {"model": ["How big is Seoul?"]},
    )
    assert m["model"]["refs_valid"] is None
    assert aggregate([m["model"], m["model"]])["refs_valid"] is None


def test_the_template_twin_is_the_same_kind_of_question_with_other_names():
    from qdlib.evaluate import template_twin

    target = {"question": "Which was founded first, Yale or Harvard?", "kind": "temporal",
              "sub_questions": ["In what year was Yale founded?", "In what year was Harvard "
                                "founded?", "Which of the two years is earlier?"]}  # fmt: skip
    born = {"question": "Who was born first, Kahlo or Turing?", "kind": "temporal",
            "sub_questions": ["In what year was Kahlo born?", "In what year was Turing born?",
                              "Which of the two years is earlier?"]}  # fmt: skip
    founded = dict(born, sub_questions=["In what year was MIT founded?", "In what year was "
                                        "Oxford founded?", "Which of the two years is earlier?"])
    other_kind = dict(founded, kind="comparison")
    records = [target, born, other_kind, founded]
    assert template_twin(target, records) is founded
    assert template_twin(target, [target, other_kind]) is other_kind  # none of its kind: any
    # the same question with its names swapped is no twin: its gold is the target's own
    swapped = dict(target, question="Which was founded first, Harvard or Yale?",
                   sub_questions=target["sub_questions"][1::-1] + target["sub_questions"][2:])
    assert template_twin(target, [target, swapped, founded]) is founded
    tagged = dict(target, entities=["Yale", "Harvard"])
    same_names = dict(founded, entities=["Harvard", "Yale"])
    assert template_twin(tagged, [tagged, same_names, born]) is born


def test_without_adapter_answers_exactly_as_the_base_model(trained, tiny_tokenizer):
    """The untuned answers of lesson 05 and ``qd eval``: the tuned model with its adapters off,
    not a second copy of the base, and the same logits and answers as that copy would give."""
    import torch

    from qdlib.inference import WithoutAdapter, generate
    from qdlib.model import load_model, load_with_adapter

    cfg, _, _, run_dir = trained
    tuned = load_with_adapter(cfg, run_dir / "adapter")
    base, untuned = load_model(cfg), WithoutAdapter(tuned)
    ids = torch.tensor([tiny_tokenizer("How old is the capital of France?")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(untuned(input_ids=ids).logits, base(input_ids=ids).logits)
        assert not torch.equal(tuned(input_ids=ids).logits, base(input_ids=ids).logits)
    questions = ["Is Paris older than Rome?", "Who wrote Hamlet and when?"]
    settings = {"max_new_tokens": 12, "progress": False}
    assert generate(untuned, tiny_tokenizer, questions, **settings) == generate(
        base, tiny_tokenizer, questions, **settings
    )
    assert tuned.active_adapters == ["default"]  # switched back on after each call


def test_qd_eval_loads_the_base_weights_once(trained, tmp_path, monkeypatch):
    """Every model built counts (``post_init`` ends each constructor), however it is loaded."""
    from transformers import PreTrainedModel

    from qdlib.data import load_records
    from qdlib.scorecard import evaluate_run

    cfg, _, _, run_dir = trained
    built, post_init = [], PreTrainedModel.post_init

    def counted(self):
        built.append(type(self).__name__)
        return post_init(self)

    monkeypatch.setattr(PreTrainedModel, "post_init", counted)
    records = load_records(run_dir / "data/eval.jsonl").records[:4]
    evaluate_run(cfg, run_dir, records, tmp_path / "eval", test=[])
    assert [name for name in built if name.endswith("ForCausalLM")] == ["LlamaForCausalLM"]


def test_a_model_that_answered_fewer_questions_is_joined_by_question(tmp_path):
    """The untuned model answers a subset (evaluation.baseline_samples per section): each
    prediction line and report example pairs the answers to one question, not to one index."""
    rows = report_rows()
    rows["base"] = rows["base"][1:]  # the base answered the second question only
    write_report(tmp_path, rows)
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").open(encoding="utf-8")]
    assert [sorted(line) for line in lines] == [
        ["gold", "kind", "language", "question", "tuned"],
        ["base", "gold", "kind", "language", "question", "tuned"],
    ]
    assert lines[1]["base"]["output"] == "1. 서울?" and lines[1]["question"] == "서울과 부산?"
    changed = (tmp_path / "report.md").read_text(encoding="utf-8").split("## Most changed")[1]
    assert "서울과 부산?" in changed and "Q?" not in changed
    by_language = (tmp_path / "report.md").read_text(encoding="utf-8").split("## By language")[1]
    assert "| en | 0 / 1 | n/a | 1.000 |" in by_language  # each model's n where they differ
    assert "| ko | 1 |" in by_language


def test_lesson_05_answers_untuned_from_the_tuned_models_weights():
    from qdlib.config import PROJECT_ROOT

    lesson = (PROJECT_ROOT / "notebooks/src/05_evaluate.py").read_text(encoding="utf-8")
    assert "load_model(" not in lesson and "WithoutAdapter(tuned_model)" in lesson


def test_the_breakdown_and_the_report_read_the_models_not_the_scorecard_beside_them():
    """metrics.json keeps the scorecard next to each model's metrics; the by-kind table once took
    its groups from it (the last key) and came out empty."""
    from qdlib.evaluate import breakdown_table, model_metrics, report_markdown
    from qdlib.metrics import summarize

    records = [{"question": "Where was X born?", "sub_questions": ["X?"], "kind": "bridge"}]
    rows = {name: score(records, [Generation("1. X?", True, [])]) for name in ("base", "tuned")}
    metrics = {n: summarize(r, breakdowns=True) for n, r in rows.items()}
    metrics["scorecard"] = {"real": {"n": 1}}
    assert list(model_metrics(metrics)) == ["base", "tuned"]
    table = breakdown_table(metrics, "by_kind")
    assert "| bridge | 1 |" in table and "scorecard" not in table
    assert "| bridge | 1 |" in report_markdown(metrics, rows)
