"""data.holdout_by: eval holds out single records, whole templates, or whole entities.

Every grouping test runs on the real teaching set, where a split per record puts every template
and most entities on both sides: each test fails if the grouping were ignored.
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.data import load_records
from qdlib.files import write_jsonl
from qdlib.splits import shares_a_group, split_by, template_key

TEACHING = "data/teaching/decompose_teach.jsonl"
PROFILES = ("cpu_tiny", "cpu_small", "cpu_ko", "rtx4060", "runpod")


def splits_for(profile: str = "cpu_tiny", seed: int | None = None, **data):
    from qdlib.splits import prepare_splits

    return prepare_splits(load_config(profile, seed=seed, data=data))


def templates(records):
    return {template_key(r) for r in records if r.get("template")}


def entities(records):
    return {e for r in records for e in r.get("entities") or []}


def fingerprint(records) -> str:
    return hashlib.sha256(json.dumps([r["id"] for r in records]).encode()).hexdigest()[:16]


# Today's split, computed by qdlib at c73de49, before data.holdout_by existed: the same seed must
# give the same records, in the same order.
TODAYS_SPLITS = {
    "cpu_small": (630, "abb087aa5b4a5f81", 70, "c31a6f55463c9d1c"),
    "cpu_tiny": (2268, "6b5544f65903e6c4", 252, "4293320a1d16fb78"),
}


# The data sections those profiles had then (cpu_small now mixes StrategyQA in: the same data
# section must still give the same split).
THEN = {
    "cpu_small": {"train_file": TEACHING, "sources": [], "max_samples": 700, "eval_fraction": 0.1,
                  "holdout_fraction": None},
    "cpu_tiny": {},
}  # fmt: skip


@pytest.mark.parametrize("profile", sorted(TODAYS_SPLITS))
def test_holdout_by_none_is_todays_split(profile):
    splits = splits_for(profile, holdout_by="none", **THEN[profile])
    got = (len(splits.train), fingerprint(splits.train), len(splits.eval), fingerprint(splits.eval))
    assert got == TODAYS_SPLITS[profile]
    assert "held out by" not in str(splits) and splits.report()["holdout"]["by"] == "none"


def test_no_template_is_on_both_sides_of_the_teaching_set():
    splits = splits_for("cpu_tiny", holdout_by="template")
    assert splits.eval and not templates(splits.train) & templates(splits.eval)


def test_held_out_templates_are_the_same_in_both_languages():
    splits = splits_for("cpu_tiny", holdout_by="template")
    held = {tuple(key.split("/")) for key in templates(splits.eval)}
    assert {lang for lang, _ in held} == {"en", "ko"}
    names = {lang: {name for code, name in held if code == lang} for lang in ("en", "ko")}
    assert names["en"] == names["ko"] and 0 < len(names["en"]) < 14  # of 14 per language


def test_no_eval_entity_appears_in_a_training_question():
    splits = splits_for("cpu_tiny", holdout_by="entity")
    questions = [r["question"].casefold() for r in splits.train]
    assert splits.eval
    assert not [e for e in entities(splits.eval) if any(e.casefold() in q for q in questions)]


def test_every_question_of_an_entity_holdout_names_only_held_out_entities():
    splits = splits_for("cpu_tiny", holdout_by="entity")
    assert not entities(splits.train) & entities(splits.eval)
    assert len({len(r["entities"]) for r in splits.eval}) > 1  # not only one-name questions


@pytest.mark.parametrize("by", ["template", "entity"])
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_splits_by_each_grouping(profile, by):
    splits = splits_for(profile, holdout_by=by)
    group = templates if by == "template" else entities
    whole = [r for r in splits.eval if r.get("held_out") == by]  # held out as a group
    assert splits.train and whole
    assert not group(splits.train) & group(whole)
    summary = splits.holdout
    assert summary.train_groups == len(group(splits.train))
    assert summary.eval_groups == len(group(whole))
    unit = "templates" if by == "template" else "entities"
    line = f"held out by {by}: {summary.train_groups} {unit} in train, "
    line += f"{summary.eval_groups} held out whole"
    assert line in str(splits)


@pytest.mark.parametrize("profile", PROFILES)
def test_holdout_fraction_holds_out_whole_templates_and_trained_templates_questions(profile):
    splits = splits_for(profile, holdout_by="template", holdout_fraction=0.2, eval_fraction=0.1)
    whole = [r for r in splits.eval if r.get("held_out") == "template"]
    in_template = [r for r in splits.eval if r.get("template") and "held_out" not in r]
    assert whole and in_template
    assert not templates(splits.train) & templates(whole)  # unseen: never trained
    assert templates(in_template) <= templates(splits.train)  # in-template: trained
    asked = {r["question"] for r in splits.train}
    assert not asked & {r["question"] for r in splits.eval}
    assert splits.holdout.in_group == len(in_template)
    assert splits.holdout.eval_names == sorted(templates(whole))
    assert f"{len(in_template)} eval questions of trained templates" in str(splits)


def test_holdout_fraction_zero_is_a_split_per_record_within_the_groups():
    splits = splits_for("cpu_tiny", holdout_by="template", holdout_fraction=0.0)
    assert splits.eval and not any("held_out" in r for r in splits.eval)
    assert templates(splits.eval) <= templates(splits.train)


def test_about_eval_fraction_of_the_templates_are_held_out():
    splits = splits_for("cpu_tiny", holdout_by="template", eval_fraction=0.3)
    assert (splits.holdout.train_groups, splits.holdout.eval_groups) == (20, 8)  # 4 of 14 each


def test_a_template_held_out_in_one_source_is_not_trained_from_another():
    both = [{"spec": TEACHING, "max_samples": 600}, {"spec": TEACHING, "max_samples": 600}]
    splits = splits_for("cpu_tiny", 44, train_file=None, sources=both, holdout_by="template")
    assert len(templates(splits.eval)) == 4  # seeds 44 and 45 hold out different templates
    assert not templates(splits.train) & templates(splits.eval)
    assert splits.holdout.dropped > 0


def test_an_eval_file_holds_its_templates_out_of_training(tmp_path):
    teaching = load_records(PROJECT_ROOT / TEACHING).records
    path = tmp_path / "eval.jsonl"
    write_jsonl(path, [r for r in teaching if r["template"] == "compare_city"][:20])
    splits = splits_for("cpu_tiny", eval_file=str(path), holdout_by="template")
    assert templates(splits.eval) <= {"en/compare_city", "ko/compare_city"}
    assert not templates(splits.train) & templates(splits.eval)


def test_records_without_a_template_are_split_one_by_one_and_the_report_says_so(tmp_path):
    teaching = load_records(PROJECT_ROOT / TEACHING).records[:300]
    loose = [{"question": f"Is {i} a prime?", "sub_questions": [f"{i}?"]} for i in range(100)]
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, teaching + loose)
    splits = splits_for("cpu_tiny", train_file=str(path), holdout_by="template")
    assert 0 < sum("template" not in r for r in splits.eval) < 100
    assert not templates([r for r in splits.train if "template" in r]) & templates(
        [r for r in splits.eval if "template" in r]
    )
    assert splits.holdout.ungrouped == 100
    assert "100 records without a 'template' field split one by one" in str(splits)


def test_split_by_none_is_split_records():
    from qdlib.data import split_records

    records = [{"question": f"q{i}?", "sub_questions": ["a?"]} for i in range(50)]
    assert split_by(records, "none", 0.2, seed=3) == (*split_records(records, 0.2, seed=3), 0)


def test_a_held_out_name_keeps_out_questions_that_contain_it():
    question = {"question": "Was Seoul National University founded before KAIST?"}
    assert shares_a_group(question, {"seoul"}, "entity")
    assert not shares_a_group(question, {"busan"}, "entity")


def test_the_teaching_set_is_what_its_generator_writes_and_names_its_entities(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "teach.jsonl"
    script = PROJECT_ROOT / "scripts/make_teaching_set.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True, cwd=PROJECT_ROOT)
    assert out.read_bytes() == (PROJECT_ROOT / TEACHING).read_bytes()
    for record in load_records(out).records:
        assert record["entities"] and all(e in record["question"] for e in record["entities"])


def test_each_source_may_hold_out_its_own_fraction():
    sources = [
        {"spec": "data/strategyqa/train.jsonl", "eval_fraction": 0.05},
        {"spec": TEACHING, "max_samples": 200},  # the data section's eval_fraction: 0.1
    ]
    splits = splits_for("cpu_tiny", train_file=None, sources=sources)
    assert [m["eval"] for m in splits.mix] == [103, 20]


def test_a_question_two_sources_share_is_a_duplicate_not_a_leak(tmp_path):
    """Only eval questions taken out of train count as leaked; the same training question from
    a second source is a duplicate, dropped once."""
    rows = [{"question": f"Which is older, A{i} or B{i}?", "sub_questions": ["How old is A?"]}
            for i in range(40)]  # fmt: skip
    write = lambda name, recs: (tmp_path / name).write_text(  # noqa: E731
        "".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    write("a.jsonl", rows)
    write("b.jsonl", rows[:10])  # the first 10 again: duplicates, not eval questions
    sources = [{"spec": str(tmp_path / "a.jsonl"), "eval_fraction": 0.25},
               {"spec": str(tmp_path / "b.jsonl"), "eval_fraction": 0.0}]  # fmt: skip
    splits = splits_for("cpu_tiny", train_file=None, sources=sources)
    in_eval = {r["question"] for r in splits.eval}
    assert splits.leaked == sum(r["question"] in in_eval for r in rows[:10])
    assert splits.duplicates == 10 - splits.leaked
    assert len(splits.train) + len(splits.eval) == 40


def test_holdout_fraction_without_a_grouping_and_predictions_without_a_test_file_are_refused():
    from qdlib.config import ConfigError

    with pytest.raises(ConfigError, match="holdout_fraction is the share of templates"):
        load_config("cpu_tiny", data={"holdout_fraction": 0.2})
    with pytest.raises(ConfigError, match="name the test file too"):
        load_config("cpu_tiny", evaluation={"test_file": None})


def test_every_training_record_also_in_eval_is_refused_before_a_run_is_made(tmp_path):
    from qdlib.cli import main
    from qdlib.data import DataError

    rows = [{"question": f"Is A{i} older than B{i}?", "sub_questions": ["How old is A?"]}
            for i in range(20)]  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = ["train", "--profile", "cpu_tiny", "--run-dir", str(tmp_path / "run"),
            "-p", "data.train_file", str(data), "-p", "data.eval_file", str(data)]  # fmt: skip
    assert main(argv) == 2
    assert not (tmp_path / "run").exists()
    with pytest.raises(DataError, match="no training record is left: 20 are eval questions"):
        splits_for("cpu_tiny", train_file=str(data), eval_file=str(data))


# ---------------------------------------------------------------- a source that finishes the run

FINISHING = [
    {"spec": "data/strategyqa/train.jsonl", "eval_fraction": 0.0, "max_samples": 300},
    {"spec": TEACHING, "max_samples": 200, "finish_fraction": 0.3},
]


def test_a_finishing_source_trains_the_last_steps_alone_in_length_groups(tiny_tokenizer):
    """The last finish_steps x batch examples are the finishing source's (drawn from its training
    part, never an eval question); before them, the budget's other steps take the mix; each part
    comes in batches of similar length, as group_by_length would draw them."""
    from qdlib.prompts import tokenize_splits
    from qdlib.splits import prepare_splits
    from qdlib.train import finishing_order, sampling_strategy

    cfg = load_config("cpu_tiny", data={"train_file": None, "sources": FINISHING},
                      training={"max_steps": 10, "batch_size": 4})  # fmt: skip
    splits = prepare_splits(cfg)
    tail, mixed = splits.train[-12:], splits.train[:-12]
    assert all(r.get("template") for r in tail)
    assert {r["id"] for r in tail} <= {r["id"] for r in mixed if r.get("template")}
    assert not {r["question"] for r in tail} & {r["question"] for r in splits.eval}
    assert "then the last 3 steps alone" in str(splits)
    assert sampling_strategy(cfg) == "sequential"

    tokenized = tokenize_splits(splits.train, splits.eval[:2], tiny_tokenizer, 256)
    ordered = finishing_order(tokenized.train, cfg)
    assert len(ordered) == 10 * 4  # exactly the budget: the Trainer reads it in order
    last = [tokenized.train[len(splits.train) - 12 + i]["input_ids"] for i in range(12)]
    assert sorted(map(tuple, ordered[-12:]["input_ids"])) == sorted(map(tuple, last))
    head = [len(ids) for ids in ordered[:-12]["input_ids"]]
    shuffled = random.Random(0).sample(head, len(head))

    def spread(lengths: list[int]) -> int:  # longest minus shortest, summed over the batches
        return sum(max(lengths[i:i + 4]) - min(lengths[i:i + 4]) for i in range(0, len(lengths), 4))

    assert spread(head) < spread(shuffled)  # batches of similar length: little padding

    again = finishing_order(tokenized.train, cfg)  # seeded: a resumed run takes the same order
    assert again["input_ids"] == ordered["input_ids"]


def test_without_a_finishing_source_the_trainer_draws_as_before(tiny_tokenizer):
    from qdlib.train import finishing_order, sampling_strategy

    cfg = load_config("cpu_tiny")
    assert cfg.finish_steps() == 0
    assert sampling_strategy(cfg) == ("group_by_length" if cfg.training.group_by_length
                                      else "random")  # fmt: skip
    data = {"input_ids": [[1, 2], [3]]}
    assert finishing_order(data, cfg) is data


def test_finish_steps_needs_a_budget_above_it_and_one_finishing_source():
    from qdlib.config import ConfigError

    sources = [dict(s, finish_fraction=0.3) for s in FINISHING]
    with pytest.raises(ConfigError, match="one source can finish a run"):
        load_config("cpu_tiny", data={"train_file": None, "sources": sources},
                    training={"max_steps": 10})  # fmt: skip
    with pytest.raises(ConfigError, match="finish_fraction is a share of a step budget"):
        load_config("cpu_tiny", data={"train_file": None, "sources": FINISHING},
                    training={"max_steps": -1})  # fmt: skip


@pytest.mark.parametrize(("max_steps", "finishing"), [(80, 24), (4, 1), (2, 1), (1, 0)])
def test_finish_fraction_is_a_share_of_the_budget_at_least_one_step_never_all(max_steps, finishing):
    """A learner who cuts the budget (-p training.max_steps 4) keeps a finishing step or two."""
    cfg = load_config("cpu_ko", training={"max_steps": max_steps})
    assert cfg.finish_steps() == finishing


def test_a_finishing_source_with_nothing_left_to_train_is_refused(tmp_path):
    from qdlib.data import DataError

    rows = [{"question": f"Is A{i} older than B{i}?", "sub_questions": ["How old is A?"]}
            for i in range(20)]  # fmt: skip
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    sources = [FINISHING[0], {"spec": str(tmp_path / "d.jsonl"), "weight": 0.0,
                              "finish_fraction": 0.3, "eval_fraction": 0.9}]  # fmt: skip
    cfg = load_config("cpu_tiny", data={"train_file": None, "sources": sources},
                      training={"max_steps": 10})  # fmt: skip
    from qdlib.splits import prepare_splits

    splits = prepare_splits(cfg)  # 2 of the 20 are left: still a tail
    assert len(splits.train) == 300 + 3 * cfg.examples_per_step()
    (tmp_path / "d.jsonl").write_text(json.dumps(rows[0]) + "\n", "utf-8")
    with pytest.raises(DataError, match=r"data.sources\[1\].*none of its records is left"):
        prepare_splits(cfg)
