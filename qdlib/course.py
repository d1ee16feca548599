"""The course without a notebook open: every lesson through papermill (``qd run``), or lessons 01
and 04 in one process (``qd train``, also under ``torchrun`` and ``accelerate launch``).

This module sits above the lessons: it calls them in order and owns no logic of its own beyond
the order, the run directory checks and, for ``qd train``, which process writes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import papermill as pm
import torch
import zmq
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from jupyter_client.manager import KernelManager
from traitlets.config import Config as KernelSettings

from qdlib.config import PROJECT_ROOT, Config, load_config
from qdlib.data import load_records
from qdlib.files import atomic_write_json, escaped, write_jsonl
from qdlib.lora import save_lora_config
from qdlib.model import load_tokenizer
from qdlib.prompts import tokenize_splits
from qdlib.runs import (
    LESSONS,
    RunDir,
    RunDirError,
    check_run_dir,
    new_run_dir,
    open_run,
    refuse_unresumable_changes,
    writing_run,
)
from qdlib.splits import prepare_splits
from qdlib.train import NothingLeftToTrain, finish_training, resume_point, setup
from qdlib.weights import check_model_source

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"  # the lessons: a checkout has them, a wheel does not


# ---------------------------------------------------------------- qd run: the notebooks


def private_kernel() -> dict[str, Any]:
    """Keyword arguments for papermill / nbclient that encrypt the traffic with the notebook kernel.

    jupyter_client talks to a kernel over TCP on localhost, in plain text unless asked otherwise,
    and ipykernel 7 prints a warning about it for every notebook it runs. jupyter_client 8.10 can
    hand the kernel CurveZMQ keys when the kernel says it supports them (ipykernel 7 does): then
    the traffic is encrypted and there is nothing to warn about. Without that support (older
    packages, pyzmq without libsodium) nothing changes, and the kernel's warning stays true.
    """
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
    if resume and run_dir is None:
        raise RunDirError("--resume continues a run: name it with --run-dir.")
    if not NOTEBOOK_DIR.is_dir():
        raise RunDirError(
            f"qd run executes the course notebooks, and this qdlib has none ({NOTEBOOK_DIR}): they "
            "come with a clone of the project (`make run` there). Installed from a wheel, "
            "`qd train` does lessons 01 and 04 without notebooks."
        )
    run_dir = Path(run_dir) if run_dir else new_run_dir(Path(profile).stem)
    if not run_dir.is_absolute():
        run_dir = Path.cwd() / run_dir
    cfg = load_config(profile, overrides_from="-p", **(overrides or {}))
    if resume and "04_train" in lessons:
        check_inputs(cfg, run_dir, resume=True)
    elif not resume:
        check_inputs(cfg, run_dir, resume=False)
    params = {"profile": str(profile), "run_dir": str(run_dir), **(overrides or {})}
    with writing_run(run_dir, "qd run", overwrite, resume):
        run_lessons(lessons, params, run_dir, resume, progress)
    return run_dir


def run_lessons(
    lessons: tuple[str, ...], params: dict[str, Any], run_dir: Path, resume: bool, progress: bool
) -> None:
    """Each lesson's notebook, executed by papermill into ``run_dir/notebooks``; the first that
    fails stops the run, and is kept with its error."""
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


# ---------------------------------------------------------------- qd train: lessons 01 + 04


def rank_logger(state: PartialState) -> Callable[[str], None]:
    """Print, tagged with this process's rank when there are several (one write per line, so
    lines of several processes never interleave)."""
    tag = f"[rank {state.process_index}/{state.num_processes}] " if state.num_processes > 1 else ""

    def log(msg: str) -> None:
        sys.stdout.write(f"{tag}{escaped(msg)}\n")  # paths from the user: shown, never obeyed
        sys.stdout.flush()

    return log


def prepare_run_data(
    cfg: Config, run_dir: Path, resume: bool, log: Callable[[str], Any]
) -> dict[str, Any] | None:
    """Lesson 01's part: ``config.yaml``, then the splits in ``data/``; returns their report
    (the truncation counts are added once they are tokenized), or None when resuming: training
    continues on the data it started with.
    """
    run = open_run(run_dir, cfg)
    if resume and (run / "data/train.jsonl").exists():
        log("resuming: keeping the run's data splits")
        return None
    splits = prepare_splits(cfg)
    log(str(splits))
    load_tokenizer(cfg)  # builds (or converts) the model once, before other processes load it
    write_jsonl(run / "data/train.jsonl", splits.train)
    write_jsonl(run / "data/eval.jsonl", splits.eval)
    return splits.report()


def run_trainer(cfg: Config, run: RunDir, data_report: dict[str, Any] | None, main: bool) -> Any:
    """Lesson 04's part: tokenize the run's splits, attach LoRA, build the Trainer. The main
    process writes ``data/report.json`` (with the truncation counts) and ``lora/``."""
    train_records = load_records(run.require("data/train.jsonl")).records
    eval_records = load_records(run.require("data/eval.jsonl")).records
    tokenizer = load_tokenizer(cfg)
    tokenized = tokenize_splits(
        train_records, eval_records, tokenizer, cfg.data.max_seq_length, cfg.data.language
    )
    if main and data_report is not None:
        truncated = {"truncated": tokenized.truncated}
        atomic_write_json(run / "data/report.json", data_report | truncated)
    trainer = setup(cfg, tokenizer, tokenized, run / "checkpoints", eval_records)
    if main:
        save_lora_config(trainer.model.peft_config["default"], run / "lora")
    return trainer


def check_inputs(
    cfg: Config,
    run_dir: Path,
    resume: bool,
    world: int = 1,
    log: Callable[[str], Any] | None = print,
) -> Path | None:
    """Everything that can be checked before a run directory is touched: the model's source;
    the data (a new run); with ``resume``, the settings that changed and the checkpoint to
    continue from, which is returned. Reads only: every process can call it."""
    check_model_source(cfg)
    if not resume:
        prepare_splits(cfg)  # the run makes them again; here only to refuse bad data early
        return None
    check_run_dir(run_dir, resume=True)  # a run is there to continue
    refuse_unresumable_changes(run_dir, cfg)
    return resume_point(run_dir / "checkpoints", world, log)  # says which it skips, and why


def train_run(
    cfg: Config, run_dir: Path | None = None, resume: bool = False, overwrite: bool = False
) -> Path:
    """Lessons 01 and 04 without notebooks (``qd train``): splits, LoRA, Trainer, adapter.

    Started by ``torchrun`` or ``accelerate launch``, each process trains on its share of every
    batch (DDP keeps their weights identical); only the main process writes into the run
    directory (under :func:`qdlib.runs.writing_run`), and the others wait for it. ``resume``
    continues from the newest complete checkpoint, or refuses. A run is replaced only with
    ``overwrite``, and only once the new one is finished.
    """
    state = PartialState(cpu=not torch.cuda.is_available())  # joins the launcher's processes
    main, world, log = state.is_main_process, state.num_processes, rank_logger(state)
    path = Path(run_dir).absolute() if run_dir else new_run_dir(cfg.profile)
    path = broadcast_object_list([path])[0]  # one folder for all, chosen by the main process
    checkpoint = check_inputs(cfg, path, resume, world, log if main else None)
    writing = writing_run(path, "qd train", overwrite, resume) if main else nullcontext()
    with writing:
        state.wait_for_everyone()
        data_report = None
        if main:
            how = f" ({state.distributed_type.value}, {state.backend})" if world > 1 else ""
            log(f"run directory {path}; training on {world} process(es){how}")
            data_report = prepare_run_data(cfg, path, resume, log)
            if checkpoint:
                log(f"resuming from {checkpoint}")
        state.wait_for_everyone()
        trainer = run_trainer(cfg, RunDir(path, cfg), data_report, main)
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except NothingLeftToTrain as done:
            if main:
                log(f"nothing left to train: {checkpoint} is at {done}")
        finish_training(trainer, path, resumed_from=checkpoint)
        if main:
            log(f"wrote {path / 'adapter'} and {path / 'train'}")
        state.wait_for_everyone()
    return path
