"""Run directories: atomic writes, clear errors for missing inputs, no silent reuse."""

from __future__ import annotations

import pytest

from qdlib.io import atomic_write_text
from qdlib.runs import RunDirError, open_run


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_missing_input_names_the_notebook_to_run(tmp_path, tiny_cfg):
    run = open_run(tmp_path / "r", tiny_cfg)
    with pytest.raises(RunDirError, match=r"Run notebooks/04_train.ipynb"):
        run.require("adapter/adapter_config.json")


def test_config_is_recorded_and_changes_are_reported(tmp_path, tiny_cfg, capsys):
    from qdlib.config import load_config

    open_run(tmp_path / "r", tiny_cfg)
    assert (tmp_path / "r/config.yaml").exists()
    open_run(tmp_path / "r", load_config("cpu_tiny", training={"epochs": 7}))
    assert f"training.epochs=7.0 (was {tiny_cfg.training.epochs})" in capsys.readouterr().out
