"""Run directories: the only state passed between notebooks.

A run directory holds ``config.yaml`` (the resolved profile), then what each lesson writes:
``data/`` (01), ``model.json`` (02), ``lora.json`` (03), ``checkpoints/`` and ``adapter/`` (04),
``eval/`` (05), ``export/`` (06), and, under ``qd run``, the executed notebooks in ``notebooks/``.
Every file is written atomically (:mod:`qdlib.io`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qdlib.config import PROJECT_ROOT, Config, load_config
from qdlib.io import atomic_write_text

RUNS_ROOT = Path(os.environ.get("QDLIB_RUNS", PROJECT_ROOT / "runs"))
LESSONS = (
    "01_data_format",
    "02_model_load",
    "03_lora_config",
    "04_train",
    "05_evaluate",
    "06_export",
)
# What each lesson needs from the run directory, and which lesson writes it.
PRODUCED_BY = {
    "data/train.jsonl": "01_data_format",
    "data/eval.jsonl": "01_data_format",
    "lora.json": "03_lora_config",
    "adapter/adapter_config.json": "04_train",
}


class RunDirError(RuntimeError):
    """A run directory that is missing what a step needs, or that would be overwritten."""


@dataclass
class RunDir:
    """A run directory and the config it was made with."""

    path: Path
    cfg: Config

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel

    def require(self, rel: str) -> Path:
        """The path of something an earlier lesson wrote, or an error saying which lesson to run."""
        p = self.path / rel
        if not p.exists():
            lesson = PRODUCED_BY.get(rel, "the earlier notebooks")
            raise RunDirError(
                f"{p} is missing. Run notebooks/{lesson}.ipynb with run_dir={str(self.path)!r} "
                "first (or `qd run` for the whole course)."
            )
        return p

    def __str__(self) -> str:
        """The path, relative to the project when it lies inside it (shorter in notebooks)."""
        try:
            return str(self.path.relative_to(PROJECT_ROOT))
        except ValueError:
            return str(self.path)


def default_run_dir(cfg: Config) -> Path:
    """Where a notebook opened by hand works: ``runs/<profile>``, shared by lessons 01-06."""
    return RUNS_ROOT / cfg.profile


def new_run_dir(profile: str) -> Path:
    """A fresh, unused folder for ``qd run``: ``runs/<profile>-<date>-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RUNS_ROOT / f"{profile}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = RUNS_ROOT / f"{profile}-{stamp}-{n}"
    return path


def check_run_dir(path: Path, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse a folder that already holds a run, unless told to continue it or replace it.

    Reads only, so every process of a distributed run can check before any of them writes.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file, not a run directory. Choose another --run-dir.")
    if not (resume or overwrite) and path.exists() and any(path.iterdir()):
        raise RunDirError(
            f"{path} already holds a run. Choose another --run-dir, continue it with --resume, "
            "or replace it with --overwrite."
        )


def open_run(run_dir: str | Path | None, cfg: Config) -> RunDir:
    """Open (or create) a run directory and record the config in ``config.yaml``.

    When the folder already holds a different config, the notebook says which values differ:
    mixing a model trained with one config and evaluated with another is a common silent bug.
    """
    path = Path(run_dir) if run_dir else default_run_dir(cfg)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    recorded = path / "config.yaml"
    current = cfg.to_dict()
    if recorded.exists():
        before = yaml.safe_load(recorded.read_text(encoding="utf-8"))
        changed = _diff(before if isinstance(before, dict) else {}, current)
        if changed:
            print(f"note: {recorded} was written with other values; now: " + ", ".join(changed))
    atomic_write_text(recorded, cfg.to_yaml())
    return RunDir(path, cfg)


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}={vb!r} (was {va!r})")
    return out


def start_lesson(
    profile: str, run_dir: str | Path | None = None, **sections: Any
) -> tuple[Config, RunDir]:
    """What every notebook does after its ``parameters`` cell: the config and the run directory.

    ``sections`` are the parameters cell's ``seed``, ``data``, ``model``, ... (``None``: take the
    profile's value). Prints which profile and which run directory the lesson uses.
    """
    cfg = load_config(profile, **sections)
    run = open_run(run_dir, cfg)
    print(f"profile: {cfg.profile}, run directory: {run}")
    return cfg, run
