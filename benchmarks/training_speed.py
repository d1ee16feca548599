"""Training throughput, seven ways side by side in one run: the seed's pipeline, qdlib padded and
packed, TRL's SFTTrainer in the same two batch shapes and in its own packing, and a plain PyTorch
loop (the floor).

    .venv/bin/python benchmarks/training_speed.py [--n N] [--models tiny qwen2.5-0.5b smollm2-135m]

Every way trains the same LoRA adapters (the profile's, without ``lm_head``, which TRL refuses
to adapt) on the same model, on the same ``--n`` training examples (default 256 for tiny, 32 for
the Qwen architecture) for one epoch, on this CPU:

- ``seed``: the original project's pipeline: every example padded to 512 tokens, loss on the
  whole text (prompt included), pad = EOS masked by the collator, batch 4;
- ``padded``: qdlib, padding to the longest example in the batch, length-grouped, batch 4,
  loss on the answer and its EOS only;
- ``packed``: qdlib, padding-free packing (one row per batch, ``position_ids`` restarting), batch 4;
- ``trl_padded``: ``trl.SFTTrainer``, completion-only loss, the ``padded`` way's batch shape:
  4 examples per step, length-grouped, padded to the longest;
- ``trl_padding_free``: ``trl.SFTTrainer``, 4 examples per step flattened into one row
  (``padding_free``), the ``packed`` way's batch shape;
- ``trl_packed``: ``trl.SFTTrainer`` with its default packing (best-fit-decreasing, padding-free)
  into rows of 512 tokens, one row per step. In every TRL way its gradient checkpointing and mixed
  precision are off like ours; "vs TRL" compares with the fastest of the three, TRL at its best
  on this CPU;
- ``plain``: the ``padded`` way's very batches, in a hand-written loop (forward with the same
  ``logits_to_keep``, the same loss function, backward, AdamW step, the same schedule): the same
  arithmetic with no Trainer at all, so the floor for framework overhead.

Models: ``tiny`` (the cpu_tiny model and LoRA), ``qwen2.5-0.5b`` (the Qwen2.5-0.5B architecture:
its real vocabulary, hidden size and heads, random weights, layers cut to ``--layers``; the
rtx4060 profile's LoRA) and ``smollm2-135m`` (the real SmolLM2-135M-Instruct, with its own
tokenizer, the cpu_small profile's English data and LoRA; when it can be loaded). Each way runs in
its own process so that its peak RSS is its own. Results go to
``benchmarks/results/training_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.files import atomic_write_json, atomic_write_text

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
TRL_WAYS = ("trl_padded", "trl_padding_free", "trl_packed")
WAYS = ("seed", "padded", "packed", *TRL_WAYS, "plain")
REPEATED = ("padded", "packed", "plain")  # run --repeats times: their ratio is the measurement
# model -> profile whose LoRA it uses (and, for SmolLM2, whose data and tokenizer)
MODELS = {"tiny": "cpu_tiny", "qwen2.5-0.5b": "rtx4060", "smollm2-135m": "cpu_small"}
EXAMPLES = {"tiny": 256, "qwen2.5-0.5b": 32, "smollm2-135m": 64}  # per way: enough to time
SEED_MAX_LENGTH, BATCH = 512, 4


class CountingCollator:
    """Wraps a collator and counts what each batch holds: positions, padding, trained tokens."""

    def __init__(self, collator: Any):
        self.collator, self.positions, self.padding, self.trained = collator, 0, 0, 0
        self.calls: list[tuple[float, int]] = []  # (when, trained tokens so far) per batch

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append((time.perf_counter(), self.trained))
        batch = self.collator(features)
        self.positions += batch["input_ids"].numel()
        if "attention_mask" in batch:
            self.padding += int((batch["attention_mask"] == 0).sum())
        self.trained += int((batch["labels"] != -100).sum())
        return batch

    def steady_rate(self, end: float) -> float:
        """Trained tokens per second from the second batch on: the steps alone, without the
        one-time set-up before the first step (the Trainer's is a garbage collection and its
        callbacks) and the first step's warm-up, which a run of minutes does not notice."""
        start, before = self.calls[1]
        return (self.trained - before) / (end - start)


def build_model(name: str, layers: int) -> Any:
    """The tiny model, SmolLM2, or a random-weight model with the Qwen2.5-0.5B architecture."""
    from qdlib.model import load_model

    if name in ("tiny", "smollm2-135m"):
        return load_model(load_config(MODELS[name]))
    from transformers import AutoModelForCausalLM

    from qdlib.memory import ARCHITECTURES, hf_config

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(
        hf_config(ARCHITECTURES["Qwen/Qwen2.5-0.5B-Instruct"], layers)
    )


def seed_trainer(model: Any, tokenizer: Any, records: list[dict], cfg: Any, out: Path) -> Any:
    """The original pipeline: pad to 512, labels = the whole text with pad (= EOS) masked."""
    import datasets
    from transformers import DataCollatorForLanguageModeling, Trainer

    from qdlib.prompts import render_answer, render_prompt
    from qdlib.train import training_arguments

    tokenizer.pad_token = tokenizer.eos_token  # the seed's choice (and fault)
    texts = [render_prompt(r["question"], tokenizer) + render_answer(r["sub_questions"])
             for r in records]  # fmt: skip
    enc = tokenizer(texts, padding="max_length", max_length=SEED_MAX_LENGTH, truncation=True)
    dataset = datasets.Dataset.from_dict(dict(enc))
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    args = training_arguments(cfg, out, torch.float32)
    args.train_sampling_strategy = "random"
    return Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)


def trl_trainer(
    model: Any, tokenizer: Any, records: list[dict], cfg: Any, out: Path, way: str
) -> Any:
    """TRL's SFTTrainer on prompt/completion pairs, completion-only loss, in one of three batch
    shapes: ``trl_padded`` and ``trl_padding_free`` (4 examples a step, as qdlib's two ways) or
    ``trl_packed`` (its bfd packing into rows of 512 tokens, one row a step)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from qdlib.prompts import render_answer, render_prompt

    rows = [{"prompt": render_prompt(r["question"], tokenizer),
             "completion": render_answer(r["sub_questions"])} for r in records]  # fmt: skip
    t = cfg.training
    args = SFTConfig(
        output_dir=str(out), num_train_epochs=1,
        per_device_train_batch_size=1 if way == "trl_packed" else BATCH,
        train_sampling_strategy="group_by_length" if way == "trl_padded" else "random",
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, optim=t.optimizer,
        packing=way == "trl_packed", padding_free=way == "trl_padding_free",
        # padding-free without packing: TRL cuts nothing (no example here is near 512)
        max_length=None if way == "trl_padding_free" else SEED_MAX_LENGTH,
        completion_only_loss=True,
        gradient_checkpointing=False, bf16=False, fp16=False, use_cpu=True, seed=cfg.seed,
        save_strategy="no", report_to=[], logging_steps=t.logging_steps, disable_tqdm=True,
        dataloader_num_workers=0,
    )  # fmt: skip
    return SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                      processing_class=tokenizer)  # fmt: skip


def qdlib_trainer(model: Any, tokenizer: Any, records: list[dict], cfg: Any, out: Path) -> Any:
    """qdlib's own path: completion-only labels, then padded or packed batches per the profile."""
    from qdlib.prompts import tokenize_splits
    from qdlib.train import build_trainer

    splits = tokenize_splits(records, records[:1], tokenizer, SEED_MAX_LENGTH)
    return build_trainer(model, tokenizer, splits, cfg, out)


class PlainLoop:
    """The ``padded`` way's batches (same sampler, same collator) in a loop of our own."""

    def __init__(self, trainer: Any):
        self.trainer, self.data_collator, self.state = trainer, trainer.data_collator, trainer.state

    def train(self) -> None:
        from transformers import get_scheduler

        trainer, t = self.trainer, self.trainer.args
        trainer.data_collator = self.data_collator  # the counting wrapper, if one was set
        loader = trainer.get_train_dataloader()
        model = trainer.model
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
        steps = len(loader)
        schedule = get_scheduler(t.lr_scheduler_type, optimizer, int(t.warmup_steps * steps), steps)
        loss_of = trainer.compute_loss_func  # qdlib's answer_loss, on the answer's logits only
        model.train()
        for batch in loader:
            labels = batch.pop("labels")
            loss = loss_of(model(**batch), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            self.state.global_step += 1


def plain_loop(model: Any, tokenizer: Any, records: list[dict], cfg: Any, out: Path) -> Any:
    return PlainLoop(qdlib_trainer(model, tokenizer, records, cfg, out))


def worker(way: str, model_name: str, n: int, layers: int) -> dict[str, Any]:
    """Train one way in this process; return its measurements."""
    from qdlib.lora import attach_lora, lora_config
    from qdlib.model import load_tokenizer
    from qdlib.splits import prepare_splits

    base = load_config("cpu_small" if model_name == "smollm2-135m" else "cpu_tiny")
    records = prepare_splits(base).train[:n]
    tokenizer = load_tokenizer(base)
    lora = load_config(MODELS[model_name]).lora
    if isinstance(lora.target_modules, list):  # TRL refuses LoRA on lm_head: no way adapts it
        lora.target_modules = [t for t in lora.target_modules if t != "lm_head"]
    lora_profile = load_config(MODELS[model_name], lora=vars(lora))
    cfg = load_config(
        "cpu_tiny",
        data={"max_seq_length": SEED_MAX_LENGTH},
        training={
            "epochs": 1, "batch_size": BATCH, "packing": way == "packed",
            "group_by_length": way in ("padded", "plain"), "eval_steps": None, "logging_steps": 5,
            "save_steps": 10_000, "optimizer": "adamw_torch",
        },
        evaluation={"generate_every": None},
    )  # fmt: skip
    model = build_model(model_name, layers)
    model = attach_lora(model, lora_config(lora_profile, model), False, cfg.seed)
    build = {"seed": seed_trainer, "plain": plain_loop}.get(way, qdlib_trainer)
    with tempfile.TemporaryDirectory() as out:
        if way in TRL_WAYS:
            trainer = trl_trainer(model, tokenizer, records, cfg, Path(out), way)
        else:
            trainer = build(model, tokenizer, records, cfg, Path(out))
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        start = time.perf_counter()
        trainer.train()
        end = time.perf_counter()
        seconds = end - start
    return {
        "way": way, "model": model_name, "examples": len(records), "seconds": seconds,
        "steps": trainer.state.global_step,
        "examples_per_s": len(records) / seconds,
        "trained_tokens_per_s": counter.trained / seconds,
        "steady_tokens_per_s": counter.steady_rate(end),
        "positions_per_s": counter.positions / seconds,
        "padding_fraction": counter.padding / counter.positions,
        "trained_tokens": counter.trained, "positions": counter.positions,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def run_all(
    models: list[str], n: int | None, layers: int, repeats: int = 3
) -> list[dict[str, Any]]:
    """Each (model, way) in a fresh process. The ways whose ratio is the point (qdlib's two and
    the plain loop) run ``repeats`` times, interleaved (padded, packed, plain, padded, ...), and
    keep the median: one run of a few seconds moves by a third from process to process."""
    results = []
    for model_name in models:
        runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
        order = list(WAYS) + [w for _ in range(repeats - 1) for w in REPEATED]
        for way in order:
            cmd = [sys.executable, __file__, "--worker", way, "--model", model_name,
                   "--n", str(n or EXAMPLES[model_name]), "--layers", str(layers)]  # fmt: skip
            print(f"[{model_name}] {way} ...", flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"{model_name}/{way} failed:\n{done.stderr[-4000:]}")
            runs[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
        for way in WAYS:
            ranked = sorted(runs[way], key=lambda r: r["examples_per_s"])
            spread = [ranked[0]["examples_per_s"], ranked[-1]["examples_per_s"]]
            results.append(ranked[len(ranked) // 2] | {"runs": len(ranked), "spread": spread})
    for r in results:
        same = {x["way"]: x for x in results if x["model"] == r["model"]}
        r["vs_seed"] = r["examples_per_s"] / same["seed"]["examples_per_s"]
        r["vs_trl"] = r["examples_per_s"] / max(same[w]["examples_per_s"] for w in TRL_WAYS)
        r["vs_plain"] = r["examples_per_s"] / same["plain"]["examples_per_s"]
        r["steady_vs_plain"] = r["steady_tokens_per_s"] / same["plain"]["steady_tokens_per_s"]
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    """One table, all ways and models, ratios against the seed, TRL at its best and the plain
    loop."""
    lines = [
        "| model | way | runs | steps | examples/s (median; range) | trained tokens/s | padding "
        "| peak RSS MiB | vs seed | vs TRL's best | vs plain loop | steps only: vs plain loop |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['way']} | {r['runs']} | {r['steps']} | {r['examples_per_s']:.2f} "
            f"({r['spread'][0]:.2f}-{r['spread'][1]:.2f}) "
            f"| {r['trained_tokens_per_s']:.0f} | {100 * r['padding_fraction']:.1f}% "
            f"| {r['peak_rss_mib']:.0f} | {r['vs_seed']:.2f}x | {r['vs_trl']:.2f}x "
            f"| {r['vs_plain']:.2f}x | {r['steady_vs_plain']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, help="training examples per way (default: per model)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--layers", type=int, default=2, help="layers of the Qwen architecture")
    parser.add_argument("--repeats", type=int, default=3, help="runs of padded, packed and plain")
    parser.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.n, args.layers)))
        return
    started = time.perf_counter()
    results = run_all(args.models, args.n, args.layers, args.repeats)
    table = markdown(results)
    print(table)
    import transformers
    import trl

    meta = {
        "examples": {m: args.n or EXAMPLES[m] for m in args.models},
        "qwen_layers": args.layers, "batch_examples": BATCH, "repeats": args.repeats,
        "seed_max_length": SEED_MAX_LENGTH, "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__},
        "wall_seconds": time.perf_counter() - started,
    }  # fmt: skip
    atomic_write_json(RESULTS / "training_speed.json", {"meta": meta, "results": results})
    atomic_write_text(RESULTS / "training_speed.md", table + "\n")


if __name__ == "__main__":
    main()
