"""Lesson 04: train the adapters with ``transformers.Trainer`` and save them.

Nothing here replaces the Trainer: we build its arguments from the profile, give it a collator
that wastes no compute on padding, and keep its log. Two ways, per profile (``training.packing``):

- dynamic padding: each batch is padded only to its longest example (labels padded with -100);
- padding-free packing: the batch's examples are concatenated into one row with ``position_ids``
  restarting at 0 for each; transformers turns that into a block-diagonal attention mask so that
  no example sees another. That detection happens only without an attention mask and without a
  KV cache, so training turns the cache off, and :func:`check_packing` proves isolation on the
  real model before the first step.

Either way the output layer runs only where the loss needs it (:class:`AnswerLogitsOnly`,
:func:`answer_loss`): at the answer's positions, not the prompt's or the padding's. For a model
with a big vocabulary (Gemma 3: 262,144 words) that layer is most of a step's cost.

:func:`setup` is the one wiring of model, adapters and Trainer that every way of training uses;
:func:`finish_training` saves what a run keeps; :func:`last_complete_checkpoint` finds where to
resume. ``qd train`` (:mod:`qdlib.course`) calls the same pieces without a notebook.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    DataCollatorForSeq2Seq,
    DataCollatorWithFlattening,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import sort_checkpoints

from qdlib.config import Config
from qdlib.figures import both, subplots
from qdlib.files import (
    atomic_dir,
    atomic_write_json,
    read_json,
    safetensors_problem,
    save_figure,
    zip_problem,
)
from qdlib.inference import generate, generation_settings
from qdlib.lora import attach_lora, lora_config
from qdlib.metrics import score, summarize
from qdlib.model import device, load_model, resolve_dtype
from qdlib.prompts import IGNORE_INDEX, TokenizedSplits
from qdlib.runs import RunDirError
from qdlib.weights import hub_id_of


def training_arguments(
    cfg: Config, output_dir: Path, model_dtype: torch.dtype | None = None
) -> Any:
    """``TrainingArguments`` from the profile's ``training`` section.

    ``model_dtype`` is the dtype the model computes in, ``resolve_dtype(cfg.model.dtype)`` when
    not given. Never read it off the parameters: for a 4/8-bit model, peft's
    ``prepare_model_for_kbit_training`` has cast every parameter that is not quantized to
    float32, while the quantized layers still compute in the profile's bf16 or fp16.
    """
    t, on_gpu = cfg.training, device() == "cuda"
    if model_dtype is None:
        model_dtype = resolve_dtype(cfg.model.dtype)
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
        train_sampling_strategy=sampling_strategy(cfg),
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


def sampling_strategy(cfg: Config) -> str:
    """How the Trainer draws examples: in length-grouped batches (``training.group_by_length``)
    or at random; ``sequential`` when a source finishes the run (``finish_fraction``), because
    :func:`finishing_order` has already put the examples in the order to train them."""
    if cfg.finish_steps():
        return "sequential"
    return "group_by_length" if cfg.training.group_by_length else "random"


def finishing_order(train: Any, cfg: Config) -> Any:
    """The training examples in the order they train when a source finishes the run
    (``data.sources[].finish_fraction``): the mix for every step but the last ones, then
    the finishing examples, which :func:`qdlib.splits.mix_train` put at the end. Each part is
    drawn as the Trainer would draw it (transformers' ``LengthGroupedSampler`` with
    ``training.group_by_length``, else a random permutation), seeded, so a resumed run takes the
    same order. Without a finishing source, ``train`` as it is (the Trainer draws)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    steps, per_step = cfg.finish_steps(), cfg.examples_per_step()
    if not steps:
        return train
    lengths = [len(ids) for ids in train["input_ids"]]
    start = len(train) - steps * per_step  # where the finishing examples begin
    if start <= 0:
        raise ValueError(f"{len(train)} training examples, all of them the last {steps} steps': "
                         "nothing is left for the mix before them")
    generator = torch.Generator().manual_seed(cfg.seed)

    def drawn(first: int, end: int) -> list[int]:
        if cfg.training.group_by_length:
            order = LengthGroupedSampler(per_step, lengths=lengths[first:end], generator=generator)
        else:
            order = torch.randperm(end - first, generator=generator).tolist()
        return [first + i for i in order]

    mixed, needed = [], (cfg.training.max_steps - steps) * per_step
    while len(mixed) < needed:  # a budget longer than the mix: another pass, in a new order
        mixed += drawn(0, start)
    return train.select(mixed[:needed] + drawn(start, len(train)))


def data_collator(tokenizer: Any, packing: bool) -> Any:
    """The batch builder: padding-free packing, or padding to the longest example in the batch."""
    if packing:
        # Labels of each example's first token become -100, so no example learns to predict the
        # start of the next one (ours are prompt tokens, masked anyway).
        return DataCollatorWithFlattening(separator_id=IGNORE_INDEX, return_tensors="pt")
    return DataCollatorForSeq2Seq(
        tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
    )


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions whose next token is trained in some row of the batch: the only places
    where the loss needs the model's logits (prompt and padding positions have label -100).

    >>> answer_positions(torch.tensor([[-100, -100, 5, 6, 1], [-100, 7, 1, -100, -100]]))
    tensor([0, 1, 2, 3])
    """
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


class AnswerLogitsOnly:
    """A collator wrapper: each batch also tells the model which positions need logits.

    The model's ``logits_to_keep`` argument takes those positions, so the output layer (hidden
    size x vocabulary per position) skips the prompt and the padding. :func:`answer_loss` then
    computes the loss from those logits; the number is the model's own loss (tests check it).
    """

    def __init__(self, collator: Any):
        self.collator = collator

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(features)
        batch["logits_to_keep"] = answer_positions(batch["labels"])
        return batch


def answer_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None
) -> torch.Tensor:
    """The causal-LM loss (each position predicts the next token's label) from logits kept at
    :func:`answer_positions`: the Trainer's ``compute_loss_func`` for :class:`AnswerLogitsOnly`.

    Summed over the trained tokens and divided by ``num_items_in_batch`` (the trained tokens of
    all the batches of one accumulated step, counted by the Trainer) or, without it, by this
    batch's: the model's own loss, computed on every position, gives the same number.
    """
    logits = outputs.logits.float()
    targets = labels[:, answer_positions(labels) + 1].to(logits.device)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum",
    )  # fmt: skip
    count = (targets != IGNORE_INDEX).sum() if num_items_in_batch is None else num_items_in_batch
    return loss / count


def packed_vs_alone(model: Any, examples: list[list[int]]) -> tuple[float, float]:
    """(largest logit difference between ``examples`` packed in one row and each run alone,
    largest packed logit), in eval mode. Zero (up to float error): packed examples cannot see
    each other."""
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


def check_packing(model: Any, examples: list[list[int]], dtype: torch.dtype | None = None) -> float:
    """Refuse to train packed if this model lets packed examples see each other.

    Runs :func:`packed_vs_alone` on a few real examples; the tolerance is relative to the
    logits' size (1e-4 in float32, 2e-2 in 16-bit). ``dtype`` is the dtype the model computes in
    (``resolve_dtype(cfg.model.dtype)``); without it, the parameters' dtype, which is right only
    for a model that is not quantized. Returns the measured difference.
    """
    if dtype is None:
        dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    worst, scale = packed_vs_alone(model, examples)
    tol = (1e-4 if dtype == torch.float32 else 2e-2) * max(1.0, scale)
    if worst > tol:
        raise ValueError(
            f"training.packing: packed examples see each other in {type(model).__name__} "
            f"(logits differ by {worst:.3g} > {tol:.3g}); set training.packing: false"
        )
    return worst


def setup(
    cfg: Config,
    tokenizer: Any,
    splits: TokenizedSplits,
    output_dir: Path,
    eval_records: list[dict[str, Any]] | None = None,
) -> Any:
    """The one wiring of a training run: the profile's model, its LoRA adapters, the ``Trainer``.

    ``qd train``, lesson 03's experiments, the tests' short runs and the GPU check all build here;
    lesson 04 builds the same objects by hand and checks them against :func:`build_trainer`.
    """
    model = load_model(cfg)
    model = attach_lora(model, lora_config(cfg, model), cfg.training.gradient_checkpointing,
                        cfg.seed)  # fmt: skip
    return build_trainer(model, tokenizer, splits, cfg, output_dir, eval_records)


def build_trainer(
    model: Any,
    tokenizer: Any,
    splits: TokenizedSplits,
    cfg: Config,
    output_dir: Path,
    eval_records: list[dict[str, Any]] | None = None,
) -> Any:
    """A ``Trainer`` for a model with adapters: it pads each batch to its longest example or packs
    it (``training.packing``), stops a resumed run that had finished (:class:`StopWhenFinished`)
    and, with ``evaluation.generate_every``, logs task metrics on ``eval_records``."""
    set_seed(cfg.seed)
    # A KV cache is for generation; built during training it would also switch off the packed
    # attention mask (generation turns it back on for itself).
    model.config.use_cache = False
    # The profile's dtype, not the parameters': a 4/8-bit model prepared for training has float32
    # parameters (peft upcasts them) and still computes in bf16 or fp16.
    dtype = resolve_dtype(cfg.model.dtype)
    if cfg.training.packing:
        check_packing(model, splits.train[:3]["input_ids"], dtype)
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, output_dir, dtype),
        train_dataset=finishing_order(splits.train, cfg),
        eval_dataset=splits.eval if cfg.training.eval_steps else None,
        data_collator=AnswerLogitsOnly(data_collator(tokenizer, cfg.training.packing)),
        compute_loss_func=answer_loss,  # logits at the answer only
        processing_class=tokenizer,
        callbacks=[StopWhenFinished()],
    )
    watch_generation(trainer, cfg, eval_records or [])
    return trainer


def trainer_facts(trainer: Any) -> dict[str, Any]:
    """What decides how a ``Trainer`` trains, comparable with ``==``: its arguments, the dtype
    the model computes in, the collator, the loss, the callbacks, the data sizes and the KV cache
    switch."""
    outer = trainer.data_collator
    collator = getattr(outer, "collator", outer)
    settings = ("padding", "label_pad_token_id", "separator_id", "return_position_ids")
    loss = trainer.compute_loss_func
    return {
        "args": trainer.args.to_dict(),
        "dtype": str(trainer.model.dtype),
        "collator": (
            type(outer).__name__,
            type(collator).__name__,
            {k: getattr(collator, k, None) for k in settings},
        ),
        "loss": getattr(loss, "__name__", None),
        "callbacks": sorted(type(c).__name__ for c in trainer.callback_handler.callbacks),
        "train examples": len(trainer.train_dataset),
        "eval examples": len(trainer.eval_dataset) if trainer.eval_dataset is not None else None,
        "use_cache": trainer.model.config.use_cache,
    }


def checkpoint_problem(folder: Path, world_size: int = 1) -> str | None:
    """Why a checkpoint folder cannot be resumed from (cut off mid-write), or None when complete.

    The Trainer writes the weights, optimizer, scheduler, each process's RNG state, and last
    ``trainer_state.json``, without syncing to disk: after a crash any of them can be missing or
    cut, or a bit may have flipped on disk: the safetensors header must cover the whole file and
    every zip member (what ``torch.save`` writes) must match its checksum. Nothing is unpickled.
    A checkpoint saved by another number of processes is an error, not a skip: skipping it would
    silently start over.
    """
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
        problem = safetensors_problem(folder / "adapter_model.safetensors")
        if problem:
            return problem
    return next((p for p in (zip_problem(folder / name) for name in names) if p), None)


def last_complete_checkpoint(
    output_dir: Path, world_size: int = 1, log: Callable[[str], Any] | None = print
) -> Path | None:
    """The newest checkpoint under ``output_dir`` that is complete, or None.

    The checkpoints are transformers' own list (``sort_checkpoints``, by step), newest first. A
    run killed while saving leaves a folder with missing or cut files; loading it would fail or,
    worse, resume from half a state. Such folders are skipped, and ``log`` says which and why.
    """
    found = sort_checkpoints(str(output_dir)) if Path(output_dir).is_dir() else []
    for folder in map(Path, reversed(found)):
        problem = checkpoint_problem(folder, world_size)
        if problem is None:
            return folder
        if log:
            log(f"skipping {folder}: {problem} (the run stopped while saving it)")
    return None


def name_hub_base(adapter_dir: Path) -> None:
    """Put the base model's hub id in ``adapter_config.json`` where peft wrote this machine's copy
    of it (a hub-cache snapshot, a converted GGUF): the adapter then loads anywhere, pushed to
    the hub too. A base that is only a local folder keeps its path."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = read_json(path)
    hub_id = hub_id_of(config.get("base_model_name_or_path") or "")
    if hub_id is not None:
        atomic_write_json(path, config | {"base_model_name_or_path": hub_id})


def save_adapter(model: Any, tokenizer: Any, path: Path) -> Path:
    """Save adapter weights (safetensors), ``adapter_config.json`` and the tokenizer, atomically."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        name_hub_base(tmp)

    return atomic_dir(path, write)


def plot_loss(log_history: list[dict[str, Any]]) -> Any:
    """Training loss (and eval loss when there is one) against the step."""
    fig, ax = subplots(figsize=(7, 3.6))
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train, strict=True), label=both("train loss", "학습 손실", " · "),
                color="#4C72B0")  # fmt: skip
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label=both("eval loss", "평가 손실", " · "),
                color="#C44E52")  # fmt: skip
    ax.set(xlabel=both("step", "스텝", " · "),
           ylabel=both("loss (answer tokens only)", "손실(답 토큰만)"),
           title=both("training loss", "학습 손실", " · "))  # fmt: skip
    handles, labels = ax.get_legend_handles_labels()
    gen = [
        (h["step"], h["gen_step_count_correct"], h["gen_format_valid"])
        for h in log_history
        if "gen_step_count_correct" in h
    ]
    if gen:
        ax2 = ax.twinx()
        steps, counts, formats = zip(*gen, strict=True)
        ax2.plot(steps, formats, "s--", color="#55A868",
                 label=both("format valid (generated)", "형식이 맞음(생성)", " · "))
        ax2.plot(steps, counts, "^--", color="#8172B2",
                 label=both("step count correct (generated)", "단계 수가 맞음(생성)", " · "))
        ax2.set(ylim=(0, 1.05), ylabel=both("share of sample", "표본 중 비율", " · "))
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- during training


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
        model = self.trainer.model
        questions = [r["question"] for r in self.records]
        gens = generate(model, self.trainer.processing_class, questions, progress=False, **self.gen)
        model.train()
        m = summarize(score(self.records, gens))
        keys = ("format_valid", "step_count_correct", "sari")
        self.trainer.log({f"gen_{k}": round(m[k], 4) for k in keys})


def watch_generation(trainer: Any, cfg: Any, eval_records: list[dict[str, Any]]) -> None:
    """With ``evaluation.generate_every: N``, log task metrics on ``evaluation.generate_samples``
    eval questions every N training steps (:class:`GenerationMetricsCallback`)."""
    ev = cfg.evaluation
    if ev.generate_every and eval_records:
        records = eval_records[: ev.generate_samples]
        gen = generation_settings(cfg)
        trainer.add_callback(GenerationMetricsCallback(trainer, records, ev.generate_every, **gen))



# ---------------------------------------------------------------- after training


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
            name_hub_base(tmp)

        atomic_dir(path, move)
        staging.rmdir()
    acc.wait_for_everyone()
    return path


def finish_training(trainer: Any, run_dir: Path, resumed_from: Path | None = None) -> Any:
    """After ``trainer.train()``: the adapter in ``adapter/``, and in ``train/`` the log
    (``log_history.json``), the loss curve (``loss.png``) and ``summary.json``, each written
    whole. Every process calls it (only the main one writes); returns the loss figure."""
    run_dir = Path(run_dir)
    save_trained_adapter(trainer, run_dir / "adapter")
    history = trainer.state.log_history
    fig = plot_loss(history)
    if trainer.accelerator.is_main_process:
        state = trainer.accelerator.state
        atomic_write_json(run_dir / "train/log_history.json", history)
        save_figure(run_dir / "train/loss.png", fig)
        summary = {
            "world_size": state.num_processes,
            "distributed_type": state.distributed_type.value,
            "global_step": trainer.state.global_step,
            "epoch": trainer.state.epoch,
            "resumed_from": resumed_from.name if resumed_from else None,
            "train_loss": next((h["train_loss"] for h in history[::-1] if "train_loss" in h), None),
        }
        atomic_write_json(run_dir / "train/summary.json", summary)
    return fig


def resume_point(
    output_dir: Path, world_size: int = 1, log: Callable[[str], Any] | None = print
) -> Path:
    """The checkpoint ``--resume`` continues from: the newest complete one, or a
    :class:`~qdlib.runs.RunDirError` that says why there is none (never a silent restart)."""
    skipped: list[str] = []
    checkpoint = last_complete_checkpoint(output_dir, world_size, skipped.append)
    for line in skipped if log else []:
        log(line)
    if checkpoint is None:
        why = "; ".join(skipped) or f"{output_dir} holds none"
        raise RunDirError(
            f"no complete checkpoint to resume from ({why}). Nothing was changed. Start the run "
            "again with --overwrite (the old one is kept until the new one is done)."
        )
    return checkpoint
