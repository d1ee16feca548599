# %% [markdown]
# # 06 · Export: a folder anyone can load, that answers like the model you evaluated
#
# **Goal:** save the adapter for use with `peft`, merge it into the base weights for use with
# plain `transformers`, reload the merged model *without qdlib* and check it gives the same greedy
# answers as base + adapter, write a model card, and decompose questions from the command line.
#
# > **한국어 요약:** 어댑터를 저장하고, 기본 모델에 병합한 뒤, 병합된 모델을 qdlib 없이
# > transformers만으로 다시 불러와 같은 답을 내는지 확인하고, 모델 카드를 쓰고, 명령줄에서
# > 질문을 분해해 봅니다.

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
# ## The adapter on its own
# Small, and loaded on top of the base model with `peft`: safetensors weights,
# `adapter_config.json` (which names the base model) and the tokenizer with its chat template.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.export import export_adapter

adapter_dir = run.require("adapter/adapter_config.json").parent
exported = export_adapter(adapter_dir, run / "export/adapter")
print(sorted(p.name for p in exported.iterdir() if p.suffix in (".json", ".safetensors")))

# %% [markdown]
# ## Merge
# Merging adds $\frac{\alpha}{r} B A$ into each adapted weight. It is done on an **unquantized**
# copy of the base, even after QLoRA training: merging into 4-bit weights would round the update
# away (`merge_adapter` refuses to). The folder is written under a temporary name and renamed
# when complete, so an interrupted export never leaves a half model behind.

# %%
from qdlib.export import merge_adapter

merged_dir = merge_adapter(cfg, adapter_dir, run / "export/merged")
print(sorted(p.name for p in merged_dir.iterdir()))

# %% [markdown]
# ## Parity: same answers, token for token, without qdlib
# A fresh Python process loads the merged folder with plain `transformers` (it never imports
# qdlib) and decodes the held-out questions greedily. We compare its tokens with base + adapter.
# Tiny floating-point differences can flip a near-tie now and then; more than 1% would mean the
# export went wrong.

# %%
from qdlib.data import load_records
from qdlib.evaluate import generate, generation_settings
from qdlib.export import parity_with_plain_transformers
from qdlib.model import load_tokenizer, load_with_adapter

tokenizer = load_tokenizer(cfg)
questions = [r["question"] for r in load_records(run.require("data/eval.jsonl")).records]
questions = questions[: cfg.export.parity_samples or cfg.evaluation.max_samples]
settings = generation_settings(cfg)  # batch size, max_new_tokens, instruction language
reference = generate(load_with_adapter(cfg, adapter_dir), tokenizer, questions, **settings)
trust = cfg.model.trust_remote_code  # false unless the profile says so: no code from the folder
check = parity_with_plain_transformers(merged_dir, tokenizer, questions, reference, **settings,
                                       trust_remote_code=trust)
print(check)
for m in check.mismatches[:3]:
    print(f"differs: {m['question']}\n  adapter: {m['reference']!r}\n  merged:  {m['merged']!r}")

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.io import atomic_write_json

atomic_write_json(run / "export/parity.json", vars(check) | {"rate": check.rate})
print("at least 99% identical:", check.rate >= 0.99)

# %% [markdown]
# ## The model card
# `export/README.md` says what the model is, what it was trained on and how, how it scored, the
# prompt it expects, and how to use it. It is what the hub shows if you share the model.

# %%
from IPython.display import Markdown

from qdlib.export import model_card
from qdlib.io import atomic_write_text

card = model_card(cfg, run.path, tokenizer)
atomic_write_text(run / "export/README.md", card)
Markdown(card[card.index("## Training"):card.index("## Prompt format")])

# %% [markdown]
# ## Share it (optional)
# With `export.push_to_hub: user/repo` in the profile, the export is uploaded as a private repo.
# The token comes from `HF_TOKEN` in the environment or `.env`, never from a profile or a
# notebook, and is never printed. `export.gguf: true` converts the merged model for llama.cpp
# and Ollama with llama.cpp's own converter, which you install yourself.

# %%
from qdlib.export import convert_to_gguf
from qdlib.hub import push_to_hub

if cfg.export.push_to_hub:
    print(push_to_hub(run / "export", cfg.export.push_to_hub))
if cfg.export.gguf:
    gguf = run / f"export/model-{cfg.export.gguf_outtype}.gguf"
    try:
        print(convert_to_gguf(merged_dir, gguf, cfg.export.llama_cpp_dir, cfg.export.gguf_outtype))
    except FileNotFoundError as missing:  # the converter is not installed: say what to do
        print(missing)
print("push_to_hub:", cfg.export.push_to_hub, "| gguf:", cfg.export.gguf)

# %% [markdown]
# ## Use it: `qd decompose`
# From a terminal: `qd decompose --model RUN/export/merged "question"` (or an adapter folder),
# `--file questions.txt` for many, `--format json` for programs. The same, from Python, on
# questions the training data never paired this way. The last one is Korean: `cpu_small` was
# tuned on English questions only, and it shows (lesson 01 says why; the GPU profiles train on
# Korean too).

# %%
from qdlib.cli import main as qd

exit_code = qd(["decompose", "--model", str(merged_dir),
                "Which city has more people, Seoul or Busan?",
                "Which languages are spoken in both Canada and Belgium?",
                "서울과 부산 중 인구가 더 많은 도시는?"])

# %% [markdown]
# ## What you learned
# - An adapter is small and needs the base; a merged model stands alone.
# - Merge into unquantized weights, never into 4-bit ones.
# - Check parity after export, outside your own code: the model you ship must be the model you
#   evaluated.
#
# ## Exercises
# 1. Compare the size of `export/adapter` and `export/merged` on disk.
# 2. Run `qd decompose --model <run>/export/adapter --format json "..."` in a terminal.
# 3. Why is greedy decoding the right way to test parity?
