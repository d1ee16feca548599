"""The memory estimator against measurement on this CPU, side by side in one run.

    .venv/bin/python benchmarks/memory_check.py [--layers 2]

For a random-weight model with the Qwen2.5-0.5B architecture (layers cut to ``--layers``) and the
rtx4060 profile's LoRA in float32, each case (batch, sequence length, gradient checkpointing)
trains three steps with AdamW in a fresh process and records:

- ``saved``: bytes autograd keeps for backward, measured with
  :func:`qdlib.memory.saved_activation_bytes`, against the modelled activations and the
  log-softmax copy of the logits;
- ``peak``: the process's peak resident memory during the steps minus its memory before them
  (large tensors are ``mmap``-ed so that freed memory really leaves), against the estimator's
  activations + logits + gradients + optimizer states.

Results go to ``benchmarks/results/memory_check.{json,md}``. The GPU side (CUDA context,
caching allocator) is measured by ``scripts/gpu_check.sh`` on a machine with an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from qdlib.config import PROJECT_ROOT
from qdlib.files import atomic_write_json, atomic_write_text

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
CASES = [(1, 256, False), (4, 256, False), (2, 512, False), (4, 256, True), (2, 512, True)]
MiB = 2**20


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    """Start the peak (``VmHWM``) again from the current resident memory (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")


def worker(batch: int, seq: int, checkpointing: bool, layers: int) -> dict[str, Any]:
    """Measure one case in this (fresh) process."""
    import torch
    from transformers import AutoModelForCausalLM

    from qdlib.config import load_config
    from qdlib.lora import attach_lora, lora_config
    from qdlib.memory import ARCHITECTURES, hf_config, saved_activation_bytes, training_bytes

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    a = replace(ARCHITECTURES["Qwen/Qwen2.5-0.5B-Instruct"], layers=layers)
    config = hf_config(a)
    cfg = load_config(
        "rtx4060",
        model={"dtype": "float32", "quantization": "none"},
        training={"gradient_checkpointing": checkpointing, "optimizer": "adamw_torch"},
    )
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config)
    model = attach_lora(base, lora_config(cfg, base), checkpointing, cfg.seed)
    model.train()
    ids = torch.randint(0, a.vocab, (batch, seq))
    saved = saved_activation_bytes(model, ids)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    before = rss_mib()
    reset_peak()
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = rss_mib("VmHWM") - before
    parts = training_bytes(cfg, a, seq, batch, 4)
    modelled_saved = parts["activations"] + batch * seq * a.vocab * 4
    dynamic = sum(parts[k] for k in ("activations", "logits", "gradients", "optimizer"))
    return {
        "batch": batch, "seq": seq, "gradient_checkpointing": checkpointing, "layers": layers,
        "saved_measured_mib": saved / MiB, "saved_estimated_mib": modelled_saved / MiB,
        "peak_measured_mib": peak, "peak_estimated_mib": dynamic / MiB,
        "saved_ratio": modelled_saved / saved, "peak_ratio": dynamic / MiB / peak,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        b, s, gc = args.worker
        print(json.dumps(worker(int(b), int(s), gc == "1", args.layers)))
        return
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")  # big tensors: mmap, freed for real
    results = []
    for b, s, gc in CASES:
        cmd = [sys.executable, __file__, "--layers", str(args.layers),
               "--worker", str(b), str(s), str(int(gc))]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            sys.exit(f"case {(b, s, gc)} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    lines = [
        "| batch | seq | grad ckpt | saved measured MiB | saved estimated | ratio "
        "| peak measured MiB | peak estimated | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['batch']} | {r['seq']} | {r['gradient_checkpointing']} "
            f"| {r['saved_measured_mib']:.0f} | {r['saved_estimated_mib']:.0f} "
            f"| {r['saved_ratio']:.2f} | {r['peak_measured_mib']:.0f} "
            f"| {r['peak_estimated_mib']:.0f} | {r['peak_ratio']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    atomic_write_json(RESULTS / "memory_check.json", {"layers": args.layers, "results": results})
    atomic_write_text(RESULTS / "memory_check.md", table + "\n")


if __name__ == "__main__":
    main()
