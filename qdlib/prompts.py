"""Lesson 01: what the model sees of a record and what it learns to write.

The prompt is the instruction (the chat's system turn) and the question (the user's turn) in the
model's chat template; the answer is the numbered sub-questions and the end-of-sequence token.
Only the answer is trained (:func:`completion_only_labels`): the prompt's labels are -100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from qdlib.data import DataError, detect_language, step_count_histogram
from qdlib.figures import both, subplots

IGNORE_INDEX = -100  # the label the loss skips: prompt positions and padding

# The task, said once: the system turn of the chat (the question is the user's turn).
INSTRUCTIONS = {
    "en": (
        "Break the question into simple sub-questions. "
        "Write one sub-question per line, numbered 1., 2., 3., ..."
    ),
    "ko": (
        "질문을 단순한 하위 질문들로 나누세요. "
        "한 줄에 하나씩 1., 2., 3., ... 처럼 번호를 붙여 쓰세요."
    ),
}
QUESTION_LABELS = {"en": "Question: ", "ko": "질문: "}  # when the question shares a turn
ANSWER_HEADERS = {"en": "\n\nSub-questions:\n", "ko": "\n\n하위 질문:\n"}
BLOCK_BREAK = "\n\n"  # between the blocks of a plain-text prompt: where a base model's answer ends


def answer_end(tokenizer: Any) -> str | None:
    """Where an answer ends besides the EOS: a blank line for a model without a chat template.

    Its prompt is plain text in blocks (instruction, examples, question) separated by blank
    lines, so a base model that has finished its list starts the next block ("질문: ...")
    rather than writing an EOS it was never taught. An instruct model's turn ends with its EOS.
    """
    return None if getattr(tokenizer, "chat_template", None) else BLOCK_BREAK


def prompt_messages(question: str, language: str = "auto") -> list[dict[str, str]]:
    """The chat the model answers: the instruction as the system turn, the question as the user's.

    A system turn of our own also replaces the default one some chat templates add (SmolLM2's
    "You are a helpful AI assistant named SmolLM...", Qwen's "You are Qwen..."): tokens that
    would be paid for in every example and teach nothing.
    """
    lang = detect_language(question) if language == "auto" else language
    return [
        {"role": "system", "content": INSTRUCTIONS[lang]},
        {"role": "user", "content": question.strip()},
    ]


def render_prompt(
    question: str, tokenizer: Any, language: str = "auto", examples: Sequence[dict] = ()
) -> str:
    """The text the model sees before it answers.

    With a chat template: :func:`prompt_messages` and the assistant header (a template without a
    system role gets the instruction and the question in one user turn). Without a chat template
    (a base model): the instruction, the question, then a header after which the answer follows.
    ``examples``: worked examples (records) shown before the question, each a question and its
    answer in the trained format: the few-shot prompt (:mod:`qdlib.baselines`).
    """
    system, user = prompt_messages(question, language)
    lang = detect_language(question) if language == "auto" else language
    label, header = QUESTION_LABELS[lang], ANSWER_HEADERS[lang]
    if not getattr(tokenizer, "chat_template", None):
        shots = [f"{label}{ex['question'].strip()}{header}{render_answer(ex['sub_questions'])}"
                 for ex in examples]  # fmt: skip
        return BLOCK_BREAK.join([system["content"], *shots, f"{label}{user['content']}{header}"])
    turns = [turn for ex in examples for turn in (
        {"role": "user", "content": ex["question"].strip()},
        {"role": "assistant", "content": render_answer(ex["sub_questions"])},
    )] + [user]  # fmt: skip
    try:
        return tokenizer.apply_chat_template(
            [system, *turns], tokenize=False, add_generation_prompt=True
        )
    except TemplateError:  # e.g. "System role not supported": the instruction opens turn one
        opening = f"{system['content']}\n\n{'' if examples else label}{turns[0]['content']}"
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": opening}, *turns[1:]],
            tokenize=False, add_generation_prompt=True,
        )


def render_answer(sub_questions: list[str]) -> str:
    """The answer the model learns to write: ``1. ...`` one sub-question per line."""
    return "\n".join(f"{i}. {s.strip()}" for i, s in enumerate(sub_questions, start=1))


def prompt_ids(
    question: str, tokenizer: Any, language: str = "auto", examples: Sequence[dict] = ()
) -> list[int]:
    """Token ids of the prompt, exactly as generation will see them (``examples``: see
    :func:`render_prompt`)."""
    text = render_prompt(question, tokenizer, language, examples)
    # A chat template writes its own BOS; a plain instruction prompt gets the tokenizer's.
    special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def completion_only_labels(prompt_ids: list[int], answer_ids: list[int], eos_id: int) -> list[int]:
    """Labels for causal-LM training that train only the answer and its EOS.

    Prompt positions are -100 (ignored by the loss); the answer and the EOS keep their ids.
    """
    return [IGNORE_INDEX] * len(prompt_ids) + answer_ids + [eos_id]


def encode_example(
    record: dict[str, Any], tokenizer: Any, max_seq_length: int = 1024, language: str = "auto"
) -> dict[str, Any]:
    """Token ids, attention mask and completion-only labels for one record.

    The EOS is appended by id, so it is trained even when the tokenizer's pad token is the EOS
    (padding is masked by the collator's ``label_pad_token_id``, never by comparing to pad).
    Sequences longer than ``max_seq_length`` are cut on the right and marked ``truncated``.

    >>> from qdlib.config import load_config
    >>> from qdlib.model import load_tokenizer
    >>> tok = load_tokenizer(load_config("cpu_tiny"))
    >>> record = {"question": "Which is older, A or B?",
    ...           "sub_questions": ["How old is A?", "How old is B?"]}
    >>> example = encode_example(record, tok)
    >>> example["labels"].count(-100) == len(prompt_ids(record["question"], tok))  # the prompt
    True
    >>> tok.decode([t for t in example["labels"] if t != -100])  # what the model learns to write
    '1. How old is A?\\n2. How old is B?<|im_end|>'
    """
    p_ids = prompt_ids(record["question"], tokenizer, language)
    a_ids = tokenizer(render_answer(record["sub_questions"]), add_special_tokens=False)["input_ids"]
    input_ids = p_ids + a_ids + [tokenizer.eos_token_id]
    labels = completion_only_labels(p_ids, a_ids, tokenizer.eos_token_id)
    truncated = len(input_ids) > max_seq_length
    input_ids, labels = input_ids[:max_seq_length], labels[:max_seq_length]
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": labels,
        "truncated": truncated,
        "n_trained": sum(1 for x in labels if x != IGNORE_INDEX),
    }


@dataclass
class TokenizedSplits:
    """Training-ready ``datasets.Dataset`` objects plus what tokenization had to cut."""

    train: Any
    eval: Any
    truncated: dict[str, int]

    def report(self) -> str:
        parts = [
            f"{name}: {len(ds)} examples, {self.truncated[name]} truncated"
            for name, ds in (("train", self.train), ("eval", self.eval))
        ]
        return "; ".join(parts)


def tokenize_splits(
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    tokenizer: Any,
    max_seq_length: int,
    language: str = "auto",
) -> TokenizedSplits:
    """Encode both splits; refuse examples that would leave nothing to train."""
    import datasets  # here, not at the top: see qdlib.data.hub_dataset

    out, truncated = {}, {}
    for name, recs in (("train", train), ("eval", held_out)):
        rows = [encode_example(r, tokenizer, max_seq_length, language) for r in recs]
        for i, row in enumerate(rows):
            if row["n_trained"] == 0:
                raise DataError(
                    f"{name} example {i} ({recs[i]['question'][:60]!r}): the prompt alone fills "
                    f"max_seq_length={max_seq_length}, so no answer token is left to train. "
                    "Raise data.max_seq_length or shorten the question."
                )
        truncated[name] = sum(r["truncated"] for r in rows)
        cols = {k: [r[k] for r in rows] for k in ("input_ids", "attention_mask", "labels")}
        out[name] = datasets.Dataset.from_dict(cols)
    return TokenizedSplits(out["train"], out["eval"], truncated)


def plot_lengths(records: list[dict[str, Any]], tokenizer: Any | None = None) -> Any:
    """Histograms of sub-question counts and (with a tokenizer) token lengths."""
    n = 2 if tokenizer is not None else 1
    fig, axes = subplots(1, n, figsize=(5 * n, 3.2), squeeze=False)
    steps = step_count_histogram(records)
    axes[0][0].bar(list(steps), list(steps.values()), color="#4C72B0")
    axes[0][0].set(title=both("sub-questions per record", "레코드당 하위 질문 수"),
                   xlabel=both("steps", "단계 수", " · "), ylabel=both("records", "레코드", " · "))
    axes[0][0].set_xticks(list(steps))
    if tokenizer is not None:
        lengths = [len(encode_example(r, tokenizer)["input_ids"]) for r in records]
        axes[0][1].hist(lengths, bins=30, color="#55A868")
        axes[0][1].set(title=both("tokens per example (prompt + answer + EOS)",
                                  "예제당 토큰 수(프롬프트 + 답 + EOS)"),
                       xlabel=both("tokens", "토큰", " · "))  # fmt: skip
    fig.tight_layout()
    return fig

