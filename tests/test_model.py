"""The offline tiny model: built deterministically, loaded like a hub model, in 4-bit too."""

from __future__ import annotations

import hashlib

import pytest
import torch

from qdlib.config import load_config
from qdlib.model import build_tiny_model, load_model, summarize_model


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
