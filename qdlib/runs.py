"""Run directories: the only state passed between notebooks, and the pipeline behind ``qd run``.

A run directory holds ``config.yaml`` (the resolved profile), then what each lesson writes:
``data/`` (01), ``model.json`` (02), ``lora.json`` (03), ``checkpoints/`` and ``adapter/`` (04),
``eval/`` (05), ``export/`` (06), and, under ``qd run``, the executed notebooks in ``notebooks/``.
Every file is written atomically: to a temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qdlib.config import PROJECT_ROOT, Config

RUNS_ROOT = Path(os.environ.get("QDLIB_RUNS", PROJECT_ROOT / "runs"))
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
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


def naming_path(exc: OSError, path: Path) -> OSError:
    """The same kind of error, naming ``path``: a full disk (ENOSPC) names no file by itself."""
    if exc.errno is None:
        return OSError(f"{exc}: {str(path)!r}")
    named = OSError(exc.errno, exc.strerror or str(exc))  # PermissionError for EACCES, ...
    named.filename = str(path)
    return named


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    A failure (disk full, no permission, a file where a folder should be) names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise naming_path(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming_path(exc, path) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_dir(target: Path, write: Callable[[Path], Any]) -> Path:
    """Run ``write(tmp_dir)``, then rename ``tmp_dir`` to ``target``: never a half-written folder.

    A folder already at ``target`` is replaced only once the new one is complete. A failure
    names ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise naming_path(exc, target) from exc
    try:
        write(tmp)
        os.chmod(tmp, 0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise naming_path(exc, target) from exc
        raise
    return target


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


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


# ---------------------------------------------------------------- the papermill pipeline


def private_kernel() -> dict[str, Any]:
    """Keyword arguments for papermill / nbclient that encrypt the traffic with the notebook kernel.

    jupyter_client talks to a kernel over TCP on localhost, in plain text unless asked otherwise,
    and ipykernel 7 prints a warning about it for every notebook it runs. jupyter_client 8.10 can
    hand the kernel CurveZMQ keys when the kernel says it supports them (ipykernel 7 does): then
    the traffic is encrypted and there is nothing to warn about. Without that support (older
    packages, pyzmq without libsodium) nothing changes, and the kernel's warning stays true.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config as KernelSettings

    if not (KernelManager.class_traits().get("transport_encryption") and zmq.has("curve")):
        return {}
    return {"config": KernelSettings({"KernelManager": {"transport_encryption": "auto"}})}


def run_course(
    profile: str,
    run_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    lessons: tuple[str, ...] = LESSONS,
    progress: bool = True,
    resume: bool = False,
) -> Path:
    """Execute the lessons in order with papermill; executed notebooks go to ``run_dir/notebooks``.

    A failing notebook stops the run and is kept, with its error, for debugging. An existing run
    directory is never reused unless ``overwrite=True``, or ``resume=True``: then lesson 04
    continues from the run's newest complete checkpoint (its ``resume`` parameter).
    """
    import papermill as pm

    if resume and run_dir is None:
        raise RunDirError("--resume continues a run: name it with --run-dir.")
    run_dir = Path(run_dir) if run_dir else new_run_dir(Path(profile).stem)
    if not run_dir.is_absolute():
        run_dir = Path.cwd() / run_dir
    check_run_dir(run_dir, overwrite=overwrite, resume=resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"profile": str(profile), "run_dir": str(run_dir), **(overrides or {})}
    for i, lesson in enumerate(lessons, start=1):
        print(f"[{i}/{len(lessons)}] {lesson}", flush=True)
        out = run_dir / "notebooks" / f"{lesson}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        try:
            pm.execute_notebook(
                str(NOTEBOOK_DIR / f"{lesson}.ipynb"),
                str(out),
                parameters=params | ({"resume": True} if resume and lesson == "04_train" else {}),
                cwd=str(NOTEBOOK_DIR),
                progress_bar=progress,
                kernel_name="python3",
                **private_kernel(),
            )
        except pm.PapermillExecutionError as exc:
            raise RunDirError(
                f"{lesson} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                f"The executed notebook, with the error, is at {out}"
            ) from exc
        print(f"      done in {time.time() - started:.0f}s -> {out}", flush=True)
    return run_dir
