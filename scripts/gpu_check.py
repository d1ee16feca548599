"""Estimated vs measured GPU memory and speed for a profile, on a real NVIDIA GPU, capped at the
profile's card size.

    scripts/gpu_check.sh [--profile rtx4060] [--steps 6]

Builds the profile's model architecture with random weights (nothing is downloaded), saves it and
loads it through qdlib exactly as training does (4-bit for rtx4060), attaches the profile's LoRA
and trains ``--steps`` optimizer steps on full-length random sequences (the estimator's worst
case: every example ``data.max_seq_length`` tokens) with ``torch.cuda.set_per_process_memory_
fraction`` set to the card's memory (8 GiB for rtx4060). Records the estimate by part, the
measured peaks (``max_memory_allocated``, ``max_memory_reserved``, and the CUDA context seen by
the driver) and tokens/s in ``benchmarks/results/gpu_check_<profile>.{json,md}``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.files import atomic_write_json, atomic_write_text

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
GiB = 2**30


def random_model_dir(cfg: Any, out: Path) -> Path:
    """Save a random-weight model with the profile's architecture (built on the GPU: fast)."""
    from transformers import AutoModelForCausalLM

    from qdlib.memory import architecture, hf_config
    from qdlib.model import resolve_dtype

    config = hf_config(architecture(cfg))
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(cfg.model.dtype))
    model.save_pretrained(out, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    return out


def random_splits(n: int, seq: int, vocab: int) -> Any:
    """``n`` full-length random examples, every token trained (the estimator's worst case)."""
    from datasets import Dataset

    from qdlib.prompts import TokenizedSplits

    ids = torch.randint(0, vocab, (n, seq)).tolist()
    rows = {"input_ids": ids, "attention_mask": [[1] * seq] * n, "labels": ids}
    return TokenizedSplits(Dataset.from_dict(rows), None, {"train": 0, "eval": 0})


def measure(profile: str, steps: int) -> dict[str, Any]:
    from transformers import AutoConfig

    from qdlib.memory import CARDS_MIB, estimate
    from qdlib.model import load_tokenizer
    from qdlib.train import setup

    base_cfg = load_config(profile)
    card = CARDS_MIB.get(profile, 8192) * 2**20
    total = torch.cuda.get_device_properties(0).total_memory
    tokenizer = load_tokenizer(load_config("cpu_tiny"))  # ids only; the model is random anyway
    with tempfile.TemporaryDirectory() as tmp:
        path = random_model_dir(base_cfg, Path(tmp) / "model")
        t = base_cfg.training
        cfg = load_config(
            profile,
            model={"name": str(path)},
            training={"max_steps": steps, "eval_steps": None, "save_steps": 10_000,
                      "logging_steps": 1, "packing": False},
            evaluation={"generate_every": None},
        )  # fmt: skip
        torch.cuda.set_per_process_memory_fraction(min(1.0, card / total))
        free_before, _ = torch.cuda.mem_get_info()
        n = steps * t.batch_size * t.gradient_accumulation_steps
        seq = cfg.data.max_seq_length
        splits = random_splits(n, seq, min(AutoConfig.from_pretrained(path).vocab_size, 32000))
        trainer = setup(cfg, tokenizer, splits, Path(tmp) / "checkpoints")
        torch.cuda.reset_peak_memory_stats()
        result: dict[str, Any] = {"profile": profile, "steps": steps, "seq_len": seq,
                                  "batch": t.batch_size,
                                  "accumulation": t.gradient_accumulation_steps,
                                  "bf16": trainer.args.bf16,
                                  "fp16": trainer.args.fp16}  # fmt: skip
        start = time.perf_counter()
        try:
            trainer.train()
            result["oom"] = False
        except torch.cuda.OutOfMemoryError as exc:
            result.update(oom=True, error=str(exc).splitlines()[0])
        seconds = time.perf_counter() - start
        free_after, _ = torch.cuda.mem_get_info()
    e = estimate(base_cfg)
    allocated = torch.cuda.max_memory_allocated() / 2**20
    reserved = torch.cuda.max_memory_reserved() / 2**20
    result.update(
        gpu=torch.cuda.get_device_name(0), total_gib=total / GiB, card_gib=card / GiB,
        seconds=seconds, tokens_per_s=n * seq / seconds,
        measured_allocated_mib=allocated, measured_reserved_mib=reserved,
        driver_used_mib=(total - free_after) / 2**20,
        driver_used_before_mib=(total - free_before) / 2**20,
        estimated_parts_mib=e.parts, estimated_total_mib=e.total,
        estimated_without_context_mib=e.total - e.cuda_context - e.allocator,
        ratio_vs_allocated=(e.total - e.cuda_context - e.allocator) / allocated,
        ratio_total_vs_reserved_plus_context=e.total / (reserved + e.cuda_context),
        torch=torch.__version__, cuda=torch.version.cuda, machine=platform.node(),
    )  # fmt: skip
    return result


def precision(r: dict[str, Any]) -> str:
    """How the measured run computed: the Trainer's mixed precision, else float32."""
    return "bf16 mixed precision" if r["bf16"] else "fp16 mixed precision" if r["fp16"] else "fp32"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="rtx4060")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to torch (see `qd doctor`).", file=sys.stderr)
        return 2
    r = measure(args.profile, args.steps)
    rows = [
        "| quantity | MiB |",
        "|---|---|",
        f"| estimated (all parts) | {r['estimated_total_mib']:,.0f} |",
        f"| estimated without context and allocator | {r['estimated_without_context_mib']:,.0f} |",
        f"| measured max_memory_allocated | {r['measured_allocated_mib']:,.0f} |",
        f"| measured max_memory_reserved | {r['measured_reserved_mib']:,.0f} |",
        f"| driver: used at the end | {r['driver_used_mib']:,.0f} |",
        "",
        f"{r['gpu']}, capped at {r['card_gib']:.0f} GiB; {r['profile']}: batch {r['batch']} x "
        f"{r['seq_len']} tokens, {precision(r)}; {'OUT OF MEMORY' if r['oom'] else 'trained'}; "
        f"{r['tokens_per_s']:,.0f} tokens/s.",
    ]  # fmt: skip
    table = "\n".join(rows)
    print(table)
    atomic_write_json(RESULTS / f"gpu_check_{args.profile}.json", r)
    atomic_write_text(RESULTS / f"gpu_check_{args.profile}.md", table + "\n")
    return 1 if r["oom"] else 0


if __name__ == "__main__":
    sys.exit(main())
