"""Run directories: atomic writes, clear errors for missing inputs, no silent reuse."""

from __future__ import annotations

import pytest

from qdlib.config import CHECKOUT
from qdlib.files import atomic_write_text
from qdlib.runs import RunDirError, default_run_dir, open_run, runs_root
from qdlib.weights import cache_dir


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


def test_runs_and_the_cache_go_under_qdlib_home(tmp_path, monkeypatch, tiny_cfg):
    for name in ("QDLIB_RUNS", "QDLIB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("QDLIB_HOME", raising=False)
    assert runs_root() == CHECKOUT / "runs" and cache_dir() == CHECKOUT / ".cache/qdlib"
    monkeypatch.setenv("QDLIB_HOME", str(tmp_path))
    assert default_run_dir(tiny_cfg) == tmp_path / "runs/cpu_tiny"
    assert cache_dir() == tmp_path / ".cache/qdlib"
    assert open_run("runs/mine", tiny_cfg).path == tmp_path / "runs/mine"


def test_qdlib_runs_and_qdlib_cache_move_one_each(tmp_path, monkeypatch):
    monkeypatch.setenv("QDLIB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QDLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "cache"))
    assert (runs_root(), cache_dir()) == (tmp_path / "runs", tmp_path / "cache")


def test_qd_run_without_the_notebooks_says_where_they_come_from(tmp_path, monkeypatch):
    """An installed qdlib has no notebooks: ``qd run`` is refused before anything is written."""
    from qdlib import course

    monkeypatch.setattr(course, "NOTEBOOK_DIR", tmp_path / "site-packages/qdlib/bundled/notebooks")
    with pytest.raises(RunDirError, match=r"come with a clone .* `qd train` does lessons 01"):
        course.run_course("cpu_tiny", tmp_path / "r")
    assert not (tmp_path / "r").exists()
