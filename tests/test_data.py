"""Records load with errors that name the place; labels train exactly the answer and its EOS."""

from __future__ import annotations

import json
import unicodedata

import pytest

from qdlib.data import DataError, dedup, detect_language, load_records, split_records
from qdlib.prompts import (
    IGNORE_INDEX,
    encode_example,
    prompt_ids,
    render_answer,
    render_prompt,
    tokenize_splits,
)

GOOD = {"question": "A와 B의 인구는?", "sub_questions": ["A의 인구는?", "B의 인구는?"]}


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def jsonl(*objs):
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def test_json_list_and_jsonl_give_the_same_records():
    json_recs = load_records("data/examples/sample_train.json").records
    jsonl_recs = load_records("data/examples/sample_train.jsonl").records
    assert json_recs == jsonl_recs and len(json_recs) >= 30


def test_malformed_json_reports_line_and_column(tmp_path):
    path = write(
        tmp_path, "d.json", '[\n  {"question": "q?", "sub_questions": ["a?"]},\n  {oops}\n]'
    )
    with pytest.raises(DataError, match=r"d.json, line 3, column 4: not valid JSON"):
        load_records(path)


def test_bad_jsonl_line_is_named(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl(GOOD) + '{"question": "q?"\n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: not valid JSON"):
        load_records(path)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"sub_questions": ["a?"]}, 'field "question" is missing'),
        ({"question": "q?"}, 'field "sub_questions" is missing'),
        ({"question": 3, "sub_questions": ["a?"]}, 'field "question" must be a non-empty string'),
        ({"question": "q?", "sub_questions": "a?"}, "must be a non-empty list of strings; got the"),
        ({"question": "q?", "sub_questions": []}, "got an empty list"),
        (
            {"question": "  ", "sub_questions": ["a?"]},
            '"question" must be a non-empty string; got an',
        ),
        (
            {"question": "q?", "sub_questions": ["a?", ""]},
            '"sub_questions" item 1 must be a non-empty',
        ),
        (
            {"question": "q?", "sub_questions": ["a?", 7]},
            '"sub_questions" item 1 must be a non-empty string',
        ),
        (["q?", ["a?"]], "a record must be a JSON object"),
    ],
)
def test_each_bad_record_names_line_and_field(tmp_path, record, message):
    path = write(tmp_path, "d.jsonl", jsonl(GOOD, GOOD, record))
    with pytest.raises(DataError) as err:
        load_records(path)
    assert "d.jsonl, line 3: " in str(err.value) and message in str(err.value)


def test_json_list_errors_name_the_index(tmp_path):
    path = write(tmp_path, "d.json", json.dumps([GOOD, {"question": "q?", "sub_questions": []}]))
    with pytest.raises(DataError, match=r"d.json, index 1: field \"sub_questions\""):
        load_records(path)


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="the file is empty"):
        load_records(write(tmp_path, "d.jsonl", "\n  \n"))


def test_non_utf8_file_names_line(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl(GOOD).encode() + jsonl(GOOD).encode("cp949"))
    with pytest.raises(DataError, match=r"d.jsonl, line 2: the file is not UTF-8"):
        load_records(path)


def test_json_that_is_not_a_list(tmp_path):
    with pytest.raises(DataError, match="must hold a list of records"):
        load_records(write(tmp_path, "d.json", json.dumps(GOOD)))


def test_non_strict_skips_and_reports_every_bad_record():
    result = load_records("data/examples/broken.jsonl", strict=False)
    assert len(result.records) == 3
    assert [s.where for s in result.skipped] == [f"line {n}" for n in (3, 5, 6, 7, 8)]
    assert "line 6" in result.report() and "empty list" in result.report()


def test_strict_error_counts_the_other_bad_records():
    with pytest.raises(DataError, match=r"line 3: .*\(4 more bad records in this file.\)"):
        load_records("data/examples/broken.jsonl")


def test_nfc_and_nfd_hangul_are_duplicates():
    nfd = dict(GOOD, question=unicodedata.normalize("NFD", GOOD["question"]))
    kept, dropped = dedup([GOOD, nfd, dict(GOOD, question="a와 b의 인구는")])
    assert len(kept) == 1 and dropped == 2


def test_split_is_deterministic_and_disjoint():
    records = [{"question": f"q{i}?", "sub_questions": ["a?"]} for i in range(100)]
    a = split_records(records, 0.2, seed=1)
    b = split_records(records, 0.2, seed=1)
    c = split_records(records, 0.2, seed=2)
    assert a == b and a != c
    assert len(a[1]) == 20 and not {r["question"] for r in a[0]} & {r["question"] for r in a[1]}


def test_language_detection():
    assert detect_language("서울과 부산 중 어디가 더 큰가?") == "ko"
    assert detect_language("Is Seoul bigger than Busan?") == "en"


def test_prompt_tokens_are_not_trained(tiny_tokenizer):
    ids = encode_example(GOOD, tiny_tokenizer)
    prompt_len = len(prompt_ids(GOOD["question"], tiny_tokenizer))
    assert all(label == IGNORE_INDEX for label in ids["labels"][:prompt_len])
    assert ids["labels"][-1] == tiny_tokenizer.eos_token_id


def test_exactly_the_sub_questions_and_eos_are_trained(tiny_tokenizer):
    ids = encode_example(GOOD, tiny_tokenizer)
    trained = [t for t in ids["labels"] if t != IGNORE_INDEX]
    answer = tiny_tokenizer(render_answer(GOOD["sub_questions"]), add_special_tokens=False)
    assert trained == answer["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert tiny_tokenizer.decode(trained[:-1]) == "1. A의 인구는?\n2. B의 인구는?"


def test_eos_is_trained_when_pad_equals_eos(tiny_cfg):
    from qdlib.model import load_tokenizer

    tok = load_tokenizer(tiny_cfg)
    tok.pad_token = tok.eos_token
    from transformers import DataCollatorForSeq2Seq

    rows = [encode_example(r, tok) for r in (GOOD, dict(GOOD, question="긴 질문 " * 5 + "?"))]
    batch = DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE_INDEX)(
        [{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows]
    )
    for row, labels in zip(rows, batch["labels"].tolist(), strict=True):
        assert labels.count(tok.eos_token_id) == 1  # the EOS after the answer, not the padding
        assert sum(1 for x in labels if x != IGNORE_INDEX) == row["n_trained"]


def test_korean_question_gets_korean_instruction(tiny_tokenizer):
    assert "하위 질문" in render_prompt(GOOD["question"], tiny_tokenizer)
    assert "sub-questions" in render_prompt("Which is older, A or B?", tiny_tokenizer)


def test_instruction_template_without_chat_template(tiny_cfg):
    from qdlib.model import load_tokenizer

    tok = load_tokenizer(tiny_cfg)
    tok.chat_template = None
    prompt = render_prompt("Which is older, A or B?", tok)
    assert prompt.startswith("Break the question") and prompt.endswith("Sub-questions:\n")
    ids = encode_example({"question": "Which is older, A or B?", "sub_questions": ["x?"]}, tok)
    assert ids["labels"][-1] == tok.eos_token_id


def test_truncation_is_counted(tiny_tokenizer):
    long = {"question": "q?", "sub_questions": ["a long sub-question about cities?"] * 10}
    out = tokenize_splits([GOOD, long], [GOOD], tiny_tokenizer, max_seq_length=120)
    assert out.truncated == {"train": 1, "eval": 0}


def test_example_with_nothing_to_train_is_refused_by_name(tiny_tokenizer):
    with pytest.raises(
        DataError, match=r"train example 0 \('A와 B의 인구는\?'\): the prompt alone"
    ):
        tokenize_splits([GOOD], [GOOD], tiny_tokenizer, max_seq_length=10)


def test_profile_language_overrides_detection_everywhere(tiny_tokenizer):
    from qdlib.config import load_config
    from qdlib.inference import generation_settings

    cfg = load_config("cpu_tiny", data={"language": "ko"})
    settings = generation_settings(cfg)
    assert settings["language"] == "ko"
    english = {"question": "Which is older, A or B?", "sub_questions": ["x?"]}
    ids = encode_example(english, tiny_tokenizer, language=cfg.data.language)["input_ids"]
    assert "하위 질문" in tiny_tokenizer.decode(ids)
    assert (
        prompt_ids(english["question"], tiny_tokenizer, settings["language"])
        == ids[: len(prompt_ids(english["question"], tiny_tokenizer, "ko"))]
    )


def test_the_instruction_is_the_system_turn_and_the_question_the_users(tiny_tokenizer):
    from qdlib.prompts import INSTRUCTIONS, prompt_messages

    assert prompt_messages("Which is older, A or B?") == [
        {"role": "system", "content": INSTRUCTIONS["en"]},
        {"role": "user", "content": "Which is older, A or B?"},
    ]
    prompt = render_prompt("Which is older, A or B?", tiny_tokenizer)
    assert prompt.startswith(f"<|im_start|>system\n{INSTRUCTIONS['en']}<|im_end|>\n")
    assert prompt.endswith("<|im_start|>user\nWhich is older, A or B?<|im_end|>\n"
                           "<|im_start|>assistant\n")  # fmt: skip


def test_a_chat_template_without_a_system_role_gets_one_user_turn(tiny_cfg):
    from qdlib.model import load_tokenizer

    tok = load_tokenizer(tiny_cfg)
    tok.chat_template = (  # Gemma-like: refuses a system turn
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<turn>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}<turn>model\n"
    )
    prompt = render_prompt("Which is older, A or B?", tok)
    assert prompt.startswith("<turn>user\nBreak the question") and prompt.count("<turn>") == 2
    assert prompt.endswith("Question: Which is older, A or B?\n<turn>model")


def test_data_languages_keeps_one_language_and_says_how_many_it_left_out():
    from qdlib.config import load_config
    from qdlib.splits import prepare_splits

    cfg = load_config("cpu_tiny", data={"languages": ["en"], "max_samples": 100})
    splits = prepare_splits(cfg)
    assert {detect_language(r["question"]) for r in splits.train + splits.eval} == {"en"}
    assert splits.other_languages == 1260 and splits.report()["other_languages_left_out"] == 1260
    assert "1260 in other languages left out" in str(splits)


@pytest.mark.parametrize(("value", "message"), [(["fr"], "'ko' or 'en'"), ([], "name a language")])
def test_data_languages_must_name_known_languages(value, message):
    from qdlib.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config("cpu_tiny", data={"languages": value})


def test_a_lone_surrogate_is_refused_with_its_place(tmp_path):
    """Half of an emoji pair passes as a Python string, and fails only when written (after a run
    directory was made): refused when the data is checked."""
    path = tmp_path / "half.jsonl"
    path.write_text('{"question": "Is \\ud83d older?", "sub_questions": ["How old?"]}\n', "utf-8")
    with pytest.raises(DataError, match=r"line 1.*lone surrogate \(U\+D83D\) at position 3"):
        load_records(path)


@pytest.mark.parametrize(
    "steps, words",
    [
        (["Who wrote #5?", "When?"], "item 0 refers to #5, and no step comes before it"),
        (["Who wrote Hamlet?", "When was #0 born?"], "item 1 refers to #0, and only #1 to #1"),
        (["Who wrote Hamlet?", "When was #2 born?"], "item 1 refers to #2"),  # itself
    ],
)
def test_a_step_may_refer_only_to_the_steps_before_it(tmp_path, steps, words):
    path = tmp_path / "refs.jsonl"
    path.write_text(json.dumps({"question": "Q?", "sub_questions": steps}) + "\n", "utf-8")
    with pytest.raises(DataError, match=words):
        load_records(path)
    good = {"question": "Q?", "sub_questions": ["Who wrote Hamlet?", "When was #1 born?"]}
    path.write_text(json.dumps(good) + "\n", "utf-8")
    assert load_records(path).records == [good]


def test_a_key_given_twice_in_a_record_is_refused_not_last_wins(tmp_path):
    line = '{"question": "Q?", "sub_questions": ["A?"], "question": "Other?"}'
    (tmp_path / "twice.jsonl").write_text(line + "\n", "utf-8")
    (tmp_path / "twice.json").write_text(f"[{line}]", "utf-8")
    with pytest.raises(DataError, match=r"line 1: the key 'question' is given twice"):
        load_records(tmp_path / "twice.jsonl")
    with pytest.raises(DataError, match=r"twice.json: the key 'question' is given twice"):
        load_records(tmp_path / "twice.json")


def test_tokenizer_costs_per_character_and_per_question(tiny_tokenizer):
    """Per question is what training pays: Korean questions are shorter, so a tokenizer that
    spends many tokens per Hangul character costs fewer times more per question."""
    from qdlib.datacheck import tokenizer_costs

    texts = {"en": ["Which is older, A or B?"], "ko": ["A와 B 중 더 오래된 것은?"]}
    table = tokenizer_costs({"tiny": tiny_tokenizer, "absent": "not on this machine"}, texts)
    head, _, tiny, absent = table.splitlines()
    assert "tokens per question (ko)" in head
    cells = [c.strip() for c in tiny.strip("|").split("|")]
    n = {lang: len(tiny_tokenizer(t[0], add_special_tokens=False)["input_ids"])
         for lang, t in texts.items()}  # fmt: skip
    assert [float(cells[3]), float(cells[4])] == [n["en"], n["ko"]]
    assert float(cells[2]) == round(n["ko"] / len(texts["ko"][0]), 2)
    assert absent.endswith("| - | - | - | - | not on this machine |")
