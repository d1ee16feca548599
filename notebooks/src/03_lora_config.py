# %% [markdown]
# # 03 · LoRA config: where the adapters go and how much trains
#
# **Goal:** choose which layers get LoRA adapters and how big they are, and see what share of the
# model actually trains. LoRA freezes every base weight $W$ and learns a low-rank update:
# $W x + \frac{\alpha}{r} B A x$, with $A$ of shape $r \times d_{in}$ and $B$ of shape
# $d_{out} \times r$. $B$ starts at zero, so training starts from the base model exactly.
#
# > **한국어 요약:** 어떤 층에 LoRA 어댑터를 붙일지, 랭크(r)와 알파를 정하고, 전체 중 학습되는
# > 파라미터 비율을 확인합니다.

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

# %%
from qdlib.model import load_model

base_model = load_model(cfg)

# %% [markdown]
# ## Which layers can take an adapter?
# Every linear layer in the transformer blocks: the attention projections (`q_proj`, `k_proj`,
# `v_proj`, `o_proj`) and the MLP (`gate_proj`, `up_proj`, `down_proj`). Adapting all of
# them (`all-linear`) is the QLoRA paper's recommendation.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.lora import linear_module_names, lora_config

print("linear layers:", linear_module_names(base_model))
lora_cfg = lora_config(cfg, base_model)
print("adapted:", sorted(lora_cfg.target_modules))
print(f"r={lora_cfg.r}, alpha={lora_cfg.lora_alpha}, scale={lora_cfg.lora_alpha / lora_cfg.r}")

# %% [markdown]
# The `cpu_tiny` profile also adapts `lm_head`, the output layer. A pretrained model's output
# layer already maps hidden states to sensible words; the tiny model's is random, and a frozen
# random output layer cannot become confident about any token. Real-model profiles leave it out.
#
# ## Rank decides the size
# Each adapted layer adds $r (d_{in} + d_{out})$ parameters. Doubling $r$ doubles them.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.lora import lora_parameter_count

total = sum(p.numel() for p in base_model.parameters())
for r in (4, 8, 16, 32, 64):
    n = lora_parameter_count(base_model, sorted(lora_cfg.target_modules), r)
    print(f"r={r:3d}: {n:>10,} trainable ({100 * n / total:5.2f}% of {total:,})")

# %% [markdown]
# ## What each setting costs in GPU memory
# LoRA, its gradients and its optimizer states grow with the rank: small at r=16, four times that
# at r=64, enough to tip an 8 GB card over. Gradient checkpointing and the tokens per batch matter
# even more: activations and logits grow with every token. Each row changes one setting of the
# rtx4060 profile (GiB):

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.config import load_config
from qdlib.memory import estimate

variants = {
    "rtx4060 as it is": {},
    "r=64": {"lora": {"r": 64, "alpha": 128}},
    "32-bit AdamW": {"training": {"optimizer": "adamw_torch"}},
    "no gradient checkpointing": {"training": {"gradient_checkpointing": False}},
    "1024 tokens": {"data": {"max_seq_length": 1024}},
    "1024 tokens, batch 2": {"data": {"max_seq_length": 1024}, "training": {"batch_size": 2}},
}
for name, change in variants.items():
    e = estimate(load_config("rtx4060", **change))
    print(f"{name:>27}: lora+grads+optimizer {(e.lora + e.gradients + e.optimizer) / 1024:4.2f}, "
          f"activations {e.activations / 1024:4.2f}, total {e.total / 1024:5.2f}  "
          f"{'fits' if e.fits else 'does NOT fit'}")

# %% [markdown]
# ## Attach the adapters and count what trains

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.lora import attach_lora, trainable_report

peft_model = attach_lora(base_model, lora_cfg, cfg.training.gradient_checkpointing, cfg.seed)
print(trainable_report(peft_model))

# %%
from qdlib.lora import save_lora_config

save_lora_config(lora_cfg, run / "lora.json")
print("saved", (run / "lora.json").name)

# %% [markdown]
# ## What you learned
# - LoRA trains two small matrices per adapted layer; the base stays frozen.
# - `r` sets the size, `alpha / r` the strength of the update.
# - A few percent of the parameters (far less on a real model) is enough to learn a new format.
#
# ## Exercises
# 1. Load with `lora={"target_modules": ["q_proj", "v_proj"]}` (the original LoRA paper's choice)
#    and compare the trainable share.
# 2. On a 3B model, what share would `r=16, all-linear` train? Use `lora_parameter_count`.
# 3. Why does `B` start at zero? What would the first step look like otherwise?
