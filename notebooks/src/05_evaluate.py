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
# - **content_recall**: does the model carry the question's *content* (names, numbers, titles)
#   into its steps? Of the question's rare words that the gold steps repeat, the share the
#   predicted steps repeat too. SARI and chrF reward the template's words; a model that writes
#   "In which country was Marie Curie born?" for a question about Frida Kahlo scores well on
#   them and 0 here.
# - **refs_valid**: every `#k` reference points to an earlier step.

# %%
from IPython.display import Markdown, display

from qdlib.evaluate import compare_table, score, write_report

seen = [r["question"] for r in load_records(run.require("data/train.jsonl")).records]
rows = {"base": score(eval_records, base_outputs, seen),  # seen: tells names from template words
        "tuned": score(eval_records, tuned_outputs, seen)}
metrics = write_report(run / "eval", rows)
display(Markdown(compare_table(metrics)))
print(sorted(p.name for p in (run / "eval").iterdir()))

# %%
from IPython.display import Image

Image(filename=run / "eval/metrics.png")

# %% [markdown]
# ## Where it fails: by kind of question, and by language
# An average hides which kinds of questions the model has not learned. Three-hop bridge questions
# ("...of the capital of the country where X was born?") are the hardest: the model must not
# stop after two steps.

# %%
from qdlib.evaluate import breakdown_table

display(Markdown(breakdown_table(metrics, "by_kind")))
display(Markdown(breakdown_table(metrics, "by_language")))

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
# A pretrained model brings the skill of copying the question's names into its steps; on
# `cpu_tiny` the random-weight model learns the *structure* (how many steps, the numbering, when
# to stop) but writes other names than the question's, and its content recall shows it.

# %%
report = (run / "eval/report.md").read_text(encoding="utf-8")
Markdown(report[report.index("## Worst"):report.index("## Most changed")])

# %% [markdown]
# ## Try it
# Type a question and compare the two models side by side.

# %%
from qdlib.evaluate import try_it

try_it({"base": base_model, "tuned": tuned_model}, tokenizer, question=questions[0],
       **generation_settings(cfg))

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
# 3. Write three questions of your own and decompose them with `generate`. Try one in Korean:
#    what does a model fine-tuned on English questions do with it?
