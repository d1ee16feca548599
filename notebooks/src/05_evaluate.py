# %% [markdown]
# # 05 · Evaluate: does the tuned model decompose better than the base?
#
# **Goal:** generate decompositions for the held-out questions with the base model and with the
# tuned one, parse them into lists of sub-questions, and score both on the same task metrics.
# Eval loss says little about whether a model decomposes well; these numbers do.
#
# > **한국어 요약:** 평가용 질문에 대해 기본 모델과 튜닝된 모델의 분해 결과를 생성하고, 형식 유효성,
# > 단계 수 정확도, 완전 일치로 비교합니다.

# %% tags=["parameters"]
profile = "cpu_tiny"  # configs/<profile>.yaml (or a path to your own YAML) supplies every setting
run_dir = None  # None: runs/<profile>; `qd run` passes a fresh folder
seed = None  # None below means "take the value from the profile"
data = None
model = None
lora = None
training = None
evaluation = None
export = None

# %%
from qdlib.config import load_config
from qdlib.runs import open_run

cfg = load_config(profile, seed=seed, data=data, model=model, lora=lora,
                  training=training, evaluation=evaluation, export=export)
run = open_run(run_dir, cfg)
print(f"profile: {cfg.profile}, run directory: {run}")

# %% [markdown]
# ## The questions
# The held-out split from lesson 01 (capped at `evaluation.max_samples`).

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.data import load_records

eval_records = load_records(run.require("data/eval.jsonl")).records[: cfg.evaluation.max_samples]
questions = [r["question"] for r in eval_records]
print(len(questions), "questions")

# %% [markdown]
# ## Generate with both models
# Batched greedy decoding: prompts are left-padded so each one ends where generation begins, and
# each answer stops at the EOS (or at `max_new_tokens`, which counts as a format failure).
# Batching is several times faster than one question at a time
# (`benchmarks/generation_speed.py` measures it).

# %%
from qdlib.evaluate import generate, generation_settings
from qdlib.model import load_model, load_tokenizer, load_with_adapter

tokenizer = load_tokenizer(cfg)
base_model = load_model(cfg)
tuned_model = load_with_adapter(cfg, run.require("adapter/adapter_config.json").parent)
settings = generation_settings(cfg)  # batch size, max_new_tokens, instruction language
base_outputs = generate(base_model, tokenizer, questions, **settings)
tuned_outputs = generate(tuned_model, tokenizer, questions, **settings)

# %% [markdown]
# ## Score
# Outputs are parsed into sub-questions whatever list form the model used (numbered, bulleted,
# one per line, JSON); anything else is a format failure, not a guess.
# - **format_valid**: parsed, and the model stopped by itself.
# - **step_count_correct** / **step_count_error**: same number of steps as gold / how many off.
# - **exact_match**: every sub-question equal to gold (ignoring case, spacing, final punctuation).
# - **sari**: SARI, as the StrategyQA leaderboard computes it: which words of the question the
#   model kept, added and deleted, compared with the gold decomposition (Xu et al., 2016).
# - **rouge_l**, **chrf**: word and character overlap with the gold steps, both fine on Korean.
# - **refs_valid**: every `#k` reference points to an earlier step.

# %%
from IPython.display import Markdown, display

from qdlib.evaluate import compare_table, score, write_report

rows = {"base": score(eval_records, base_outputs), "tuned": score(eval_records, tuned_outputs)}
metrics = write_report(run / "eval", rows)
display(Markdown(compare_table(metrics)))
print(sorted(p.name for p in (run / "eval").iterdir()))

# %%
from IPython.display import Image

Image(filename=run / "eval/metrics.png")

# %%
# NBVAL_CHECK_OUTPUT
base, tuned = metrics["base"], metrics["tuned"]
print("tuned beats base on format validity:", tuned["format_valid"] > base["format_valid"])
print("tuned beats base on step count:", tuned["step_count_correct"] > base["step_count_correct"])
print("tuned beats base on SARI:", tuned["sari"] > base["sari"])

# %% [markdown]
# ## Look at examples
# Numbers hide how a model fails. `eval/report.md` lists the best, worst and most changed
# examples; here are its worst ones, next to the gold decomposition.
# On `cpu_tiny` the model learns the *structure* in two minutes (how many steps each kind of
# question needs, the numbering, when to stop) but often writes other names than the question's:
# copying names is a skill a pretrained model brings, and a random-weight model learns slowly.

# %%
report = (run / "eval/report.md").read_text(encoding="utf-8")
Markdown(report[report.index("## Worst"):report.index("## Most changed")])

# %% [markdown]
# ## Try it
# Type a question in Korean or English and compare the two models side by side.

# %%
from qdlib.evaluate import try_it

try_it({"base": base_model, "tuned": tuned_model}, tokenizer, **generation_settings(cfg))

# %% [markdown]
# ## What you learned
# - Generation must stop at the EOS: a model that never learned it fails the format check.
# - Format validity and step count show structure; SARI, ROUGE-L, chrF and exact match wording.
# - Always compare against the untuned base on the same questions.
# - `qd eval --run-dir RUN` writes the same report headlessly (`--split FILE` for other data).
#
# ## Exercises
# 1. Find a tuned output with the wrong number of steps: which question type is it?
# 2. Set `evaluation.max_new_tokens` to 16 and explain the drop in format validity.
# 3. Write three questions of your own in Korean and decompose them with `generate`.
