# %% [markdown]
# # 04 · Train: fit the adapters with the Hugging Face Trainer
#
# **Goal:** train the LoRA adapters on the training split, watch the loss fall, and save the
# adapter. We use `transformers.Trainer` as its authors intend: our part is the data (lesson 01),
# the adapters (lesson 03) and the settings from the profile.
#
# > **한국어 요약:** Trainer로 LoRA 어댑터를 학습하고, 손실 곡선을 확인한 뒤 어댑터를 저장합니다.

# %% tags=["parameters"]
profile = "cpu_small"  # configs/<profile>.yaml (or a path to your own YAML) supplies every setting
run_dir = None  # None: runs/<profile>; `qd run` passes a fresh folder
seed = None  # None below means "take the value from the profile"
data = None
model = None
lora = None
training = None
evaluation = None
export = None
resume = False  # True: continue from the newest complete checkpoint in run_dir (qd run --resume)

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## Inputs from earlier lessons
# The splits from lesson 01 and the LoRA config from lesson 03.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.data import load_records, tokenize_splits
from qdlib.lora import load_lora_config
from qdlib.model import load_tokenizer

train_records = load_records(run.require("data/train.jsonl")).records
eval_records = load_records(run.require("data/eval.jsonl")).records
lora_cfg = load_lora_config(run.require("lora.json"))
tokenizer = load_tokenizer(cfg)
tokenized = tokenize_splits(train_records, eval_records, tokenizer, cfg.data.max_seq_length,
                            cfg.data.language)
print(tokenized.report())

# %% [markdown]
# ## Batches without wasted padding
# The original project padded every example to `max_seq_length`. Here the collator pads each
# batch only to its longest example, and `group_by_length` puts examples of similar length
# together. Labels are padded with `-100`, so padding is never trained, while the EOS at the end
# of each answer keeps its label.
#
# With `training.packing: true` (the GPU profiles) there is no padding at all: the batch's
# examples are laid end to end in one row, and `position_ids` restart at 0 for each, which tells
# the attention to keep every example to itself. The loss is the same; the wasted work is gone.
# Here is one batch of this profile's size, three ways:
#
# > 패딩 낭비 없이: 배치 안에서 가장 긴 예제까지만 패딩하거나(동적 패딩), 예제를 한 줄로 이어
# > 붙이고 위치 번호를 예제마다 0부터 다시 시작합니다(패킹). 손실은 같고 낭비는 사라집니다.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.train import data_collator

examples = [tokenized.train[i] for i in range(cfg.training.batch_size)]
trained = sum(sum(label != -100 for label in e["labels"]) for e in examples)
ways = {
    f"padded to max_seq_length ({cfg.data.max_seq_length})":
        (len(examples), cfg.data.max_seq_length),
    "padded to the longest in the batch": tuple(data_collator(tokenizer, False)(examples)[
        "input_ids"].shape),
    "packed, padding-free": tuple(data_collator(tokenizer, True)(examples)["input_ids"].shape),
}
for name, (rows, width) in ways.items():
    real = sum(len(e["input_ids"]) for e in examples)
    print(f"{name:>40}: {rows:2d} x {width:4d} = {rows * width:5d} positions, "
          f"{100 * (1 - real / (rows * width)):4.1f}% padding, {trained} tokens trained")

# %% [markdown]
# `benchmarks/training_speed.py` measures what this saves in time, against the original pipeline
# and TRL's `SFTTrainer` (see the README).

# %%
from qdlib.evaluate import watch_generation
from qdlib.lora import attach_lora
from qdlib.model import load_model
from qdlib.train import build_trainer

peft_model = attach_lora(load_model(cfg), lora_cfg, cfg.training.gradient_checkpointing, cfg.seed)
trainer = build_trainer(peft_model, tokenizer, tokenized, cfg, run / "checkpoints")
watch_generation(trainer, cfg, eval_records)  # with evaluation.generate_every: task metrics too
t = cfg.training
print(f"{t.epochs} epochs, batch {t.batch_size} x {t.gradient_accumulation_steps} accumulation, "
      f"lr {t.learning_rate}, {t.optimizer}, {len(tokenized.train)} examples")

# %% [markdown]
# ## Train
# The Trainer logs the loss every few steps and saves checkpoints into the run directory, so an
# interrupted run can resume: with `resume = True` it continues from the newest *complete*
# checkpoint (one cut off by a crash is skipped, and the message says why). With
# `evaluation.generate_every` set, it also decodes a few eval questions now and then and logs
# task metrics (`gen_format_valid`, `gen_step_count_correct`, `gen_sari`): a loss can fall while
# the model still never stops.

# %%
from qdlib.train import resume_point

checkpoint = resume_point(run / "checkpoints") if resume else None  # none complete: an error
if checkpoint:
    print("resuming from", checkpoint.name)
result = trainer.train(resume_from_checkpoint=checkpoint)
print(f"{result.global_step} steps in {result.metrics['train_runtime']:.0f}s")

# %% [markdown]
# ## Save the adapter, and look at the loss curve
# `finish_training` keeps what the run needs: the adapter in `adapter/` (the LoRA weights as
# safetensors, its config and the tokenizer: a few megabytes instead of the whole model), and in
# `train/` the log, the loss curve and a summary, each file written whole. `qd train` finishes
# with the same call.
#
# The loss is measured on answer tokens only. A falling eval loss (red) means the model learns
# the task rather than memorising the training questions. The dashed lines (right axis) are the
# generated answers: how often they are well formed and have the right number of steps.

# %%
from IPython.display import display

from qdlib.train import finish_training

fig = finish_training(trainer, run.path, resumed_from=checkpoint)
display(fig)

# %%
# NBVAL_CHECK_OUTPUT
losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
print("optimizer steps:", trainer.state.global_step)
print("loss fell by more than half:", losses[-1] < losses[0] / 2)

# %%
# NBVAL_CHECK_OUTPUT
print(sorted(p.name for p in (run / "adapter").iterdir() if p.suffix in (".json", ".safetensors")))
print(sorted(p.name for p in (run / "train").iterdir()))

# %% [markdown]
# ## When to leave the notebook: multi-GPU and long runs
# A notebook is one process: it trains on one GPU, and it stops when its kernel or your
# connection does. For runs of hours, or on a pod with several GPUs, train from a terminal with
# `qd train`. It does what lessons 01 and 04 do, into a run directory that lessons 05 and 06 read
# as usual.
#
# ```bash
# qd train --profile runpod --run-dir runs/big                       # one GPU
# accelerate launch --config_file configs/accelerate/ddp.yaml \
#     -m qdlib.cli train --profile runpod --run-dir runs/big          # every GPU (DDP)
# torchrun --nproc_per_node 2 -m qdlib.cli train --profile runpod --run-dir runs/big
# qd train --profile runpod --run-dir runs/big --resume              # after a crash
# ```
#
# Each GPU runs its own process on its share of every batch, so one optimizer step sees
# `batch_size x gradient_accumulation_steps x GPUs` examples and an epoch takes fewer steps.
# Only the first process writes the run directory. `fsdp.yaml` and `deepspeed_zero3.yaml` also
# split the weights across the GPUs once loaded (each GPU loads the whole model first, so it
# must fit on one). `--resume` (here: `resume = True`, or `qd run --resume --run-dir RUN`)
# continues from the newest complete checkpoint, on the same data in the same order.
#
# > **한국어 요약:** 학습이 오래 걸리거나 GPU가 여러 개라면 노트북 대신 터미널에서 `qd train`
# > (`accelerate launch`, `torchrun`)으로 학습하고, 중단되면 `--resume`으로 마지막 완전한
# > 체크포인트부터 이어서 학습합니다.

# %% [markdown]
# ## What you learned
# - The Trainer does the loop; the profile sets batch size, learning rate, schedule and optimizer.
# - Dynamic padding, length grouping or packing keep padding out of the compute.
# - The adapter is small and saved on its own; the base model is untouched.
#
# ## Exercises
# 1. Halve `training.learning_rate` and compare the loss curves.
# 2. Set `training.max_steps` to 20: what happens to the loss and, in lesson 05, to the scores?
# 3. Stop this notebook's kernel during training, then run it again with `resume = True`: from
#    which step does it continue, and does the loss curve join up?
