"""Lesson 04: train the adapters with ``transformers.Trainer`` and save them.

Nothing here replaces the Trainer: we build its arguments from the profile, give it a collator
that wastes no compute on padding, and keep its log. Two ways, per profile (``training.packing``):

- dynamic padding: each batch is padded only to its longest example (labels padded with -100);
- padding-free packing: the batch's examples are concatenated into one row with ``position_ids``
  restarting at 0 for each; transformers turns that into a block-diagonal attention mask so that
  no example sees another. That detection happens only without an attention mask and without a
  KV cache, so training turns the cache off, and :func:`check_packing` proves isolation on the
  real model before the first step.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from qdlib.config import Config
from qdlib.data import IGNORE_INDEX, TokenizedSplits
from qdlib.runs import atomic_dir, atomic_write_json

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
        seed=cfg.seed,
        data_seed=cfg.seed,
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
    return worst


def check_packing(model: Any, examples: list[list[int]]) -> float:
    """Refuse to train packed if this model lets packed examples see each other.

    Runs :func:`packing_cross_talk` on a few real examples; the tolerance is relative to the
    logits' size (1e-4 in float32, 2e-2 in 16-bit). Returns the measured difference.
    """
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    device = next(model.parameters()).device
    with torch.no_grad():
        scale = model(input_ids=torch.tensor([examples[0]], device=device)).logits.abs().max()
    tol = (1e-4 if dtype == torch.float32 else 2e-2) * max(1.0, scale.item())
    worst = packing_cross_talk(model, examples)
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


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint folder under ``output_dir``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


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
