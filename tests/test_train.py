"""A short LoRA run on cpu_tiny: the loss falls, the adapter saves, reloads and generates."""

from __future__ import annotations

import pytest

from qdlib.config import load_config
from qdlib.data import prepare_splits, tokenize_splits
from qdlib.evaluate import generate
from qdlib.lora import attach_lora, lora_config, trainable_report
from qdlib.model import load_model, load_tokenizer, load_with_adapter
from qdlib.train import build_trainer, save_adapter

pytestmark = pytest.mark.slow


def short_run(tmp_path, **overrides):
    cfg = load_config("cpu_tiny", **overrides)
    splits = prepare_splits(cfg)
    tok = load_tokenizer(cfg)
    tokenized = tokenize_splits(splits.train[:400], splits.eval[:40], tok, cfg.data.max_seq_length)
    model = load_model(cfg)
    peft_model = attach_lora(model, lora_config(cfg, model), cfg.training.gradient_checkpointing)
    trainer = build_trainer(peft_model, tok, tokenized, cfg, tmp_path / "checkpoints")
    trainer.train()
    return cfg, tok, trainer


def test_short_lora_run_loss_falls_and_adapter_reloads(tmp_path):
    cfg, tok, trainer = short_run(
        tmp_path, training={"max_steps": 30, "eval_steps": None, "logging_steps": 5}
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.75 * losses[0]
    assert trainable_report(trainer.model).share < 0.5

    adapter = save_adapter(trainer.model, tok, tmp_path / "adapter")
    assert (adapter / "adapter_model.safetensors").exists()
    assert not list(adapter.glob("*.bin"))
    questions = ["서울과 부산 중 인구가 더 많은 도시는?"]
    before = generate(trainer.model, tok, questions, max_new_tokens=12, progress=False)
    after = generate(
        load_with_adapter(cfg, adapter), tok, questions, max_new_tokens=12, progress=False
    )
    assert before[0].ids == after[0].ids


def test_qlora_4bit_paged_8bit_adamw_trains_on_cpu(tmp_path):
    _, _, trainer = short_run(
        tmp_path,
        model={"quantization": "4bit"},
        training={
            "max_steps": 12,
            "optimizer": "paged_adamw_8bit",
            "eval_steps": None,
            "logging_steps": 3,
            "learning_rate": 3.0e-3,
        },
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.model.get_base_model().is_loaded_in_4bit
    assert losses[-1] < losses[0]
