"""Lesson 06: export the adapter, merge it into the base model, and check the merge changes nothing.

A merge folds ``(alpha / r) * B A`` into each adapted weight, giving an ordinary model that loads
with plain ``transformers``. It is done on an unquantized (16/32-bit) copy of the base: merging
into 4-bit weights rounds the update away and loses quality.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdlib.config import Config
from qdlib.model import load_with_adapter


class MergeRefused(RuntimeError):
    """Merging into quantized weights: refused, with the way to do it instead."""


def _atomic_dir(target: Path, write: Any) -> Path:
    """Run ``write(tmp_dir)``, then rename ``tmp_dir`` to ``target``; leave no half folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_adapter(adapter_dir: Path, out_dir: Path) -> Path:
    """Copy the trained adapter (safetensors, ``adapter_config.json``, tokenizer) to ``out_dir``."""
    return _atomic_dir(out_dir, lambda tmp: shutil.copytree(adapter_dir, tmp, dirs_exist_ok=True))


def refuse_quantized(model: Any) -> None:
    """Raise :class:`MergeRefused` when ``model`` holds 4-bit or 8-bit weights."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise MergeRefused(
            "refusing to merge into a quantized (4/8-bit) model: the merged weights would be "
            "rounded and lose what training learned. Reload the base unquantized "
            "(merge_adapter does: load_model(cfg, quantized=False)), apply the adapter, "
            "merge, and quantize the merged model afterwards if you need to."
        )


def merge_adapter(cfg: Config, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge the adapter into an unquantized copy of the base and save it, with the tokenizer."""
    from transformers import AutoTokenizer

    model = load_with_adapter(cfg, adapter_dir, quantized=False)
    refuse_quantized(model.get_base_model())
    merged = model.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return _atomic_dir(out_dir, write)


@dataclass
class Parity:
    """How many greedy outputs are token-for-token identical between two models."""

    identical: int
    total: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.identical / self.total if self.total else 1.0

    def __str__(self) -> str:
        return f"{self.identical}/{self.total} identical greedy outputs ({100 * self.rate:.1f}%)"


def parity(questions: list[str], reference: list[Any], candidate: list[Any]) -> Parity:
    """Compare two lists of :class:`qdlib.evaluate.Generation` by token ids."""
    result = Parity(identical=0, total=len(questions))
    for q, a, b in zip(questions, reference, candidate, strict=True):
        if a.ids == b.ids:
            result.identical += 1
        else:
            result.mismatches.append({"question": q, "reference": a.text, "merged": b.text})
    return result
