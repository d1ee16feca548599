"""Run directories: the only state passed between notebooks, and the contract that keeps them.

A run directory holds ``config.yaml`` (the resolved profile), then what each lesson writes:
``data/`` (01), ``model.json`` (02), ``lora/`` (03), ``checkpoints/`` and ``adapter/`` (04),
``eval/`` (05), ``export/`` (06), and, under ``qd run``, the executed notebooks in ``notebooks/``.

The contract (``qd run`` and ``qd train``; :func:`writing_run`):

1. Everything that can be checked (the config, the data, the model's source, the checkpoint to
   resume from, the settings that changed since) is checked before the run directory is
   created, changed or deleted. A refused command changes nothing.
2. One writer at a time: a second command on the same directory is refused, naming the first
   (:func:`run_lock`, beside the run on its real path; :func:`live_writer` for a status that
   another lock cannot show).
3. A run is never overwritten unless asked. ``--overwrite`` moves the old run aside, keeps it
   until the new one has finished, and puts it back if the new one fails.
4. ``--resume`` continues from the newest complete checkpoint (every file whole, checksums
   right), or refuses with the reason; it never restarts from step 0. Settings that cannot
   change mid-run (:data:`RESUMABLE` lists those that can) are refused.
5. A failed or interrupted attempt leaves its evidence and ``.qdlib-run.json`` says how it
   ended; the same command retried keeps that attempt beside the folder (``<name>.failed-1``)
   and starts again. Ctrl-C ends with one line that says what was kept and how to resume.
6. Every file is written whole (:mod:`qdlib.files`): reports (``eval/``) and exports as whole
   folders, into a temporary name that replaces the old one once complete.
7. An adapter is checked before generating or merging with it: its weights whole
   (:func:`qdlib.model.check_adapter`), and made for this base model
   (:func:`qdlib.model.adapter_mismatch`).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from qdlib.config import Config, load_config, qdlib_home
from qdlib.files import atomic_write_json, atomic_write_text, escaped, read_json, read_utf8

STATUS = ".qdlib-run.json"  # how the last qd run / qd train attempt on a run directory ended
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
    "lora": "03_lora_config",
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
        """The path, relative to qdlib's home when it lies inside it (shorter in notebooks)."""
        try:
            return str(self.path.relative_to(qdlib_home()))
        except ValueError:
            return str(self.path)


def existing_run(path: Path) -> Path:
    """A run directory that a command reads: it must exist and hold ``config.yaml``."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory.")
    if not (path / "config.yaml").is_file():
        raise RunDirError(f"{path}: not a run directory (no config.yaml); give a folder qd wrote.")
    return path


def runs_root() -> Path:
    """Where run directories go: ``QDLIB_RUNS`` when it is set, else ``runs/`` in
    :func:`qdlib.config.qdlib_home` (the checkout's; installed, the working directory's)."""
    return Path(os.environ.get("QDLIB_RUNS") or qdlib_home() / "runs")


def default_run_dir(cfg: Config) -> Path:
    """Where a notebook opened by hand works: ``runs/<profile>``, shared by lessons 01-06."""
    return runs_root() / cfg.profile


def new_run_dir(profile: str) -> Path:
    """A fresh, unused folder for ``qd run``: ``runs/<profile>-<date>-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = runs_root()
    path = root / f"{profile}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{profile}-{stamp}-{n}"
    return path


class RunInterrupted(RunDirError):
    """Ctrl-C: the message says what the run directory kept and how to continue."""


def run_status(path: Path) -> dict[str, Any] | None:
    """What ``qd run`` / ``qd train`` last recorded in a run directory (:data:`STATUS`)."""
    try:
        status = read_json(Path(path) / STATUS)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def live_writer(path: Path) -> str | None:
    """Who is writing ``path`` now, as its ``.qdlib-run.json`` says: a ``running`` attempt whose
    process is alive on this machine, or that runs on another one (which cannot be asked)."""
    status = run_status(path) or {}
    host, here = status.get("host") or socket.gethostname(), socket.gethostname()
    if status.get("status") != "running" or (host == here and not _alive(status.get("pid"))):
        return None
    pid, since = status.get("pid"), status.get("time")
    return f"{status.get('command')} (pid {pid} on {host}, since {since})"


def check_run_dir(path: Path, overwrite: bool = False, resume: bool = False) -> str:
    """What a writing command may do with ``path`` (reads only): ``"new"``, ``"resume"``,
    ``"replace"`` (``--overwrite``) or ``"retry"`` (the last attempt failed or was interrupted:
    it is kept beside the folder, then the run starts again); else a :class:`RunDirError`."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise RunDirError(f"{path} is a symbolic link to nothing ({os.readlink(path)}).")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file, not a run directory. Choose another --run-dir.")
    if writer := live_writer(path):  # another lock (another machine, an old qdlib): its status
        raise RunDirError(
            f"{path} is being written by {writer}. Wait for it to finish; if that process is "
            f"gone, delete {path / STATUS} and try again."
        )
    empty = not path.exists() or not any(path.iterdir())
    if resume:
        if empty or not (path / "config.yaml").is_file():
            raise RunDirError(f"{path}: no run to resume there (no config.yaml). Nothing changed.")
        for name in ("checkpoints", "data", "adapter", "train", "eval", "export"):
            if (path / name).exists() and not (path / name).is_dir():
                raise RunDirError(
                    f"{path / name} is a file where the run keeps a folder; move it away."
                )
        return "resume"
    if empty:
        return "new"
    if overwrite:
        return "replace"
    status = run_status(path) or {}
    stopped = status.get("status") == "running" and not _alive(status.get("pid"))
    if status.get("status") in ("failed", "interrupted") or stopped:
        return "retry"
    raise RunDirError(
        f"{path} already holds a run. Choose another --run-dir, continue it with --resume, "
        "or replace it with --overwrite (the old run is kept until the new one is done)."
    )


# Settings that may change when a run is resumed: how it logs and saves, what lessons 05-06 do.
# Any other change (the data, the model, LoRA, the optimizer, the schedule) would not apply to
# the restored state, or would mix two runs in one adapter: it is refused.
RESUMABLE = (
    "training.max_steps", "training.epochs",  # extending a run: the schedule follows the new end
    "training.logging_steps", "training.save_steps", "training.save_total_limit",
    "training.report_to", "training.eval_steps", "evaluation.", "export.", "data.strict",
)  # fmt: skip


# What the saved LoRA config (lesson 03's lora/adapter_config.json) calls each lora setting.
TRAINED_LORA = {"r": "r", "alpha": "lora_alpha", "dropout": "lora_dropout",
                "use_rslora": "use_rslora", "use_dora": "use_dora"}  # fmt: skip


def refuse_unresumable_changes(path: Path, cfg: Config) -> None:
    """With ``--resume``: refuse settings that differ from the run's ``config.yaml`` and cannot
    change mid-run (see :data:`RESUMABLE`), and LoRA settings that differ from the adapters the
    run trained (its ``lora/``: a hand-edited config.yaml is caught too), before anything is
    written."""
    recorded = Path(path) / "config.yaml"
    try:
        before = yaml.safe_load(read_utf8(recorded))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise RunDirError(f"{recorded}: unreadable ({exc}); the run cannot be resumed.") from None
    changed = _diff(before if isinstance(before, dict) else {}, cfg.to_dict())
    fixed = [c for c in changed if not c.startswith(RESUMABLE)]
    if fixed:
        raise RunDirError(
            f"{path}: --resume continues the run as it was set up, and these settings differ "
            f"from its config.yaml: {'; '.join(fixed)}. Nothing was changed. Use them in a new "
            "run (another --run-dir, or --overwrite)."
        )
    trained = {}
    for saved in ("lora", "adapter"):  # lesson 03's config, else the adapter qd train saved
        try:
            trained = read_json(Path(path) / saved / "adapter_config.json")
            break
        except (OSError, ValueError):
            continue
    trained = trained if isinstance(trained, dict) else {}
    lora = cfg.to_dict()["lora"]
    odd = [f"lora.{k}={lora[k]!r} (trained with {trained[v]!r})"
           for k, v in TRAINED_LORA.items() if v in trained and trained[v] != lora[k]]  # fmt: skip
    if odd:
        raise RunDirError(f"{path}: --resume continues the adapters the run trained, and these "
                          f"settings differ from them: {'; '.join(odd)}. Nothing was changed.")


def set_aside(path: Path, why: str) -> Path:
    """Move a run directory to ``<name>.<why>-<n>`` beside it (the first free n); return that."""
    n = 1
    while (aside := path.with_name(f"{path.name}.{why}-{n}")).exists():
        n += 1
    os.replace(path, aside)
    return aside


def write_status(path: Path, status: str, command: str, **more: Any) -> None:
    atomic_write_json(
        path / STATUS,
        {"status": status, "command": command, "pid": os.getpid(), "host": socket.gethostname(),
         "time": time.ctime(), **more},
    )


def lock_path(path: Path) -> Path:
    """The lock of a run directory: ``.<name>.lock`` beside it, after its real path, so that
    every spelling of the folder (``x/../run``, a symlink to it) finds the same lock."""
    real = Path(path).resolve()
    return real.parent / f".{real.name}.lock"


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Only one ``qd`` command writes a run directory at a time: a second is refused, naming the
    first (from ``.qdlib-run.json``). The lock is ``filelock``'s, on :func:`lock_path` (any
    operating system; the lock file is created 0600 and never opened through a symlink)."""
    where = lock_path(path)
    where.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(where, mode=0o600)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        holder = live_writer(path) or "another qd command"
        raise RunDirError(f"{path} is being written by {holder}. Wait for it to finish, or "
                          "write elsewhere.") from None  # fmt: skip
    except OSError as exc:  # a symlink planted at the lock's path, a read-only folder
        raise RunDirError(f"{path}: cannot take its lock {where} ({exc}).") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writing_run(
    path: Path, command: str, overwrite: bool = False, resume: bool = False
) -> Iterator[Path]:
    """The run-directory contract around a command that writes ``path`` (its inputs already
    checked): one writer at a time; a failed or interrupted attempt is kept beside the folder
    before a retry; ``--overwrite`` keeps the old run until the new one is finished, and puts it
    back if the new one fails; ``.qdlib-run.json`` says how the last attempt ended."""
    path = Path(path)
    with run_lock(path):
        action = check_run_dir(path, overwrite=overwrite, resume=resume)
        path = path.resolve()  # a linked run directory: its real folder is the run
        if action == "retry":
            kept = set_aside(path, "failed")
            print(escaped(f"{path}: the last attempt did not finish; kept at {kept}"))
        old = set_aside(path, "replaced") if action == "replace" else None
        path.mkdir(parents=True, exist_ok=True)
        write_status(path, "running", command)
        try:
            yield path
        except BaseException as exc:
            _ended_badly(path, command, exc, old)
            if isinstance(exc, KeyboardInterrupt):
                raise RunInterrupted(
                    f"interrupted: {path} keeps what was done so far (checkpoints included); "
                    f"continue with: {command} --resume --run-dir {path}"
                ) from None
            raise
        write_status(path, "finished", command)
        if old is not None:
            shutil.rmtree(old)


def _ended_badly(path: Path, command: str, exc: BaseException, old: Path | None) -> None:
    """Record how the attempt ended; with ``--overwrite``, the old run goes back in place."""
    how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    write_status(path, how, command, error=f"{type(exc).__name__}: {str(exc)[:500]}")
    if old is not None:
        kept = set_aside(path, how)
        os.replace(old, path)
        print(escaped(
            f"{path}: the new run {how}; the old run is back in place, the new one kept at {kept}"
        ))  # fmt: skip


def open_run(run_dir: str | Path | None, cfg: Config) -> RunDir:
    """Open (or create) a run directory and record the config in ``config.yaml``.

    When the folder already holds a different config, the notebook says which values differ:
    mixing a model trained with one config and evaluated with another is a common silent bug.
    A relative ``run_dir`` is taken from :func:`qdlib.config.qdlib_home` (the checkout), not
    from the notebook's working directory.
    """
    path = Path(run_dir) if run_dir else default_run_dir(cfg)
    if not path.is_absolute():
        path = qdlib_home() / path
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
    print(escaped(f"profile: {cfg.profile}, run directory: {run}"))
    return cfg, run
