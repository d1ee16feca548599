"""Real decomposition data (#20): StrategyQA in data/strategyqa/, converted from the authors'
repository by scripts/convert_strategyqa.py with qdlib's own converter (data/strategyqa/SOURCE.md).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from qdlib.config import load_config
from qdlib.data import detect_language, load_records, normalize_question
from qdlib.sources import load_any
from qdlib.splits import prepare_splits

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "strategyqa"
sys.path.insert(0, str(ROOT / "scripts"))
import convert_strategyqa as conv  # noqa: E402  (scripts/convert_strategyqa.py)

COMMIT = "1ba1e97452e189569357876f2854b01357ffbe37"
FILES = ("train.jsonl", "dev.jsonl", "dev_bart_large_predictions.jsonl")

# Raw upstream rows at COMMIT, verbatim, keyed by their index in the upstream file (list index
# for the .json files, line - 1 for the predictions). Nothing is dropped upstream -> here, so the
# converted record of upstream row i is line i + 1 of the committed file.
RAW_TRAIN = {
    0: {
        "qid": "2bc9c4f9c19c167187f2",
        "term": "Genghis Khan",
        "description": "founder and first Great Khan of the Mongol Empire",
        "question": "Are more people today related to Genghis Khan than Julius Caesar?",
        "answer": True,
        "facts": [
            "Julius Caesar had three children.",
            "Genghis Khan had sixteen children.",
            "Modern geneticists have determined that  out of every 200 men today has DNA that "
            "can be traced to Genghis Khan.",
        ],
        "decomposition": [
            "How many kids did Julius Caesar have?",
            "How many kids did Genghis Khan have?",
            "Is #2 greater than #1?",
        ],
        "evidence": [
            [
                [["Caesarion-2", "Julia (daughter of Caesar)-1"]],
                [["Alakhai Bekhi-1", "Tolui-1"], "no_evidence"],
                ["operation"],
            ],
            [[["Julius Caesar-75"]], [["Genghis Khan-17"]], ["operation"]],
            [
                [["Gaius Julius Caesar-7"]],
                [["Genghis Khan-15"], "no_evidence"],
                ["no_evidence", "operation"],
            ],
        ],
    },
    1651: {
        "qid": "cc703e3ede09f42a9d39",
        "term": "Kanji",
        "description": "adopted logographic Chinese characters used in the modern Japanese "
        "writing system",
        "question": "Can a person who knows only English read Kanji?",
        "answer": False,
        "facts": [
            "Kanji is a Japanese language.",
            "People who only know English can't read Japanese.",
        ],
        "decomposition": ["Is knowledge of Kanji included in English language?"],
        "evidence": [[[["Kanji-1"]]], [[["Kanji-1"]]], [[["Kanji-1"]]]],
    },
}
RAW_DEV = {
    0: {
        "qid": "e0044a7b4d146d611e73",
        "term": "Albany, Georgia",
        "description": "City in Georgia, United States",
        "question": "Will the Albany in Georgia reach a hundred thousand occupants before the "
        "one in New York?",
        "answer": False,
        "facts": [
            "Albany, GA has around 75,000 people",
            "Albany, NY has almost 100,000 people",
        ],
        "decomposition": [
            "What is the population of Albany, Georgia?",
            "What is the population of Albany, New York?",
            "What is the difference between 100,000 and #1?",
            "What is the difference between 100,000 and #2?",
            "Is #3 smaller than #4?",
        ],
        "evidence": [
            [
                [["Albany, Georgia-1"]],
                [["Albany, New York-2"]],
                ["operation"],
                ["operation"],
                ["operation"],
            ],
            [
                [["Albany, Georgia-35"]],
                [["Albany, New York-2"]],
                ["operation"],
                ["operation"],
                ["operation"],
            ],
            [
                [["Albany, Georgia-1"]],
                [["Albany, New York-2"]],
                ["operation"],
                ["operation"],
                ["operation"],
            ],
        ],
    },
}
RAW_PREDICTIONS = {
    0: {
        "loss": 0.6949476599693298,
        "decomposition": [
            "What is the population of Albany, Georgia?",
            "How many people are in the Albany, New York?  Is #1 greater than or equal to #2?",
        ],
        "qid": "e0044a7b4d146d611e73",
        "question": RAW_DEV[0]["question"],
        "gold_decomposition": RAW_DEV[0]["decomposition"],
    },
}


def lines(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def records(name: str) -> list[dict]:
    return [json.loads(line) for line in lines(name)]


def question_key(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip()


def source_table() -> dict[str, tuple[str, int, int, int]]:
    """SOURCE.md's table: file -> (upstream path, rows in, records out, dropped)."""
    rows = re.findall(
        r"^\| `data/strategyqa/([^`]+)` \| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \|$",
        (DATA / "SOURCE.md").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    return {
        name: (path, int(n_in), int(n_out), int(drop)) for name, path, n_in, n_out, drop in rows
    }


def write_upstream(root: Path, train: dict, dev: dict, predictions: dict) -> Path:
    """A folder laid out like the upstream repository, holding the given raw rows."""
    files = {
        "train.jsonl": json.dumps(list(train.values()), indent=2),
        "dev.jsonl": json.dumps(list(dev.values()), indent=2),
        "dev_bart_large_predictions.jsonl": "".join(
            json.dumps(p) + "\n" for p in predictions.values()
        ),
    }
    for name, text in files.items():
        path = root / conv.UPSTREAM[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("name", FILES)
def test_each_file_loads_with_qdlibs_loader_and_no_invalid_record(name):
    gold = "predictions" not in name  # a model's output: its #k may point anywhere
    result = load_records(DATA / name, strict=False, gold=gold)
    assert result.skipped == []
    assert len(result.records) == len(lines(name)) == source_table()[name][2]
    if gold:
        assert load_any(str(DATA / name)).records == result.records  # as a profile reads it
    ids = [r["id"] for r in result.records]
    assert len(set(ids)) == len(ids)
    assert {r["source"] for r in result.records} == {"strategyqa"}


def test_no_dev_question_or_id_is_in_train():
    train, dev = records("train.jsonl"), records("dev.jsonl")
    assert len(dev) > 200
    keys = {question_key(r["question"]) for r in train}
    assert [r["question"] for r in dev if question_key(r["question"]) in keys] == []
    normalized = {normalize_question(r["question"]) for r in train}
    assert [r["question"] for r in dev if normalize_question(r["question"]) in normalized] == []
    assert {r["id"] for r in dev}.isdisjoint(r["id"] for r in train)


def test_the_predictions_are_labelled_and_decompose_dev_question_by_question():
    dev, preds = records("dev.jsonl"), records("dev_bart_large_predictions.jsonl")
    assert [(r["id"], r["question"]) for r in preds] == [(r["id"], r["question"]) for r in dev]
    assert {r["predicted_by"] for r in preds} == {conv.PREDICTED_BY}
    assert "bart-large" in conv.PREDICTED_BY
    assert not any("predicted_by" in r for r in records("train.jsonl") + dev)


def test_source_md_names_the_commit_and_its_counts_are_the_files():
    text = (DATA / "SOURCE.md").read_text(encoding="utf-8")
    assert f"--rev {COMMIT}" in text and "scripts/convert_strategyqa.py" in text
    assert "github.com/eladsegal/strategyqa" in text
    table = source_table()
    assert sorted(table) == sorted(FILES)
    for name, (upstream, n_in, n_out, dropped) in table.items():
        assert upstream == conv.UPSTREAM[name]
        assert n_out == len(lines(name)) and n_in == n_out + dropped


def test_the_licence_is_upstreams_mit_licence():
    text = (DATA / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2021 Elad Segal\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_only_converted_files_of_a_reasonable_size_are_kept():
    kept = sorted(p.name for p in DATA.iterdir())
    assert kept == sorted([*FILES, "LICENSE", "SOURCE.md"])  # no raw upstream .json
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 3_000_000


def test_the_conversion_reproduces_the_committed_lines(tmp_path):
    upstream = write_upstream(tmp_path / "strategyqa", RAW_TRAIN, RAW_DEV, RAW_PREDICTIONS)
    out = tmp_path / "out"
    assert conv.main([str(upstream), "--out", str(out)]) == 0
    for name, raw in zip(FILES, (RAW_TRAIN, RAW_DEV, RAW_PREDICTIONS), strict=True):
        committed = lines(name)
        remade = (out / name).read_text(encoding="utf-8").splitlines()
        assert remade == [committed[i] for i in raw]  # byte for byte


def test_the_converter_writes_nothing_when_a_dev_question_is_in_train(tmp_path, capsys):
    leaked = {-1: RAW_DEV[0] | {"qid": "another-id", "question": RAW_DEV[0]["question"].upper()}}
    upstream = write_upstream(tmp_path / "up", RAW_TRAIN | leaked, RAW_DEV, RAW_PREDICTIONS)
    assert conv.main([str(upstream), "--out", str(tmp_path / "out")]) == 1
    assert "dev question also in train" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "n"), [("dev.jsonl", 40), ("train.jsonl", 300)])
def test_the_korean_files_are_the_first_questions_translated_step_for_step(name, n):
    """data/strategyqa_ko/: the first 40 dev and the first 300 train questions in Korean, each
    with the same steps and, in each step, the same #k references as its English original
    (Korean word order may put them the other way round; SOURCE.md says so)."""
    text = (DATA.parent / "strategyqa_ko" / name).read_text(encoding="utf-8")
    korean = [json.loads(line) for line in text.splitlines()]
    english = [json.loads(line) for line in lines(name)][: len(korean)]
    assert len(korean) == n
    hangul = re.compile(r"[\uac00-\ud7a3]")
    for ko, en in zip(korean, english, strict=True):
        assert ko["id"] == en["id"] + "-ko"
        assert len(ko["sub_questions"]) == len(en["sub_questions"]), ko["id"]
        for k, e in zip(ko["sub_questions"], en["sub_questions"], strict=True):
            assert sorted(re.findall(r"#\d+", k)) == sorted(re.findall(r"#\d+", e)), (k, e)
        assert all(hangul.search(t) for t in [ko["question"], *ko["sub_questions"]]), ko["id"]
    assert load_records(DATA.parent / "strategyqa_ko" / name).records  # valid, refs point back


def test_no_korean_training_question_is_a_translated_test_question():
    ids = {json.loads(line)["id"] for line in lines("dev.jsonl")}
    text = (DATA.parent / "strategyqa_ko/train.jsonl").read_text(encoding="utf-8")
    assert not {json.loads(line)["id"].removesuffix("-ko") for line in text.splitlines()} & ids


@pytest.mark.parametrize(
    ("profile", "languages"),
    [("cpu_small", {"en"}), ("cpu_ko", {"ko"}), ("rtx4060", {"en", "ko"}),
     ("runpod", {"en", "ko"})],
)  # fmt: skip
def test_every_course_profile_trains_on_real_questions_in_its_languages(profile, languages):
    """#20: the course profiles train on real questions, not only on the templates, in every
    language they teach; the GPU profiles in both. No real training question is held out where
    its translation is trained on, so no held-out question has its translation in training."""
    splits = prepare_splits(load_config(profile))
    real = [r for r in splits.train if "template" not in r]
    assert {detect_language(r["question"]) for r in real} == languages
    assert len(real) >= 200 * len(languages)
    if languages == {"en", "ko"}:
        assert all("template" in r for r in splits.eval)
