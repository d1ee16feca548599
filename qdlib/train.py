"""Lesson 04: train the adapters with ``transformers.Trainer`` and save them.

Nothing here replaces the Trainer: we build its arguments from the profile, give it a collator
that wastes no compute on padding, and keep its log. Two ways, per profile (``training.packing``):

- dynamic padding: each batch is padded only to its longest example (labels padded with -100);
- padding-free packing: the batch's examples are concatenated into one row with ``position_ids``
  restarting at 0 for each; transformers turns that into a block-diagonal attention mask so that
  no example sees another. That detection happens only without an attention mask and without a
  KV cache, so training turns the cache off, and :func:`check_packing` proves isolation on the
  real model before the first step.

:func:`train_run` is lessons 01 and 04 in one call (``qd train``), in one process or several
(``torchrun``, ``accelerate launch``); :func:`last_complete_checkpoint` finds where to resume.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from qdlib.config import Config
from qdlib.data import IGNORE_INDEX, TokenizedSplits
from qdlib.runs import RunDirError, atomic_dir, atomic_write_bytes, atomic_write_json

# When lm_head is a LoRA target (the tiny profile), peft notes at every save that it treats it as
# an embedding layer; the note says nothing a learner can act on.
warnings.filterwarnings("ignore", message="Setting `save_embedding_layers`")


def training_arguments(cfg: Config, output_dir: Path, model_dtype: torch.dtype) -> Any:
    """``TrainingArguments`` from the profile's ``training`` section."""
    from transformers import TrainingArguments

    t = cfg.training
    on_gpu = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a share of the total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optimizer,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if t.eval_steps else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        bf16=on_gpu and model_dtype == torch.bfloat16,
        fp16=on_gpu and model_dtype == torch.float16,
        use_cpu=not on_gpu,
        # Several CPU processes talk over gloo (accelerate would pick MPI where torch has it);
        # in one process a backend must stay unset.
        ddp_backend="gloo" if not on_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        seed=cfg.seed,
        data_seed=cfg.seed,  # the order of examples: the same again when a run resumes
        ddp_find_unused_parameters=False,  # every adapter is used in each forward pass
        report_to=[] if t.report_to == "none" else [t.report_to],
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
    )


def data_collator(tokenizer: Any, packing: bool) -> Any:
    """The batch builder: padding-free packing, or padding to the longest example in the batch."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packing:
        # Labels of each example's first token become -100, so no example learns to predict the
        # start of the next one (ours are prompt tokens, masked anyway).
        return DataCollatorWithFlattening(separator_id=IGNORE_INDEX, return_tensors="pt")
    return DataCollatorForSeq2Seq(
        tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
    )


def packing_cross_talk(model: Any, examples: list[list[int]]) -> float:
    """Largest logit difference between ``examples`` packed in one row and each run alone.

    Zero (up to float error) means packed examples cannot attend to each other.
    """
    return _packed_vs_alone(model, examples)[0]


def _packed_vs_alone(model: Any, examples: list[list[int]]) -> tuple[float, float]:
    """(largest packed-vs-alone logit difference, largest packed logit), in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    packed = torch.tensor([[t for ex in examples for t in ex]], device=device)
    positions = torch.tensor([[i for ex in examples for i in range(len(ex))]], device=device)
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions).logits[0].float()
        start, worst = 0, 0.0
        for ex in examples:
            alone = model(input_ids=torch.tensor([ex], device=device)).logits[0].float()
            diff = (together[start : start + len(ex)] - alone).abs().max().item()
            worst, start = max(worst, diff), start + len(ex)
    model.train(was_training)
    return worst, together.abs().max().item()


def check_packing(model: Any, examples: list[list[int]]) -> float:
    """Refuse to train packed if this model lets packed examples see each other.

    Runs :func:`packing_cross_talk` on a few real examples; the tolerance is relative to the
    logits' size (1e-4 in float32, 2e-2 in 16-bit). Returns the measured difference.
    """
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    worst, scale = _packed_vs_alone(model, examples)
    tol = (1e-4 if dtype == torch.float32 else 2e-2) * max(1.0, scale)
    if worst > tol:
        raise ValueError(
            f"training.packing: packed examples see each other in {type(model).__name__} "
            f"(logits differ by {worst:.3g} > {tol:.3g}); set training.packing: false"
        )
    return worst


def build_trainer(
    model: Any,
    tokenizer: Any,
    splits: TokenizedSplits,
    cfg: Config,
    output_dir: Path,
    eval_records: list[dict[str, Any]] | None = None,
) -> Any:
    """A ``Trainer`` that pads each batch to its longest example or packs it (``training.packing``).

    With ``evaluation.generate_every`` set and ``eval_records`` given, task metrics on
    ``evaluation.generate_samples`` of them are logged during training too.
    """
    from transformers import Trainer, set_seed

    from qdlib.evaluate import generation_settings

    set_seed(cfg.seed)
    # A KV cache is for generation; built during training it would also switch off the packed
    # attention mask (generation turns it back on for itself).
    model.config.use_cache = False
    if cfg.training.packing:
        check_packing(model, splits.train[:3]["input_ids"])
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, output_dir, dtype),
        train_dataset=splits.train,
        eval_dataset=splits.eval if cfg.training.eval_steps else None,
        data_collator=data_collator(tokenizer, cfg.training.packing),
        processing_class=tokenizer,
    )
    ev = cfg.evaluation
    if ev.generate_every and eval_records:
        trainer.add_callback(
            GenerationMetricsCallback(
                trainer,
                eval_records[: ev.generate_samples],
                ev.generate_every,
                **generation_settings(cfg),
            )
        )
    return trainer


def _torch_file_problem(path: Path) -> str | None:
    """Why a ``torch.save`` file is unusable: missing, or cut (its zip index comes last)."""
    try:
        zipfile.ZipFile(path).close()
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, zipfile.BadZipFile) as exc:
        return f"{path.name} is incomplete ({exc})"
    return None


def checkpoint_problem(folder: Path, world_size: int = 1) -> str | None:
    """Why a checkpoint folder cannot be resumed from (cut off mid-write), or None when complete.

    The Trainer writes the weights, optimizer, scheduler, each process's RNG state, and last
    ``trainer_state.json``, without syncing to disk: after a crash any of them can be missing or
    cut. Only headers and zip indexes are read here; nothing is unpickled. A checkpoint saved by
    another number of processes is an error, not a skip: skipping it would silently start over.
    """
    from safetensors import safe_open

    folder = Path(folder)
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "trainer_state.json is missing"
    except (OSError, ValueError) as exc:
        return f"trainer_state.json does not parse ({exc})"
    step = int(folder.name.rsplit("-", 1)[-1])
    if state.get("global_step") != step:
        return f"trainer_state.json is for step {state.get('global_step')}, not {step}"
    # one RNG state per process: rng_state.pth alone, or rng_state_0.pth, rng_state_1.pth, ...
    single = (folder / "rng_state.pth").exists()
    ranks = [p.stem.rsplit("_", 1)[-1] for p in folder.glob("rng_state_*.pth")]
    saved_by = 1 if single else max((int(r) for r in ranks if r.isdigit()), default=-1) + 1
    if saved_by and (single != (world_size == 1) or saved_by > world_size):
        raise RunDirError(
            f"{folder} was saved by {saved_by} process(es), and this run has {world_size}. "
            f"Resume with {saved_by} (torchrun --nproc_per_node / accelerate --num_processes): "
            "which examples each process trains on depends on it."
        )
    names = [f"rng_state_{i}.pth" for i in range(world_size)] if world_size > 1 else []
    names = names or ["rng_state.pth"]
    if not (list(folder.glob("pytorch_model_fsdp_*")) or (folder / "latest").exists()):
        # plain (DDP or one process); FSDP and DeepSpeed save weights and optimizer their own way
        names += ["optimizer.pt", "scheduler.pt"]
        weights = folder / "adapter_model.safetensors"
        try:
            with safe_open(str(weights), "pt") as f:
                f.keys()
        except FileNotFoundError:
            return f"{weights.name} is missing"
        except Exception as exc:  # safetensors raises its own error type for a cut header
            return f"{weights.name} is incomplete ({exc})"
    for name in names:
        problem = _torch_file_problem(folder / name)
        if problem:
            return problem
    return None


def last_complete_checkpoint(
    output_dir: Path, world_size: int = 1, report: Callable[[str], Any] | None = print
) -> Path | None:
    """The newest checkpoint under ``output_dir`` that is complete, or None.

    A run killed while saving leaves a folder with missing or cut files; loading it would fail or,
    worse, resume from half a state. Such folders are skipped, and ``report`` says which and why.
    """
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir()]
    folders = [p for p in folders if p.name.rsplit("-", 1)[-1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True):
        problem = checkpoint_problem(folder, world_size)
        if problem is None:
            return folder
        if report:
            report(f"skipping {folder}: {problem} (the run stopped while saving it)")
    return None


def save_adapter(model: Any, tokenizer: Any, path: Path) -> Path:
    """Save adapter weights (safetensors), ``adapter_config.json`` and the tokenizer, atomically."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return atomic_dir(path, write)


def save_log_history(log_history: list[dict[str, Any]], path: Path) -> None:
    atomic_write_json(path, log_history)


def plot_loss(log_history: list[dict[str, Any]]) -> Any:
    """Training loss (and eval loss when there is one) against the step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="#4C72B0")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", color="#C44E52")
    ax.set(xlabel="step", ylabel="loss (answer tokens only)", title="training loss")
    handles, labels = ax.get_legend_handles_labels()
    gen = [
        (h["step"], h["gen_step_count_correct"], h["gen_format_valid"])
        for h in log_history
        if "gen_step_count_correct" in h
    ]
    if gen:
        ax2 = ax.twinx()
        steps, counts, formats = zip(*gen, strict=True)
        ax2.plot(steps, formats, "s--", color="#55A868", label="format valid (generated)")
        ax2.plot(steps, counts, "^--", color="#8172B2", label="step count correct (generated)")
        ax2.set(ylim=(0, 1.05), ylabel="share of sample")
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


class GenerationMetricsCallback(TrainerCallback):
    """Every ``every`` steps, decode a few eval questions and log task metrics beside the loss.

    Eval loss can fall while the model still never stops or writes the wrong number of steps;
    these numbers (``gen_format_valid``, ``gen_step_count_correct``, ``gen_sari``) show it. They go
    wherever the Trainer logs: ``log_history``, TensorBoard or W&B.
    """

    def __init__(self, trainer: Any, records: list[dict[str, Any]], every: int, **gen: Any):
        self.trainer, self.records, self.every, self.gen = trainer, records, every, gen

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every:
            return
        from qdlib.evaluate import generate, score, summarize

        model = self.trainer.model
        questions = [r["question"] for r in self.records]
        gens = generate(model, self.trainer.processing_class, questions, progress=False, **self.gen)
        model.train()
        m = summarize(score(self.records, gens))
        keys = ("format_valid", "step_count_correct", "sari")
        self.trainer.log({f"gen_{k}": round(m[k], 4) for k in keys})


# ---------------------------------------------------------------- lessons 01 + 04 in one call


class NothingLeftToTrain(Exception):
    """Raised by :class:`StopWhenFinished`: the resumed run had already reached its last step."""


class StopWhenFinished(TrainerCallback):
    """Resuming a run that had already finished: stop before its first step.

    The Trainer checks the step limit only after a step, so it would train one step too many.
    """

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps > 0:
            raise NothingLeftToTrain(f"step {state.global_step} of {state.max_steps}")


def save_trained_adapter(trainer: Any, path: Path) -> Path:
    """Save the trained adapter and tokenizer from a Trainer; every process must call this.

    Under FSDP or DeepSpeed ZeRO-3 each process holds a piece of the weights and
    ``trainer.save_model`` gathers them; only the main process writes, into a temporary folder
    that replaces ``path`` once complete (a crash never leaves half an adapter).
    """
    path, acc = Path(path), trainer.accelerator
    staging = path.with_name(f".{path.name}.saving")
    if acc.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    acc.wait_for_everyone()
    if trainer.is_fsdp_enabled:  # checkpoints may be sharded; the adapter must be whole
        acc.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(staging))
    acc.wait_for_everyone()
    if acc.is_main_process:
        (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.yaml says it

        def move(tmp: Path) -> None:
            for f in staging.iterdir():
                os.replace(f, tmp / f.name)

        atomic_dir(path, move)
        staging.rmdir()
    acc.wait_for_everyone()
    return path


def prepare_run_data(
    cfg: Config, run_dir: Path, resume: bool, log: Callable[[str], Any]
) -> dict[str, Any] | None:
    """Lesson 01's part: ``config.yaml``, then the splits in ``data/``; returns their report
    (``train_run`` adds the truncation counts once it has tokenized them), or None when resuming:
    training continues on the data it started with.
    """
    from qdlib.data import prepare_splits, write_jsonl
    from qdlib.model import load_tokenizer
    from qdlib.runs import open_run

    run = open_run(run_dir, cfg)
    if resume and (run / "data/train.jsonl").exists():
        log("resuming: keeping the run's data splits")
        return None
    splits = prepare_splits(cfg)
    log(str(splits))
    load_tokenizer(cfg)  # builds the tiny model once, before other processes load it
    write_jsonl(run / "data/train.jsonl", splits.train)
    write_jsonl(run / "data/eval.jsonl", splits.eval)
    return splits.report()


def train_run(
    cfg: Config, run_dir: Path | None = None, resume: bool = False, overwrite: bool = False
) -> Path:
    """Lessons 01 and 04 without notebooks (``qd train``): splits, LoRA, Trainer, adapter.

    Started by ``torchrun`` or ``accelerate launch``, each process trains on its share of every
    batch (DDP keeps their weights identical); only the main process writes into the run
    directory, and the others wait for it. ``resume`` continues from the newest complete
    checkpoint. An existing run is never replaced unless ``overwrite``.
    """
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from qdlib.data import load_records, tokenize_splits
    from qdlib.lora import attach_lora, lora_config, save_lora_config
    from qdlib.model import load_model, load_tokenizer
    from qdlib.runs import RunDir, check_run_dir, new_run_dir

    state = PartialState(cpu=not torch.cuda.is_available())  # joins the launcher's processes
    rank, world, main = state.process_index, state.num_processes, state.is_main_process

    def log(msg: str) -> None:
        """Print, tagged with this process's rank when there are several."""
        line = f"[rank {rank}/{world}] {msg}\n" if world > 1 else f"{msg}\n"
        sys.stdout.write(line)  # one write: lines of several processes never interleave
        sys.stdout.flush()

    path = Path(run_dir).absolute() if run_dir else new_run_dir(cfg.profile)
    path = broadcast_object_list([path])[0]  # one folder for all, chosen by the main process
    check_run_dir(path, overwrite=overwrite, resume=resume)  # every process, before any write
    state.wait_for_everyone()
    run = RunDir(path, cfg)
    report = None  # the new splits' report, written once they are tokenized
    if main:
        how = f" ({state.distributed_type.value}, {state.backend})" if world > 1 else ""
        log(f"run directory {path}; training on {world} process(es){how}")
        if overwrite and not resume and (run / "checkpoints").exists():
            shutil.rmtree(run / "checkpoints")  # or a later --resume would continue the old run
            log("--overwrite: removed the earlier run's checkpoints")
        report = prepare_run_data(cfg, path, resume, log)
    state.wait_for_everyone()

    train_records = load_records(run.require("data/train.jsonl")).records
    eval_records = load_records(run.require("data/eval.jsonl")).records
    tokenizer = load_tokenizer(cfg)
    tokenized = tokenize_splits(
        train_records, eval_records, tokenizer, cfg.data.max_seq_length, cfg.data.language
    )
    if main and report is not None:
        atomic_write_json(run / "data/report.json", report | {"truncated": tokenized.truncated})
    model = load_model(cfg)
    lora_cfg = lora_config(cfg, model)
    model = attach_lora(model, lora_cfg, cfg.training.gradient_checkpointing, cfg.seed)
    trainer = build_trainer(model, tokenizer, tokenized, cfg, run / "checkpoints", eval_records)
    if main:
        save_lora_config(lora_cfg, run / "lora.json")
    checkpoint = None
    if resume:
        checkpoint = last_complete_checkpoint(run / "checkpoints", world, log if main else None)
        if main:
            log(f"resuming from {checkpoint}" if checkpoint else "no complete checkpoint: step 0")
    trainer.add_callback(StopWhenFinished())
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except NothingLeftToTrain as done:
        if main:
            log(f"nothing left to train: {checkpoint} is at {done}")
    step = trainer.state.global_step
    trained = [p.detach().double().sum().item() for p in model.parameters() if p.requires_grad]
    log(f"at step {step}; sum of adapter weights {sum(trained):.12g}")

    save_trained_adapter(trainer, run / "adapter")
    if main:
        history = trainer.state.log_history
        save_log_history(history, run / "train/log_history.json")
        png = io.BytesIO()
        plot_loss(history).savefig(png, format="png", dpi=120)
        atomic_write_bytes(run / "train/loss.png", png.getvalue())
        summary = {
            "world_size": world,
            "distributed_type": state.distributed_type.value,
            "global_step": step,
            "epoch": trainer.state.epoch,
            "resumed_from": checkpoint.name if checkpoint else None,
            "train_loss": next((h["train_loss"] for h in history[::-1] if "train_loss" in h), None),
        }
        atomic_write_json(run / "train/summary.json", summary)
        log(f"wrote {run / 'adapter'} and {run / 'train'}")
    state.wait_for_everyone()
    return path
