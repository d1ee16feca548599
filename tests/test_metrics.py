"""Task metrics: SARI as the StrategyQA evaluator computes it, Korean-safe ROUGE-L and chrF,
and content recall (are the question's names in the steps?)."""

from __future__ import annotations

import pytest

from qdlib.metrics import (
    _ngrams,
    aggregate,
    chrf,
    common_terms,
    content_recall,
    references_valid,
    rouge_l,
    sari,
    sari_parts,
    sari_tokens,
    score_example,
    words,
)

QUESTION = "a b?"
GOLD = ["a c?"]


def test_sari_tokenization_splits_off_question_marks():
    assert sari_tokens("Is #2 before #1?") == ["Is", "#2", "before", "#1", "?"]


def test_sari_identity_is_one():
    gold = ["When did Aristotle live?", "When was the laptop invented?", "Is #2 before #1?"]
    assert sari("Did Aristotle use a laptop?", gold, gold) == pytest.approx(1.0, abs=1e-12)


def test_sari_hand_computed_substitution():
    # n=1: keep 1, add 0, delete 1; n=2,3: keep 1 (0/0), add 0, delete 1; n=4: all 1.
    parts = sari_parts(sari_tokens("a b?"), sari_tokens("a d?"), sari_tokens("a c?"))
    assert parts == pytest.approx({"sari": 0.75, "keep": 1.0, "add": 0.25, "delete": 1.0})


def test_sari_hand_computed_copy_the_question():
    # keep = (0.8 + 0 + 0 + 1) / 4, add = 1/4, delete = 1
    assert sari(QUESTION, GOLD, [QUESTION]) == pytest.approx((0.45 + 0.25 + 1.0) / 3, abs=1e-12)


def test_sari_hand_computed_empty_prediction():
    # keep = 3/4, add = 1/4, delete = (1/3 + 1 + 1 + 1) / 4
    expected = (0.75 + 0.25 + (1 / 3 + 3) / 4) / 3
    assert sari(QUESTION, GOLD, []) == pytest.approx(expected, abs=1e-12)
    assert sari(QUESTION, GOLD, None) == pytest.approx(expected, abs=1e-12)


def test_sari_hand_worked_keep_add_and_delete():
    """Source "x y z", reference "x y w", prediction "x w": x kept, w added, y and z deleted.

    n=1  S={x,y,z}  T={x,y,w}  P={x,w}
         keep   S&P={x} against S&T={x,y}: precision 1, recall 1/2, F1 2/3
         add    P-S={w} against T-S={w}: F1 1
         delete S-P={y,z}, of which S-T={z}: precision 1/2
    n=2  S={xy,yz}  T={xy,yw}  P={xw}
         keep   S&P={} against S&T={xy}: precision 0/0 = 1, recall 0, F1 0
         add    P-S={xw} against T-S={yw}: F1 0
         delete S-P={xy,yz}, of which S-T={yz}: 1/2
    n=3  S={xyz}  T={xyw}  P={}: keep 0/0 and 0/0 = 1; add recall 0/1, F1 0; delete 1/1
    n=4  nothing on any side: keep, add and delete 1
    keep (2/3 + 0 + 1 + 1) / 4 = 2/3, add (1 + 0 + 0 + 1) / 4 = 1/2,
    delete (1/2 + 1/2 + 1 + 1) / 4 = 3/4, SARI (2/3 + 1/2 + 3/4) / 3 = 23/36.
    """
    parts = sari_parts(["x", "y", "z"], ["x", "w"], ["x", "y", "w"])
    assert parts == pytest.approx({"sari": 23 / 36, "keep": 2 / 3, "add": 1 / 2, "delete": 3 / 4})


def test_sari_hand_worked_keeping_what_the_reference_deletes():
    """Source "a b c d", reference "a b", prediction "a c": c kept wrongly, b deleted wrongly.

    n=1  S={a,b,c,d}  T={a,b}  P={a,c}
         keep   S&P={a,c} against S&T={a,b}: 1 right; precision 1/2, recall 1/2, F1 1/2
         add    nothing added, nothing to add: 0/0 and 0/0, F1 1
         delete S-P={b,d}, of which S-T={c,d}: precision 1/2
    n=2  S={ab,bc,cd}  T={ab}  P={ac}
         keep   S&P={} against S&T={ab}: F1 0
         add    P-S={ac}, T-S={}: precision 0, F1 0
         delete S-P={ab,bc,cd}, of which S-T={bc,cd}: 2/3
    n=3, n=4  T and P empty, S-P = S-T = S: keep 1, add 1, delete 1
    keep (1/2 + 0 + 1 + 1) / 4 = 5/8, add (1 + 0 + 1 + 1) / 4 = 3/4,
    delete (1/2 + 2/3 + 1 + 1) / 4 = 19/24, SARI (15/24 + 18/24 + 19/24) / 3 = 13/18.
    """
    parts = sari_parts(list("abcd"), ["a", "c"], ["a", "b"])
    assert parts == pytest.approx({"sari": 13 / 18, "keep": 5 / 8, "add": 3 / 4, "delete": 19 / 24})


def test_sari_takes_the_gold_as_reference_and_the_steps_as_prediction():
    """The first hand-worked example through sari(question, gold, pred); swapped, it is another
    score: the prediction and the reference are not interchangeable."""
    assert sari("x y z", ["x y w"], ["x w"]) == pytest.approx(23 / 36)
    assert sari("x y z", ["x w"], ["x y w"]) != pytest.approx(23 / 36)


def test_words_the_reference_lacks_cost_only_the_add_score():
    """Each n-gram with the extra word v is new to the source: only P-S grows."""
    before = sari_parts(["x", "y", "z"], ["x", "w"], ["x", "y", "w"])
    after = sari_parts(["x", "y", "z"], ["x", "w", "v"], ["x", "y", "w"])
    assert after["keep"] == before["keep"] and after["delete"] == before["delete"]
    assert after["add"] < before["add"]


def test_the_right_words_in_the_wrong_order_lose_only_their_bigram():
    """Source "a b", reference "c d", prediction "d c": every word is right, the order is not.

    n=1  P-S={c,d} = T-S: add 1; nothing kept or to keep (keep 1); S-P = S-T = {a,b}: delete 1
    n=2  P-S={dc} against T-S={cd}: add 0; keep 1; S-P = S-T = {ab}: delete 1
    n=3, n=4  nothing on any side: 1, 1, 1
    keep 1, add (1 + 0 + 1 + 1) / 4 = 3/4, delete 1, SARI (1 + 3/4 + 1) / 3 = 11/12.
    """
    assert sari_parts(["a", "b"], ["c", "d"], ["c", "d"])["sari"] == 1.0
    parts = sari_parts(["a", "b"], ["d", "c"], ["c", "d"])
    assert parts == pytest.approx({"sari": 11 / 12, "keep": 1.0, "add": 3 / 4, "delete": 1.0})


def test_sari_counts_each_ngram_once():
    assert _ngrams(["a", "a", "a"], 1) == {("a",): 1}
    assert _ngrams(["a", "a", "a"], 2) == {("a", "a"): 1}
    assert _ngrams(["a"], 2) == {}


def test_sari_steps_are_joined_with_spaces():
    assert sari(QUESTION, ["a", "c?"], ["a d?"]) == sari(QUESTION, ["a c?"], ["a", "d?"])


def test_references_point_backwards_only():
    assert references_valid(["Who wrote X?", "When was #1 born?", "Is #2 before 1900?"]) == 1.0
    assert references_valid(["When was #1 born?"]) == 0.0
    assert references_valid(["A?", "Is #3 true?", "B?"]) == 0.0
    assert references_valid(["A?", "Is #0 true?"]) == 0.0
    assert references_valid(None) == 0.0


def test_references_do_not_apply_where_the_gold_uses_none():
    """The teaching set has no #k: reporting 0 or 1 for it would say something untrue."""
    assert references_valid(["A?", "B?"], gold=["A?", "B?"]) is None
    assert references_valid(["A?", "Is #3 true?"], gold=["A?", "Is #1 true?"]) == 0.0
    assert score_example(["A?"], ["A?"], True, "Q?")["refs_valid"] is None


def test_word_tokens_keep_hangul():
    assert words("서울의 인구는 얼마인가?") == ["서울의", "인구는", "얼마인가"]


def test_rouge_l_works_on_korean():
    assert rouge_l("서울의 인구는 얼마인가?", "서울의 인구는 얼마인가?") == 1.0
    assert rouge_l("서울의 인구는 얼마인가?", "부산의 면적은?") == 0.0
    # LCS 2 of 3 reference words, 2 of 2 candidate words: P=1, R=2/3
    assert rouge_l("서울의 인구는 얼마인가?", "서울의 얼마인가") == pytest.approx(0.8)


def test_chrf_works_on_korean():
    assert chrf("서울의 인구는?", "서울의 인구는?") == 1.0
    assert chrf("서울의 인구는?", "도쿄 면적") == 0.0
    partial = chrf("서울의 인구는 얼마인가?", "서울의 인구는?")
    assert 0.3 < partial < 1.0


def test_chrf_ignores_whitespace():
    assert chrf("ab cd", "abcd") == 1.0


def test_score_example_has_every_metric():
    scores = score_example(["A?", "B?"], ["A?", "B?"], True, "A and B?")
    assert set(scores) == {
        "format_valid",
        "step_count_correct",
        "step_count_error",
        "exact_match",
        "sari",
        "rouge_l",
        "chrf",
        "refs_valid",
        "content_recall",
    }
    assert scores["exact_match"] == scores["rouge_l"] == scores["chrf"] == 1.0


# ---------------------------------------------------------------- content carried over


def test_a_wrong_name_scores_low_on_content_while_the_template_scores_high_on_sari():
    """The tiny model's answer to a teaching-set question: right shape, other people."""
    question = "안창호와 김소월의 출생 연도는 몇 년 차이인가?"
    last = "두 해의 차이는 몇 년인가?"
    gold = ["안창호는 몇 년에 태어났는가?", "김소월은 몇 년에 태어났는가?", last]
    tiny = ["이이는 몇 년에 태어났는가?", "신사임당은 몇 년에 태어났는가?", last]
    common = frozenset({"출생", "연도", "몇", "년", "차이인"})
    assert content_recall(question, gold, tiny, common) < 0.3
    assert sari(question, gold, tiny) > 0.5
    assert content_recall(question, gold, gold, common) == 1.0


def test_korean_particles_do_not_hide_a_carried_name():
    gold = ["안창호는 어느 나라에서 태어났는가?"]
    pred = ["안창호가 태어난 나라는 어디인가?"]
    assert content_recall("안창호의 고향 나라는?", gold, pred, frozenset({"나라", "고향"})) == 1.0


def test_english_names_and_numbers_count_as_content():
    q = "How many years apart were Galileo Galilei and Frida Kahlo born in 1564?"
    gold = ["When was Galileo Galilei born?", "When was Frida Kahlo born?", "1564?"]
    half = ["When was Galileo Galilei born?", "When was Marie Curie born?", "1564?"]
    common = common_terms([q, "How many years apart were A and B born?", "How many were born?"])
    assert content_recall(q, gold, half, common) == pytest.approx(3 / 5)


def test_common_terms_are_the_words_of_many_questions():
    questions = [f"What is the capital of country {i}?" for i in range(40)] + ["Who is Frida?"]
    common = common_terms(questions)
    assert {"what", "is", "capital", "country"} <= common and "frida" not in common


def test_content_recall_does_not_apply_without_content_and_is_zero_unparsed():
    template = frozenset({"what", "is", "it"})
    assert content_recall("What is it?", ["What is it?"], None, template) is None
    assert content_recall("Who is Frida?", ["Who is Frida?"], None, frozenset()) == 0.0


def test_a_score_that_does_not_apply_is_left_out_of_the_mean():
    agg = aggregate([{"content_recall": None}, {"content_recall": 0.5}, {"content_recall": 1.0}])
    assert agg["content_recall"] == 0.75 and agg["applies"] == {"content_recall": 2}
    assert aggregate([{"content_recall": None}])["content_recall"] is None


def test_the_template_with_other_names_keeps_sari_and_loses_content_recall():
    """What a small model learns first: the right template with other names. For each template
    and language of the teaching set, its first question answered with the next one's steps (as
    a model writes them), scored as qd eval scores, the training questions telling template words
    from names. SARI still gives most of the credit; content recall gives next to none."""
    from qdlib.config import PROJECT_ROOT
    from qdlib.data import load_records
    from qdlib.inference import Generation
    from qdlib.metrics import score, summarize
    from qdlib.prompts import render_answer

    teaching = load_records(PROJECT_ROOT / "data/teaching/decompose_teach.jsonl").records
    same_template: dict[tuple[str, str], list[dict]] = {}
    for r in teaching:
        same_template.setdefault((r["template"], r["lang"]), []).append(r)
    asked = [records[0] for records in same_template.values()]
    answered = [Generation(render_answer(records[1]["sub_questions"]), True, [])
                for records in same_template.values()]  # fmt: skip
    m = summarize(score(asked, answered, [r["question"] for r in teaching]))
    assert m["format_valid"] == m["step_count_correct"] == 1.0 and m["exact_match"] == 0.0
    assert m["sari"] > 0.6 and m["content_recall"] < 0.25


CHRF_PAIRS = [
    ("서울의 인구는 얼마인가?", "부산의 인구는 얼마인가?"),
    ("안창호는 몇 년에 태어났는가?", "이이는 몇 년에 태어났는가? 그리고 더"),
    ("영화 괴물을 연출한 감독은 누구인가?", "괴물 감독"),
    ("What is the population of Seoul?", "What is the population of Busan?"),
    ("In which country was Frida Kahlo born?", "Where was Frida Kahlo born?"),
    ("Is #2 before #1?", "Is the answer to step 2 before the answer to step 1?"),
    ("a", "b"),
]


@pytest.mark.parametrize(("reference", "candidate"), CHRF_PAIRS)
def test_chrf_equals_sacrebleus_sentence_chrf(reference, candidate):
    from sacrebleu.metrics import CHRF

    expected = CHRF().sentence_score(candidate, [reference]).score / 100
    assert chrf(reference, candidate) == pytest.approx(expected, abs=1e-9)
