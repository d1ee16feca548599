"""Lesson 03's experiment on the real model: LoRA ranks, DoRA and rsLoRA for one short budget.

    .venv/bin/python scripts/rank_experiment.py [--profile cpu_small] [--steps 24] [--questions 16]

Writes benchmarks/results/rank_experiment.{json,md,png}; notebook 03 shows them (and runs the
experiment itself when its ``rank_experiment`` parameter is true). 8.5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.experiments import plot_rank_experiment, rank_experiment, rank_table
from qdlib.files import atomic_write_json, atomic_write_text, save_figure

RESULTS = PROJECT_ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu_small")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--questions", type=int, default=16)
    args = parser.parse_args()
    started = time.perf_counter()
    results = rank_experiment(load_config(args.profile), args.steps, args.questions)
    meta = {
        "profile": args.profile, "steps": args.steps, "questions": args.questions,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "wall_seconds": round(time.perf_counter() - started),
    }  # fmt: skip
    atomic_write_json(RESULTS / "rank_experiment.json", {"meta": meta, "results": results})
    atomic_write_text(RESULTS / "rank_experiment.md", rank_table(results) + "\n")
    save_figure(RESULTS / "rank_experiment.png", plot_rank_experiment(results))
    print(rank_table(results))


if __name__ == "__main__":
    main()
