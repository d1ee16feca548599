"""Lesson 03: where the LoRA adapters go, how big they are, and what share of the model trains.

LoRA freezes the base weights W and learns a low-rank update: W x + (alpha / r) * B A x, with
A (r x in) and B (out x r). Only A and B train, so a few percent of parameters or less learn,
and the saved adapter is megabytes instead of gigabytes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bitsandbytes as bnb
import torch
from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training
from transformers import set_seed

from qdlib.config import Config, ConfigError
from qdlib.files import atomic_dir
from qdlib.notices import quiet_hf


def linear_module_names(model: Any, include_output: bool = False) -> list[str]:
    """Short names of the linear layers in the transformer blocks (``q_proj``, ``down_proj``...).

    The output head (``lm_head``) is left out unless ``include_output``: in a pretrained model
    adapting it is rarely worth its size.
    """
    kinds = (torch.nn.Linear, bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    output = model.get_output_embeddings()
    names = Counter(
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, kinds) and (include_output or module is not output)
    )
    return sorted(names)


def lora_config(cfg: Config, model: Any) -> Any:
    """A ``peft.LoraConfig`` for causal-LM training, from the profile's ``lora`` section."""
    targets = cfg.lora.target_modules
    if targets == "all-linear":
        targets = linear_module_names(model)
    elif isinstance(targets, str):
        targets = [targets]
    available = linear_module_names(model, include_output=True)
    missing = sorted(set(targets) - set(available))
    if missing:
        raise ConfigError(
            f"{cfg.source}: lora.target_modules names {missing}, which this model does not have. "
            f"Its linear layers are: {available} (or use 'all-linear')."
        )
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        bias="none",
        use_rslora=cfg.lora.use_rslora,
        use_dora=cfg.lora.use_dora,
    )


def attach_lora(
    model: Any, lora_cfg: Any, gradient_checkpointing: bool = False, seed: int = 42
) -> Any:
    """Wrap the base model with trainable adapters (a 4/8-bit model is prepared first).

    ``seed`` fixes the random start of the A matrices, so the same profile trains the same way.
    """
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    elif gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        model.enable_input_require_grads()
    set_seed(seed)
    with quiet_hf():
        return get_peft_model(model, lora_cfg)


@dataclass
class TrainableReport:
    """How many parameters train, in total and per adapted layer kind."""

    trainable: int
    total: int
    per_module: dict[str, int]

    @property
    def share(self) -> float:
        return self.trainable / self.total

    def __str__(self) -> str:
        rows = "\n".join(f"  {k:<12} {v:>12,}" for k, v in self.per_module.items())
        return (
            f"trainable parameters: {self.trainable:,} of {self.total:,} "
            f"({100 * self.share:.2f}%)\n{rows}"
        )


def trainable_report(model: Any) -> TrainableReport:
    """Count trainable parameters overall and by target module (``q_proj``, ``v_proj``...)."""
    per_module: Counter[str] = Counter()
    trainable = total = 0
    for name, p in model.named_parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 else 1)  # 4-bit weights pack two per byte
        total += n
        if p.requires_grad:
            trainable += n
            parts = name.split(".")
            kind = next(
                (parts[i - 1] for i, s in enumerate(parts) if s.startswith("lora_")), "other"
            )
            per_module[kind] += n
    return TrainableReport(trainable, total, dict(sorted(per_module.items())))


def lora_parameter_count(model: Any, targets: list[str], r: int) -> int:
    """Trainable parameters LoRA adds: ``r * (in + out)`` for every targeted linear layer."""
    total = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and hasattr(module, "in_features"):
            total += r * (module.in_features + module.out_features)
    return total


def save_lora_config(lora_cfg: Any, folder: Path) -> Path:
    """``lora_cfg.save_pretrained(folder)`` (peft's ``adapter_config.json``), written whole: what
    lesson 04 reads back with ``LoraConfig.from_pretrained(folder)``."""
    return atomic_dir(folder, lora_cfg.save_pretrained)
