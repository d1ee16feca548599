"""Runs never lose data: an existing run is kept unless --overwrite, --resume reuses it on purpose,
and a failed write (full disk, a file in the way) names the path."""

from __future__ import annotations

import errno

import pytest
from test_resume import fake_checkpoint

from qdlib.cli import main
from qdlib.config import load_config
from qdlib.files import atomic_dir, atomic_write_json, atomic_write_text


def a_run(tmp_path):
    run = tmp_path / "r"
    (run / "checkpoints/checkpoint-99").mkdir(parents=True)
    (run / "config.yaml").write_text("precious", encoding="utf-8")
    return run


def test_qd_train_never_replaces_an_existing_run(tmp_path, capsys):
    run = a_run(tmp_path)
    assert main(["train", "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "config.yaml").read_text(encoding="utf-8") == "precious"
    assert (run / "checkpoints/checkpoint-99").is_dir()


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--run-dir", str(tmp_path), "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_qd_run_resume_needs_the_run_to_continue(capsys):
    assert main(["run", "--resume"]) == 2
    assert "--run-dir" in capsys.readouterr().err


def test_qd_run_resume_reuses_the_run_and_tells_lesson_04(tmp_path, monkeypatch):
    import papermill

    calls = {}

    def execute(source, out, parameters, **kwargs):
        calls[source.rsplit("/", 1)[-1]] = parameters

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    run = tmp_path / "r"
    fake_checkpoint(run / "checkpoints", 4)
    recorded = load_config("cpu_tiny").to_yaml()
    (run / "config.yaml").write_text(recorded, encoding="utf-8")
    argv = ["run", "--profile", "cpu_tiny", "--run-dir", str(run)]
    assert main([*argv, "--only", "03_lora_config", "04_train", "--resume"]) == 0
    assert calls["04_train.ipynb"]["resume"] is True
    assert "resume" not in calls["03_lora_config.ipynb"]  # only lesson 04 has the parameter
    assert (run / "config.yaml").read_text(encoding="utf-8") == recorded


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")  # names no file, like the real one


def test_a_full_disk_error_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "eval/metrics.json"
    atomic_write_json(target, {"old": 1})
    monkeypatch.setattr("os.replace", full_disk)
    with pytest.raises(OSError, match="No space left on device") as caught:
        atomic_write_json(target, {"new": 2})
    assert caught.value.errno == errno.ENOSPC
    assert str(target) in str(caught.value)
    assert target.read_text(encoding="utf-8") == '{\n  "old": 1\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_a_full_disk_while_saving_a_folder_names_the_folder(tmp_path):
    target = tmp_path / "adapter"
    with pytest.raises(OSError) as caught:
        atomic_dir(target, full_disk)
    assert str(target) in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no half-written temporary folder left behind


def test_a_file_in_the_way_names_the_path(tmp_path):
    (tmp_path / "runs").write_text("not a folder", encoding="utf-8")
    target = tmp_path / "runs/r1/config.yaml"
    with pytest.raises(NotADirectoryError) as caught:
        atomic_write_text(target, "profile: cpu_tiny\n")
    assert str(target) in str(caught.value)


def test_qd_train_reports_a_full_disk_with_the_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("os.replace", full_disk)
    assert main(["train", "--profile", "cpu_tiny", "--run-dir", str(tmp_path / "r")]) == 2
    assert f"No space left on device: '{tmp_path / 'r'}/" in capsys.readouterr().err


@pytest.mark.slow
def test_qd_train_overwrite_replaces_the_run_and_its_old_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = a_run(tmp_path)
    small = ["-p", "training.max_steps", "1", "-p", "data.max_samples", "40"]
    off = ["-p", "training.eval_steps", "null", "-p", "evaluation.generate_every", "null"]
    tiny = ["--profile", "cpu_tiny"]
    assert main(["train", "--run-dir", str(run), "--overwrite", *tiny, *small, *off]) == 0
    assert not (run / "checkpoints/checkpoint-99").exists()  # --resume must not find it later
    assert (run / "checkpoints/checkpoint-1").is_dir()
    assert (run / "adapter/adapter_model.safetensors").exists()
    assert "profile: cpu_tiny" in (run / "config.yaml").read_text(encoding="utf-8")
