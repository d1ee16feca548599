"""A short LoRA run on cpu_tiny: loss falls; the adapter saves, reloads, generates, scores."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import short_run

from qdlib.config import load_config
from qdlib.data import load_records
from qdlib.inference import generate, generation_settings
from qdlib.lora import attach_lora, lora_config, trainable_report
from qdlib.metrics import score, summarize
from qdlib.model import load_model, load_with_adapter, resolve_dtype

pytestmark = pytest.mark.slow


def test_short_lora_run_loss_falls(trained):
    _, _, trainer, _ = trained
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.75 * losses[0]
    assert trainable_report(trainer.model).share < 0.5


def test_generation_metrics_are_logged_during_training(trained):
    cfg, tok, trainer, run_dir = trained
    logged = [h for h in trainer.state.log_history if "gen_format_valid" in h]
    assert [h["step"] for h in logged] == [15, 30]
    # step 30 is the last: the logged scores are those of the trained model's greedy answers to
    # the first generate_samples eval questions
    records = load_records(run_dir / "data/eval.jsonl").records[: cfg.evaluation.generate_samples]
    questions = [r["question"] for r in records]
    gens = generate(trainer.model, tok, questions, progress=False, **generation_settings(cfg))
    m = summarize(score(records, gens))
    keys = ("format_valid", "step_count_correct", "sari")
    assert {k: logged[-1][f"gen_{k}"] for k in keys} == {k: round(m[k], 4) for k in keys}


def test_saved_adapter_is_safetensors_and_reloads_identically(trained):
    cfg, tok, trainer, run_dir = trained
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_model.safetensors").exists()
    assert not list(adapter.glob("*.bin"))
    questions = ["서울과 부산 중 인구가 더 많은 도시는?"]
    before = generate(trainer.model, tok, questions, max_new_tokens=12, progress=False)
    after = generate(
        load_with_adapter(cfg, adapter), tok, questions, max_new_tokens=12, progress=False
    )
    assert before[0].ids == after[0].ids


def test_qd_eval_writes_the_report(trained, capsys):
    from qdlib.cli import main

    _, _, _, run_dir = trained
    assert main(["eval", "--run-dir", str(run_dir)]) == 0
    assert "| sari |" in capsys.readouterr().out
    names = sorted(p.name for p in (run_dir / "eval").iterdir())
    assert names == [
        "metrics.json", "metrics.png", "predictions.jsonl", "report.md", "scorecard.png",
        "scorecard_predictions.jsonl",
    ]  # fmt: skip
    metrics = json.loads((run_dir / "eval/metrics.json").read_text(encoding="utf-8"))
    assert metrics["tuned"]["n"] == metrics["base"]["n"] == 8
    card = metrics["scorecard"]  # the run's held-out split by section, and the test file as real
    assert list(card) == ["in_template", "real"]
    assert card["real"]["n"] == 8 and "published" in card["real"]["systems"]
    assert "## Scorecard" in (run_dir / "eval/report.md").read_text(encoding="utf-8")
    lines = (run_dir / "eval/scorecard_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    real = [json.loads(line) for line in lines if json.loads(line)["section"] == "real"]
    assert len(real) == 8 and all("published" in line and "tuned" in line for line in real)


def test_qd_eval_on_a_file(trained):
    from qdlib.cli import main

    _, _, _, run_dir = trained
    assert (
        main(["eval", "--run-dir", str(run_dir), "--split", "data/examples/sample_train.jsonl"])
        == 0
    )
    assert (run_dir / "eval-splits/sample_train/report.md").exists()


def test_qlora_4bit_paged_8bit_adamw_trains_on_cpu(tmp_path):
    _, _, trainer, _ = short_run(
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


def test_a_4bit_model_under_a_bf16_profile_trains_in_bf16(tiny_tokenizer, tmp_path, monkeypatch):
    """peft casts a 4-bit model's other parameters to float32 for training; its layers still
    compute in the profile's bf16, and ``build_trainer`` must ask the Trainer for bf16, as
    notebook 04's hand-written ``TrainingArguments`` do."""
    from datasets import Dataset

    from qdlib import train
    from qdlib.prompts import TokenizedSplits

    cfg = load_config("cpu_tiny", model={"quantization": "4bit", "dtype": "bfloat16"})
    model = load_model(cfg)
    model = attach_lora(model, lora_config(cfg, model), seed=cfg.seed)
    # what reading the dtype off the parameters would say
    assert next(p.dtype for p in model.parameters() if p.is_floating_point()) == torch.float32
    # A GPU with native bf16, as far as qdlib asks. What build_trainer passes to TrainingArguments
    # and Trainer is recorded, not built: they would set up and move the model to that GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(train, "TrainingArguments", lambda **kwargs: SimpleNamespace(**kwargs))
    monkeypatch.setattr(train, "Trainer", lambda **kwargs: SimpleNamespace(**kwargs))
    rows = {"input_ids": [[5, 6, 7]], "attention_mask": [[1, 1, 1]], "labels": [[5, 6, 7]]}
    splits = TokenizedSplits(Dataset.from_dict(rows), None, {"train": 0, "eval": 0})
    trainer = train.build_trainer(model, tiny_tokenizer, splits, cfg, tmp_path)
    assert (trainer.args.bf16, trainer.args.fp16, trainer.args.use_cpu) == (True, False, False)
    notebook_04 = train.training_arguments(cfg, tmp_path, resolve_dtype(cfg.model.dtype))
    assert trainer.args == notebook_04
