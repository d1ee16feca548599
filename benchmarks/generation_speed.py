"""Batched vs one-at-a-time generation on the cpu_tiny profile, measured side by side in one run.

    .venv/bin/python benchmarks/generation_speed.py [--n 64] [--max-new-tokens 48] [--run-dir RUN]

Both ways decode the same questions greedily with the same model and settings, and must produce
the same tokens; the script prints examples/s for each and their ratio, and writes
``benchmarks/results/generation_speed_{untuned,tuned}.{json,md}``. With ``--run-dir``, the run's
tuned adapter is used (answers stop at their EOS); without it, the untuned tiny model (answers run
to the limit).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.files import atomic_write_json, atomic_write_text
from qdlib.inference import generate
from qdlib.model import load_model, load_tokenizer, load_with_adapter
from qdlib.splits import prepare_splits

RESULTS = PROJECT_ROOT / "benchmarks" / "results"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="questions to decode")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--run-dir", type=Path, help="use this run's adapter")
    args = parser.parse_args()

    cfg = load_config("cpu_tiny")
    tokenizer = load_tokenizer(cfg)
    model = load_with_adapter(cfg, args.run_dir / "adapter") if args.run_dir else load_model(cfg)
    questions = [r["question"] for r in prepare_splits(cfg).eval[: args.n]]
    batch = cfg.evaluation.batch_size
    settings = {"max_new_tokens": args.max_new_tokens, "progress": False}

    generate(model, tokenizer, questions[:2], batch_size=2, **settings)  # warm-up
    single, t_single = timed(
        lambda: generate(model, tokenizer, questions, batch_size=1, **settings)
    )
    batched, t_batched = timed(
        lambda: generate(model, tokenizer, questions, batch_size=batch, **settings)
    )
    same = sum(a.ids == b.ids for a, b in zip(single, batched, strict=True))
    result = {
        "model": "tiny + tuned adapter" if args.run_dir else "tiny, untuned",
        "questions": len(questions),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": batch,
        "one_at_a_time_examples_per_s": len(questions) / t_single,
        "batched_examples_per_s": len(questions) / t_batched,
        "ratio": t_single / t_batched,
        "identical_outputs": same,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    table = "\n".join(
        [
            "| way | examples/s | ratio |",
            "|---|---|---|",
            f"| one at a time | {len(questions) / t_single:.2f} | 1.00x |",
            f"| batched ({batch}) | {len(questions) / t_batched:.2f} | {result['ratio']:.2f}x |",
        ]
    )
    print(table)
    print(f"identical outputs: {same}/{len(questions)}")
    name = "generation_speed_" + ("tuned" if args.run_dir else "untuned")
    atomic_write_json(RESULTS / f"{name}.json", result)
    atomic_write_text(RESULTS / f"{name}.md", table + "\n")


if __name__ == "__main__":
    main()
