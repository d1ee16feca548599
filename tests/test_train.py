"""A short LoRA run on cpu_tiny: loss falls; the adapter saves, reloads, generates, scores."""

from __future__ import annotations

import json

import pytest
from conftest import short_run

from qdlib.evaluate import generate
from qdlib.lora import trainable_report
from qdlib.model import load_with_adapter

pytestmark = pytest.mark.slow


def test_short_lora_run_loss_falls(trained):
    _, _, trainer, _ = trained
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.75 * losses[0]
    assert trainable_report(trainer.model).share < 0.5


def test_generation_metrics_are_logged_during_training(trained):
    _, _, trainer, _ = trained
    logged = [h for h in trainer.state.log_history if "gen_format_valid" in h]
    assert [h["step"] for h in logged] == [15, 30]
    assert all(0.0 <= h["gen_sari"] <= 1.0 for h in logged)


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
    assert names == ["metrics.json", "metrics.png", "predictions.jsonl", "report.md"]
    metrics = json.loads((run_dir / "eval/metrics.json").read_text(encoding="utf-8"))
    assert metrics["tuned"]["n"] == metrics["base"]["n"] == 8


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
