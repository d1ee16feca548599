"""The offline tiny model: built deterministically, loaded like a hub model, in 4-bit too."""

from __future__ import annotations

import hashlib

import pytest
import torch

from qdlib.config import load_config
from qdlib.model import adapter_mismatch, build_tiny_model, load_model, summarize_model


def digest(folder):
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("model.safetensors", "tokenizer.json")
    }


def test_tiny_model_is_deterministic_from_its_seed(tmp_path, monkeypatch):
    cfg = load_config("cpu_tiny")
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "a"))
    first = digest(build_tiny_model(cfg))
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "b"))
    second = digest(build_tiny_model(cfg))
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "c"))
    other_seed = digest(build_tiny_model(load_config("cpu_tiny", seed=7)))
    assert first == second
    assert first["model.safetensors"] != other_seed["model.safetensors"]


def test_tiny_model_loads_through_from_pretrained(tiny_cfg, tiny_tokenizer):
    model = load_model(tiny_cfg)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size == len(tiny_tokenizer)
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    out = model(torch.tensor([tiny_tokenizer("서울과 부산")["input_ids"]]))
    assert out.logits.shape[-1] == len(tiny_tokenizer)


def test_tokenizer_round_trips_korean_and_english(tiny_tokenizer):
    for text in ("세종대왕은 언제 태어났는가?", "Who wrote Hamlet?", "émoji 🙂 and 漢字"):
        ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tiny_tokenizer.decode(ids) == text


def test_chat_template_ends_with_assistant_header(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tiny_tokenizer.eos_token == "<|im_end|>"


@pytest.mark.slow
def test_tiny_model_loads_in_4bit_on_cpu(tiny_cfg, tiny_tokenizer):
    import bitsandbytes as bnb

    cfg = load_config("cpu_tiny", model={"quantization": "4bit"})
    model = load_model(cfg)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    summary = summarize_model(model, tiny_tokenizer, cfg)
    full = summarize_model(load_model(tiny_cfg), tiny_tokenizer, tiny_cfg)
    assert summary.memory_mb < full.memory_mb
    logits = model(torch.tensor([tiny_tokenizer("Who wrote Hamlet?")["input_ids"]])).logits
    assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_an_adapter_fits_its_own_base_in_4bit_too(tiny_cfg, tmp_path):
    """The wrong-base check reads in/out features of the layers, which 4-bit layers keep: an
    adapter saved from the full-precision model fits the 4-bit one (a narrower model's adapter is
    refused in test_bad_inputs)."""
    from peft import get_peft_model

    from qdlib.lora import lora_config
    from qdlib.notices import quiet_hf

    with quiet_hf():
        model = load_model(tiny_cfg)
        get_peft_model(model, lora_config(tiny_cfg, model)).save_pretrained(tmp_path)
    four_bit = load_model(load_config("cpu_tiny", model={"quantization": "4bit"}))
    assert adapter_mismatch(four_bit, tmp_path) is None


def test_no_tiny_token_holds_parts_of_two_characters(tiny_tokenizer):
    """A token is whole characters or a piece of one: never the end of one and the start of the
    next (such tokens let a model write half a syllable, which decodes as U+FFFD)."""
    assert spanning_tokens(tiny_tokenizer) == []


def spanning_tokens(tokenizer) -> list[bytes]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    bad = []
    for token in tokenizer.get_vocab():
        if token in tokenizer.all_special_tokens:
            continue
        raw = bytes(to_byte[c] for c in token)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            leads = [i for i, b in enumerate(raw) if b >= 0xC0]
            piece = all(b >= 0x80 for b in raw) and leads in ([], [0])
            if not piece:
                bad.append(raw)
    return bad


def test_the_spanning_check_finds_a_token_across_two_syllables():
    """The control: plain byte-level BPE on the same kind of text merges across syllables."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(["서울과 부산 중 인구가 더 많은 도시는?"] * 50, trainer=trainer)
    assert spanning_tokens(PreTrainedTokenizerFast(tokenizer_object=tok))


def test_the_model_summary_says_where_the_weights_came_from(tiny_cfg, tiny_tokenizer):
    summary = summarize_model(load_model(tiny_cfg), tiny_tokenizer, tiny_cfg)
    assert summary.source == "tiny" and f"seed {tiny_cfg.seed}" in summary.source_detail
