# %% [markdown]
# # 01 · Data format: from records to training examples
#
# **Goal:** turn question/sub-question records into examples a causal language model can learn
# from, and catch bad data before it costs training time.
# By the end you will have validated train and eval splits in the run directory, and you will know
# exactly which tokens the model is trained on.
#
# > **한국어 요약:** 질문/하위 질문 레코드를 검증하고, 학습·평가 데이터로 나누고, 모델이 어떤 토큰을
# > 학습하는지(프롬프트는 학습하지 않고, 하위 질문과 EOS만 학습) 확인합니다.

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

# %% [markdown]
# ## The profile and the run directory
# One YAML file per machine holds every setting; the run directory is where each lesson leaves its
# results for the next one.

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## A record
# Each record is a question and the list of simple questions that answer it step by step.
# Files are a JSON list or JSONL (one record per line); extra keys such as `id` are kept.

# %%
# NBVAL_CHECK_OUTPUT
import json

from qdlib.data import load_records

examples = load_records(cfg.resolve_path("data/examples/sample_train.json")).records
print(len(examples), "records")
print(json.dumps(examples[0], ensure_ascii=False, indent=2))

# %% [markdown]
# ## Validation catches bad records
# `broken.jsonl` has five deliberate mistakes. By default the first one stops loading with an
# error that names the file, the line and the field.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.data import DataError

broken = cfg.resolve_path("data/examples/broken.jsonl")
try:
    load_records(broken)
except DataError as err:
    print(str(err).replace(str(cfg.resolve_path(".")) + "/", ""))

# %% [markdown]
# With `strict=False` the good records load and every bad one is listed with its reason:
# nothing is dropped silently.

# %%
# NBVAL_CHECK_OUTPUT
report = load_records(broken, strict=False)
print(report.report().replace(str(cfg.resolve_path(".")) + "/", ""))

# %% [markdown]
# ## The training data: validate, deduplicate, split
# The profile names the training file (`data.train_file`: our format, or a public dataset such as
# `strategyqa:FILE`), or a weighted mix (`data.sources`). Questions that differ only in case,
# spacing, Unicode form or a final `?` count as duplicates. The split is fixed by the seed, so the
# same profile always holds out the same questions, and held-out questions never reach training.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.splits import prepare_splits

splits = prepare_splits(cfg)
print(splits)

# %% [markdown]
# The default profile, `cpu_small`, keeps the **English** questions only (`data.languages: [en]`),
# and 700 of them: its model, SmolLM2-135M, spends about ten times more tokens on a Korean
# question than on an English one (the next section measures it), so Korean examples would train
# three times slower and still be cut off. The GPU profiles train on both languages with Qwen2.5;
# `cpu_tiny` does too, with a tokenizer trained on this data.
#
# > 기본 프로필 `cpu_small`은 영어 질문만 씁니다. SmolLM2 토크나이저는 한국어 한 글자에 약 2개의
# > 토큰을 쓰기 때문에(영어의 약 10배) CPU 시간 안에 한국어까지 학습할 수 없습니다.
# > 한국어는 Qwen2.5를 쓰는 GPU 프로필(`rtx4060`, `runpod`)이나 `cpu_tiny`로 학습하세요.

# %% [markdown]
# ## Korean costs more tokens: it depends on the tokenizer
# A tokenizer splits text into pieces from its vocabulary. SmolLM2's vocabulary was built for
# English: it holds almost no Hangul syllable, so each Korean syllable is spelled as its three
# UTF-8 bytes. Qwen2.5's was built for many languages (Korean included); the tiny model's was
# trained on this very data. Fewer tokens per character means shorter examples: faster training
# and more text in `max_seq_length`. (Qwen2.5's tokenizer is measured here when it is on this
# machine or the hub is reachable; the course's CI machine has neither.)

# %%
# NBVAL_CHECK_OUTPUT
from IPython.display import Markdown

from qdlib.config import load_config
from qdlib.datacheck import tokenizer_costs
from qdlib.model import load_tokenizer

teaching = load_records(cfg.resolve_path("data/teaching/decompose_teach.jsonl")).records
texts = {lang: [r["question"] for r in teaching if r["lang"] == lang] for lang in ("en", "ko")}
tokenizer = load_tokenizer(cfg)
tokenizers = {f"{cfg.model.name} ({cfg.profile})": tokenizer,
              "tiny model (cpu_tiny)": load_tokenizer(load_config("cpu_tiny"))}
try:
    tokenizers["Qwen/Qwen2.5-3B-Instruct (rtx4060)"] = load_tokenizer(load_config("rtx4060"))
except OSError:  # not cached, and the hub is offline
    tokenizers["Qwen/Qwen2.5-3B-Instruct (rtx4060)"] = "not on this machine (offline)"
Markdown(tokenizer_costs(tokenizers, texts))

# %% [markdown]
# ## Prompt and answer
# The instruction is the chat's system turn (in Korean for Korean questions) and the question is
# the user's turn, inside the model's chat template. Our own system turn also replaces the
# default one SmolLM2's template would add ("You are a helpful AI assistant named SmolLM..."):
# 17 tokens in every example that teach nothing. The model learns to answer with a numbered list.

# %%
from qdlib.data import render_answer, render_prompt

record = splits.train[0]
print(render_prompt(record["question"], tokenizer) + render_answer(record["sub_questions"]))

# %% [markdown]
# ### Which tokens does the model learn from?
# We only want the model to learn to *write sub-questions*, not to repeat the question it was
# given. So every prompt token gets the label `-100`, which the loss ignores. The sub-questions
# and the end-of-sequence token keep their ids: that is what the model is trained to produce, and
# how it learns to stop. Below, `[prompt]` tokens are ignored and `<<trained>>` tokens are learned.

# %%
from qdlib.data import encode_example, show_trained_tokens

example = encode_example(record, tokenizer, cfg.data.max_seq_length)
print(show_trained_tokens(example, tokenizer))

# %%
# NBVAL_CHECK_OUTPUT
print("prompt tokens (label -100):", example["labels"].count(-100))
print("trained tokens:", example["n_trained"])
print("last trained token is EOS:", example["labels"][-1] == tokenizer.eos_token_id)

# %% [markdown]
# ## How long are the examples?
# Steps per record tell you what the model must learn to vary; token lengths tell you whether
# `max_seq_length` cuts anything (a cut answer loses its EOS, and the model never learns to stop).

# %%
from qdlib.data import plot_lengths

plot_lengths(splits.train, tokenizer)

# %% [markdown]
# ## Check the data before it costs GPU hours
# `check_data` reports invalid records, duplicates (Korean typed on a Mac is often NFD: it
# matches its NFC twin here), train/eval leakage (`eval_spec=`), steps, token lengths with this
# profile's tokenizer, how many examples `max_seq_length` cuts, and the Korean/English mix.
# In a terminal: `qd data check FILE` (also `strategyqa:FILE`, `break:FILE`, `musique:FILE`);
# it exits non-zero on problems, so it can run in your own CI.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.datacheck import check_data

spec = cfg.data.train_file or cfg.data.sources[0].spec
print(check_data(spec, tokenizer=tokenizer, max_seq_length=cfg.data.max_seq_length,
                 root=cfg.resolve_path(".")))

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.data import tokenize_splits

tokenized = tokenize_splits(splits.train, splits.eval, tokenizer, cfg.data.max_seq_length,
                            cfg.data.language)
print(tokenized.report())

# %% [markdown]
# ## Save the splits for the next lessons

# %%
from qdlib.io import atomic_write_json, write_jsonl

write_jsonl(run / "data/train.jsonl", splits.train)
write_jsonl(run / "data/eval.jsonl", splits.eval)
atomic_write_json(run / "data/report.json", splits.report() | {"truncated": tokenized.truncated})
print(sorted(p.name for p in (run / "data").iterdir()))

# %% [markdown]
# ## What you learned
# - A record is a question plus its sub-questions; bad records are reported by file, line and field.
# - Duplicates and the split are handled deterministically from the seed.
# - Only the answer and its EOS are trained: the prompt is masked with `-100`.
#
# ## Exercises
# 1. Add a record of your own to a copy of `sample_train.jsonl` with an empty sub-question, and
#    read the error. Then load it with `strict=False`.
# 2. Lower `data.max_seq_length` (e.g. `load_config("cpu_tiny", data={"max_seq_length": 48})`)
#    and watch the truncation count and the error for examples with nothing left to train.
# 3. Open `render_prompt??` and change the instruction wording: what would change at inference?
# 4. Mix the teaching set with your own file through `data.sources` (see `data/DATA_FORMAT.md`)
#    and read the per-source counts that `prepare_splits` prints.
