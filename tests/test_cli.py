"""`qd run`: bad settings fail before any notebook; a failing notebook stops the run, kept."""

from __future__ import annotations

import nbformat
import pytest

from qdlib.cli import main


def test_bad_override_fails_before_running(tmp_path, capsys):
    assert main(["run", "--run-dir", str(tmp_path / "r"), "-p", "lora.r", "0"]) == 2
    assert "qd: -p: lora.r must be an integer from 1 to 1024; got 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_existing_run_is_never_overwritten(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("precious", encoding="utf-8")
    assert main(["run", "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "config.yaml").read_text(encoding="utf-8") == "precious"


@pytest.mark.slow
def test_failing_notebook_stops_the_run_and_is_kept_with_its_error(tmp_path, capsys):
    """The data is fine (checked before anything runs), but every prompt is longer than
    max_seq_length: lesson 01 fails, the run stops there and keeps the notebook with its error."""
    run = tmp_path / "r"
    code = main(
        ["run", "--profile", "cpu_tiny", "--run-dir", str(run), "--only", "01_data_format",
         "02_model_load", "-p", "data.max_seq_length", "16"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "01_data_format failed" in err and "the prompt alone fills max_seq_length=16" in err
    executed = nbformat.read(run / "notebooks/01_data_format.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.output_type == "error" and o.ename == "DataError" for o in outputs)
    assert not (run / "notebooks/02_model_load.ipynb").exists()
    assert '"status": "failed"' in (run / ".qdlib-run.json").read_text(encoding="utf-8")


def test_qd_decompose_prompts_and_decodes_as_the_profile_says(tmp_path, monkeypatch, capsys):
    """Its instruction language and max_new_tokens (it used to ignore both, and cut at 128)."""
    from qdlib import inference
    from qdlib.inference import Generation

    seen = {}

    def fake_generate(model, tokenizer, questions, progress=False, **settings):
        seen.update(settings)
        return [Generation("1. A?", True, [1]) for _ in questions]

    monkeypatch.setattr(inference, "generate", fake_generate)
    monkeypatch.setattr(inference, "load_exported", lambda path, trust_remote_code: (None, None))
    profile = tmp_path / "ko.yaml"
    profile.write_text("profile: ko\ndata: {language: ko}\nevaluation: {max_new_tokens: 40}\n")
    assert main(["decompose", "--model", str(tmp_path), "--profile", str(profile), "Q?"]) == 0
    assert (seen["language"], seen["max_new_tokens"]) == ("ko", 40)
    assert main(["decompose", "--model", str(tmp_path), "--max-new-tokens", "12", "Q?"]) == 0
    assert seen["max_new_tokens"] == 12
    assert "1. A?" in capsys.readouterr().out
