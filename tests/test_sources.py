"""Converters for StrategyQA, BREAK and MuSiQue; mixing; `qd data check`. Fixtures are small
files written in each dataset's real layout, quirks included."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from qdlib.data import record_problem
from qdlib.sources import break_qdmr, load_any, musique, parse_spec, rewrite_refs, strategyqa

FIX = Path(__file__).parent / "fixtures"


def rows_in(path: Path) -> int:
    """Input rows of a fixture: list items, CSV data lines or JSONL lines."""
    import csv
    import json

    if path.suffix == ".csv":
        return sum(1 for _ in csv.DictReader(path.open(encoding="utf-8")))
    if path.suffix == ".jsonl":
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return len(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("convert", "name", "kept", "skipped"),
    [
        (strategyqa, "strategyqa_small.json", 3, 1),
        (break_qdmr, "break_qdmr_small.csv", 2, 1),
        (break_qdmr, "break_high_level_small.csv", 1, 1),
        (musique, "musique_small.jsonl", 2, 1),
    ],
)
def test_every_row_is_a_valid_record_or_a_reported_skip(convert, name, kept, skipped):
    result = convert(FIX / name)
    assert len(result.records) == kept and len(result.skipped) == skipped
    assert len(result.records) + len(result.skipped) == rows_in(FIX / name)
    assert all(record_problem(r) is None for r in result.records)
    assert all(r["id"] and r["source"] for r in result.records)


def test_strategyqa_keeps_qid_and_references():
    rec = strategyqa(FIX / "strategyqa_small.json").records[0]
    assert rec["id"] == "b8677742616fef051f00"
    assert rec["sub_questions"][-1] == "Is #2 greater than #1?"


def test_break_drops_return_and_splits_steps():
    rec = break_qdmr(FIX / "break_qdmr_small.csv").records[0]
    assert rec["sub_questions"] == [
        "flights",
        "#1 from denver",
        "#2 to philadelphia",
        "#3 if available tomorrow",
    ]


def test_break_test_rows_are_skipped_with_a_reason():
    result = break_qdmr(FIX / "break_qdmr_small.csv")
    (skip,) = result.skipped
    assert skip.where == "line 4" and "empty decomposition" in skip.reason


def test_musique_keeps_kb_notation_verbatim():
    recs = musique(FIX / "musique_small.jsonl").records
    assert recs[1]["sub_questions"][0] == "Pelé >> member of sports team"
    assert recs[0]["sub_questions"][1] == "When was #1 signed by Barcelona?"


def test_references_can_be_rewritten_in_words():
    rec = strategyqa(FIX / "strategyqa_small.json", refs="words").records[0]
    assert rec["sub_questions"][-1] == "Is the answer to step 2 greater than the answer to step 1?"
    assert rewrite_refs("#1의 인구는?", "ko") == "1단계의 답의 인구는?"


def test_spec_prefix_picks_the_converter():
    assert parse_spec("break:data/QDMR/train.csv") == ("break", "data/QDMR/train.csv")
    assert parse_spec("data/my.jsonl") == ("records", "data/my.jsonl")
    assert parse_spec("C:/data/my.jsonl") == ("records", "C:/data/my.jsonl")
    assert len(load_any(f"musique:{FIX / 'musique_small.jsonl'}").records) == 2


def test_missing_break_columns_are_named(tmp_path):
    from qdlib.data import DataError

    bad = tmp_path / "b.csv"
    bad.write_text("id,text\n1,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"b.csv: a BREAK CSV needs the columns"):
        break_qdmr(bad)


# ---------------------------------------------------------------- qd data check


def test_check_reports_planted_train_eval_duplicate_in_nfd(capsys):
    from qdlib.cli import main

    code = main(
        [
            "data",
            "check",
            str(FIX / "check_train.jsonl"),
            "--eval",
            str(FIX / "check_eval.jsonl"),
            "--no-tokenizer",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "LEAKAGE: 1 eval questions also in train" in out


def test_check_reports_nfc_nfd_duplicate_and_fails_on_invalid(capsys):
    from qdlib.cli import main

    code = main(["data", "check", str(FIX / "check_dups.jsonl"), "--no-tokenizer"])
    out = capsys.readouterr().out
    assert code == 1
    assert "duplicates (same question after normalising): 1 groups" in out
    assert "invalid line 3" in out


def test_check_passes_clean_data_with_token_lengths(capsys):
    from qdlib.cli import main

    assert main(["data", "check", "data/examples/sample_train.jsonl", "--profile", "cpu_tiny"]) == 0
    out = capsys.readouterr().out
    assert "cut by max_seq_length=192" in out and "languages: en 16 (50%), ko 16 (50%)" in out


def test_check_counts_dataset_skips_without_failing(capsys):
    from qdlib.cli import main

    assert main(["data", "check", f"break:{FIX / 'break_qdmr_small.csv'}", "--no-tokenizer"]) == 0
    assert "skipped line 4: empty decomposition" in capsys.readouterr().out


def test_converter_skips_in_the_eval_file_are_not_errors_either(capsys):
    """They used to lose their kind on the way into the report, and fail the check."""
    from qdlib.cli import main

    spec = f"break:{FIX / 'break_qdmr_small.csv'}"
    train = str(FIX / "check_train.jsonl")
    assert main(["data", "check", train, "--eval", spec, "--no-tokenizer"]) == 0
    assert "empty decomposition" in capsys.readouterr().out


def test_nfd_fixture_really_is_nfd():
    import json

    q = json.loads((FIX / "check_eval.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert q["question"] != unicodedata.normalize("NFC", q["question"])


# ---------------------------------------------------------------- mixing

MIX = {
    "train_file": None,
    "sources": [
        {"spec": "data/teaching/decompose_teach.jsonl", "weight": 0.5, "max_samples": 400},
        {"spec": f"strategyqa:{FIX / 'strategyqa_small.json'}", "weight": 3.0},
        {"spec": f"musique:{FIX / 'musique_small.jsonl'}"},
        {"spec": "data/examples/sample_train.jsonl", "weight": 2.0},
    ],
}


def test_mix_is_deterministic_weighted_and_leak_free():
    from qdlib.config import load_config
    from qdlib.data import normalize_question
    from qdlib.splits import prepare_splits

    cfg = load_config("cpu_tiny", data=MIX)
    a, b = prepare_splits(cfg), prepare_splits(cfg)
    assert a.train == b.train and a.eval == b.eval
    by_spec = {m["spec"]: m for m in a.mix}
    teach = by_spec["data/teaching/decompose_teach.jsonl"]
    assert teach["records"] == 400 and teach["train"] == round(0.5 * (400 - teach["eval"]))
    sample = by_spec["data/examples/sample_train.jsonl"]
    assert sample["train"] == 2 * (32 - sample["eval"])
    eval_keys = {normalize_question(r["question"]) for r in a.eval}
    assert not eval_keys & {normalize_question(r["question"]) for r in a.train}
    assert {r.get("source") for r in a.train} >= {"strategyqa", "musique", None}
    assert a.report()["sources"] == a.mix
    assert [s.kind for s in a.skipped] == ["skipped", "skipped"]


def test_mix_entries_are_validated_by_position(tmp_path):
    from qdlib.config import ConfigError, load_config

    bad = {"train_file": None, "sources": [{"spec": "a.jsonl"}, {"spec": "b.jsonl", "wieght": 2}]}
    with pytest.raises(ConfigError, match=r"unknown key data\.sources\[1\]\.wieght"):
        load_config("cpu_tiny", data=bad)


def test_train_file_and_sources_are_exclusive():
    from qdlib.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"either data\.train_file .* or data\.sources"):
        load_config("cpu_tiny", data={"sources": [{"spec": "a.jsonl"}]})


def test_one_profile_line_uses_a_dataset():
    from qdlib.config import load_config
    from qdlib.splits import prepare_splits

    cfg = load_config(
        "cpu_tiny", data={"train_file": f"break:{FIX / 'break_qdmr_small.csv'}", "refs": "words"}
    )
    splits = prepare_splits(cfg)
    steps = [s for r in splits.train + splits.eval for s in r["sub_questions"]]
    assert len(splits.train) + len(splits.eval) == 2 and not any("#" in s for s in steps)


def test_global_max_samples_with_a_mix_is_refused():
    from qdlib.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="give max_samples per source"):
        load_config(
            "cpu_tiny",
            data={"train_file": None, "max_samples": 10, "sources": [{"spec": "a.jsonl"}]},
        )
