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


@pytest.fixture
def fake_model(monkeypatch):
    """``qd decompose`` with generation faked: each question gets ``1. A?``; records the loads."""
    from qdlib import inference
    from qdlib.inference import Generation

    loads = []

    def load_exported(path, trust_remote_code):
        loads.append(path)
        return None, None

    def generate(model, tokenizer, questions, progress=False, **settings):
        return [Generation("1. A?", True, [1]) for _ in questions]

    monkeypatch.setattr(inference, "load_exported", load_exported)
    monkeypatch.setattr(inference, "generate", generate)
    return loads


def test_qd_decompose_out_writes_one_result_per_line_and_never_replaces_unasked(
    tmp_path, fake_model, capsys
):
    import json

    out = tmp_path / "answers.jsonl"
    decompose = ["decompose", "--model", str(tmp_path), "--profile", "cpu_tiny", "--out", str(out)]
    assert main([*decompose, "Q1?", "Q2?"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["question"] for line in lines] == ["Q1?", "Q2?"]
    assert json.loads(lines[0])["sub_questions"] == ["A?"]
    assert "2 decompositions written to" in capsys.readouterr().out
    loaded = len(fake_model)
    assert main([*decompose, "Q3?"]) == 2  # there already: refused before the model is loaded
    assert "exists: choose another file, or add --overwrite" in capsys.readouterr().err
    assert len(fake_model) == loaded and len(out.read_text().splitlines()) == 2
    assert main([*decompose, "--overwrite", "Q3?"]) == 0
    assert [json.loads(x)["question"] for x in out.read_text().splitlines()] == ["Q3?"]
    as_json = tmp_path / "answers.json"
    assert main([*decompose[:-1], str(as_json), "Q4?"]) == 0
    assert json.loads(as_json.read_text())[0]["question"] == "Q4?"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("answers.txt", "use .jsonl (one result per line) or .json"),
        ("folder.jsonl", "not a regular file"),
        ("nowhere/answers.jsonl", "does not exist"),
    ],
)
def test_qd_decompose_out_is_checked_before_the_model_loads(tmp_path, fake_model, capsys, name,
                                                            says):  # fmt: skip
    (tmp_path / "folder.jsonl").mkdir()
    argv = ["decompose", "--model", str(tmp_path), "--out", str(tmp_path / name), "Q?"]
    assert main(argv) == 2
    assert says in capsys.readouterr().err and not fake_model


def test_qd_decompose_out_has_one_writer_and_a_failure_leaves_the_old_file(
    tmp_path, fake_model, capsys, monkeypatch
):
    from qdlib import inference
    from qdlib.runs import run_lock

    out = tmp_path / "answers.jsonl"
    out.write_text('{"question": "old"}\n', encoding="utf-8")
    argv = ["decompose", "--model", str(tmp_path), "--out", str(out), "--overwrite", "Q?"]
    (tmp_path / "x").mkdir()
    with run_lock(tmp_path / "x" / ".." / "answers.jsonl"):  # another spelling, the same lock
        assert main(argv) == 2
    assert "is being written by another qd command" in capsys.readouterr().err

    def fails(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(inference, "generate", fails)
    with pytest.raises(RuntimeError):
        main(argv)
    assert out.read_text(encoding="utf-8") == '{"question": "old"}\n'
