"""Shared fixtures: offline mode, the cpu_tiny profile and tokenizer, a short trained run."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from qdlib.config import Config, load_config
from qdlib.data import prepare_splits, tokenize_splits, write_jsonl
from qdlib.lora import attach_lora, lora_config
from qdlib.model import load_model, load_tokenizer
from qdlib.runs import open_run
from qdlib.train import build_trainer, save_adapter


@pytest.fixture(scope="session")
def tiny_cfg() -> Config:
    return load_config("cpu_tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_cfg):
    return load_tokenizer(tiny_cfg)


def short_run(tmp_path, **overrides):
    cfg = load_config("cpu_tiny", **overrides)
    splits = prepare_splits(cfg)
    tok = load_tokenizer(cfg)
    tokenized = tokenize_splits(splits.train[:400], splits.eval[:40], tok, cfg.data.max_seq_length)
    model = load_model(cfg)
    lora_cfg = lora_config(cfg, model)
    peft_model = attach_lora(model, lora_cfg, cfg.training.gradient_checkpointing, cfg.seed)
    trainer = build_trainer(
        peft_model, tok, tokenized, cfg, tmp_path / "checkpoints", eval_records=splits.eval
    )
    trainer.train()
    return cfg, tok, trainer, splits


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A run directory after 30 steps: config, eval split, adapter."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg, tok, trainer, splits = short_run(
        run_dir,
        training={"max_steps": 30, "eval_steps": None, "logging_steps": 5},
        evaluation={
            "generate_every": 15,
            "generate_samples": 4,
            "max_new_tokens": 16,
            "max_samples": 8,
        },
    )
    open_run(run_dir, cfg)
    write_jsonl(run_dir / "data/eval.jsonl", splits.eval)
    save_adapter(trainer.model, tok, run_dir / "adapter")
    return cfg, tok, trainer, run_dir
