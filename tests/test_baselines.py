"""The baselines every score stands beside: few-shot prompt, rule baseline, published predictions,
and the bootstrap intervals that say how sure a mean is."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import benchmark_script

from qdlib.baselines import (
    few_shot_examples,
    few_shot_prompt,
    fill_in,
    published_generations,
    rule_baseline,
    summary_with_ci,
)
from qdlib.config import PROJECT_ROOT, load_config
from qdlib.data import DataError, load_records, normalize_question
from qdlib.inference import generate
from qdlib.metrics import bootstrap_ci, score, summarize
from qdlib.model import load_model
from qdlib.prompts import render_answer, render_prompt
from qdlib.splits import prepare_splits

STRATEGYQA = PROJECT_ROOT / "data" / "strategyqa"
BART = STRATEGYQA / "dev_bart_large_predictions.jsonl"


@pytest.fixture(scope="module")
def teaching():
    """The teaching set's default split (cpu_tiny: every template trained, 10% held out)."""
    return prepare_splits(load_config("cpu_tiny"))


@pytest.fixture(scope="module")
def strategyqa_dev():
    return load_records(STRATEGYQA / "dev.jsonl").records


def questions(records):
    return [r["question"] for r in records]


# ---------------------------------------------------------------- few-shot prompt


def test_the_few_shot_prompt_holds_three_training_examples_and_no_evaluated_question(
    teaching, tiny_tokenizer
):
    evaluated = questions(teaching.eval)
    examples = few_shot_examples(teaching.train, evaluated[0], seed=42)
    text = render_prompt(evaluated[0], tiny_tokenizer, examples=examples)
    assert text.count("<|im_start|>assistant") == 3 + 1  # 3 worked answers, then the model's turn
    assert all(ex in teaching.train for ex in examples)
    assert all(ex["question"] in text and render_answer(ex["sub_questions"]) in text
               for ex in examples)  # fmt: skip
    assert [q for q in evaluated[1:] if q in text] == []
    assert text.endswith(f"{evaluated[0]}<|im_end|>\n<|im_start|>assistant\n")


def test_each_question_has_its_own_draw_and_the_same_one_on_every_run(teaching):
    """One set of three for all questions made the baseline one lucky (or unlucky) draw."""
    evaluated = questions(teaching.eval)[:20]
    draws = [few_shot_examples(teaching.train, q, seed=42) for q in evaluated]
    assert draws == [few_shot_examples(teaching.train, q, seed=42) for q in evaluated]
    assert len({tuple(ex["question"] for ex in d) for d in draws}) > 15  # not one set for all
    assert few_shot_examples(teaching.train, evaluated[0], seed=7) != draws[0]
    # the draw follows the question as compared (normalized), not its spelling
    assert few_shot_examples(teaching.train, evaluated[0].upper(), seed=42) == draws[0]


def test_an_evaluated_question_in_the_pool_is_never_shown(teaching, tiny_tokenizer):
    """`qd eval --split FILE` may evaluate trained questions: they stay out of the draw."""
    pool = teaching.train[:4]
    evaluated = [pool[1]["question"].upper().rstrip("?") + " ?"]  # the same question, normalized
    assert normalize_question(evaluated[0]) == normalize_question(pool[1]["question"])
    prompt = few_shot_prompt(pool, evaluated, seed=0)
    for question in questions(teaching.eval)[:10]:
        text = tiny_tokenizer.decode(prompt(question, tiny_tokenizer, "auto"))
        assert pool[1]["question"] not in text
        assert all(pool[i]["question"] in text for i in (0, 2, 3))  # the other three, each time


def test_a_training_pool_of_fewer_than_three_is_refused(teaching):
    with pytest.raises(DataError, match=r"needs 3 training records.*has 2"):
        few_shot_prompt(teaching.train[:2], [], seed=0)
    pool = teaching.train[:3]  # three, but one of them is evaluated
    with pytest.raises(DataError, match=r"not evaluated questions; the training pool has 2 \(of"):
        few_shot_prompt(pool, [pool[0]["question"]], seed=0)


def test_generate_decodes_from_the_few_shot_prompt(teaching, tiny_cfg, tiny_tokenizer):
    model = load_model(tiny_cfg)
    question = teaching.eval[0]["question"]
    examples = few_shot_examples(teaching.train, question, seed=42)
    text = render_prompt(question, tiny_tokenizer, examples=examples)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    prompt = few_shot_prompt(teaching.train, [question], seed=42)
    assert prompt(question, tiny_tokenizer, "auto") == ids
    with torch.inference_mode():
        direct = model.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False)
    gen = generate(
        model, tiny_tokenizer, [question], max_new_tokens=5, progress=False, prompt=prompt
    )
    assert gen[0].ids and gen[0].ids == direct[0, len(ids) :].tolist()[: len(gen[0].ids)]


# ---------------------------------------------------------------- rule baseline


def test_a_swapped_korean_word_gets_the_particle_that_fits():
    steps = ["피카소는 어느 나라에서 태어났는가?", "피카소가 그린 그림은?"]
    assert fill_in(steps, {"피카소": "이순신"}) == [
        "이순신은 어느 나라에서 태어났는가?",
        "이순신이 그린 그림은?",
    ]


def test_a_swap_replaces_whole_words_only():
    assert fill_in(["Is Rome older than Romeo?"], {"Rome": "Seoul"}) == [
        "Is Seoul older than Romeo?"
    ]


def test_the_rule_baseline_fills_a_trained_template(teaching):
    """Measured on the default split: exact match 0.837 (252 held-out questions), SARI 0.984."""
    rows = score(teaching.eval, rule_baseline(questions(teaching.eval), teaching.train))
    m = summarize(rows)
    assert m["exact_match"] >= 0.75
    assert m["sari"] >= 0.95


def test_the_rule_baseline_fails_a_template_it_never_saw(teaching):
    """bridge_author held out of the pool: exact match 0, SARI 0.23 (in-template: 0.98)."""
    pool = [r for r in teaching.train if r["template"] != "bridge_author"]
    unseen = [r for r in teaching.eval if r["template"] == "bridge_author"]
    m = summarize(score(unseen, rule_baseline(questions(unseen), pool)))
    assert m["n"] > 10
    assert m["exact_match"] == 0.0
    assert m["sari"] < 0.5


# ---------------------------------------------------------------- published predictions


def test_bart_large_scored_by_qdlib_gives_the_published_sari(strategyqa_dev):
    rows = score(strategyqa_dev, published_generations(strategyqa_dev, BART))
    sari = summarize(rows)["sari"]
    assert len(rows) == 229
    assert abs(sari - 0.556) <= 0.001, f"qdlib's SARI of BART-large on dev: {sari:.4f}"


def test_published_predictions_are_read_as_written(strategyqa_dev):
    gens = published_generations(strategyqa_dev, BART)
    written = {r["id"]: r["sub_questions"] for r in load_records(BART, gold=False).records}
    rows = score(strategyqa_dev, gens)
    assert all(r["predicted"] == written[d["id"]]
               for r, d in zip(rows, strategyqa_dev, strict=True))  # fmt: skip


def test_a_missing_prediction_names_the_file_and_the_id(strategyqa_dev, tmp_path):
    lines = BART.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(lines[:5] + lines[6:]) + "\n", encoding="utf-8")
    missing = strategyqa_dev[5]["id"]
    with pytest.raises(DataError, match=rf"predictions.jsonl: no prediction with id '{missing}'"):
        published_generations(strategyqa_dev, path)


# ---------------------------------------------------------------- confidence intervals


def test_equal_values_have_a_zero_width_interval():
    assert bootstrap_ci([0.3] * 40, seed=1) == (pytest.approx(0.3), pytest.approx(0.3))
    low, high = bootstrap_ci([0.3] * 40, seed=1)
    assert low == high


def test_the_interval_is_fixed_by_the_seed():
    values = [i % 7 / 6 for i in range(50)]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_the_interval_of_a_half_is_about_two_standard_errors():
    """50 ones and 50 zeros: mean 0.5, standard error sqrt(0.25 / 100) = 0.05, so about
    0.5 -+ 1.96 * 0.05 = [0.402, 0.598]."""
    low, high = bootstrap_ci([1.0] * 50 + [0.0] * 50, seed=0)
    assert low == pytest.approx(0.402, abs=0.02)
    assert high == pytest.approx(0.598, abs=0.02)


def test_the_summary_gives_an_interval_below_100_examples_only():
    rows = [{"scores": {"sari": i % 2, "content_recall": None}} for i in range(120)]
    few, many = summary_with_ci(rows[:40], 0, ("sari",)), summary_with_ci(rows, 0, ("sari",))
    assert few["sari"]["n"] == 40 and few["sari"]["ci"] is not None
    assert many["sari"] == {"mean": 0.5, "n": 120, "ci": None}
    assert summary_with_ci(rows, 0, ("content_recall",))["content_recall"]["n"] == 0


# ---------------------------------------------------------------- the benchmark script


def benchmark():
    return benchmark_script("real_questions")


def test_the_real_questions_benchmark_writes_its_table(tmp_path):
    result = benchmark().main(["--no-model", "--limit", "8", "--out", str(tmp_path)])
    assert list(result["systems"]) == ["BART-large (published)", "rule baseline"]
    assert json.loads((tmp_path / "real_questions.json").read_text())["questions"] == 8
    table = (tmp_path / "real_questions.md").read_text(encoding="utf-8")
    assert "| rule baseline | 1.000 [1.000, 1.000] (n=8) |" in table


def test_the_benchmark_scores_the_model_its_few_shot_prompt_and_a_tuned_run(trained, tmp_path):
    *_, run_dir = trained
    argv = ["--profile", "cpu_tiny", "--limit", "3", "--max-new-tokens", "8"]
    result = benchmark().main([*argv, "--run", str(run_dir), "--out", str(tmp_path)])
    assert list(result["systems"])[2:] == ["untuned", "few-shot (3)", "tuned"]
    assert all(s["sari"]["n"] == 3 for s in result["systems"].values())
    shown = result["few_shot_examples"]  # three training ids before each of the 3 questions
    assert [len(ids) for ids in shown] == [3, 3, 3] and shown[0] != shown[1]
