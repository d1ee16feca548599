# %% [markdown]
# # 01 · Data format: from records to training examples
#
# **Goal:** turn question/sub-question records into examples a causal language model can learn
# from, and catch bad data before it costs training time. By the end you will have validated
# train and eval splits in the run directory, and you will know exactly which tokens the model is
# trained on.
#
# > **[한국어]** **01 · 데이터 형식: 레코드에서 학습 예제까지.** 질문과 하위 질문(sub-question)으로
# > 된 레코드를 인과 언어 모델(causal language model)이 배울 수 있는 예제로 바꾸고, 학습 시간을 쓰기
# > 전에 잘못된 데이터를 잡아냅니다. 이 노트북을 마치면 검증된 학습·평가 분할(split)이 실행
# > 디렉터리에 저장되고, 모델이 정확히 어떤 토큰을 학습하는지 알게 됩니다.

# %% tags=["parameters"]
# configs/<profile>.yaml(또는 직접 만든 YAML의 경로)이 모든 설정을 줍니다
profile = "cpu_small"  # configs/<profile>.yaml (or a path to your own YAML) supplies every setting
# None이면 runs/<profile>. `qd run`은 새 폴더를 넘깁니다
run_dir = None  # None: runs/<profile>; `qd run` passes a fresh folder
# 아래의 None은 "프로필의 값을 쓴다"는 뜻입니다
seed = None  # None below means "take the value from the profile"
data = None
model = None
lora = None
training = None
evaluation = None
export = None

# %% [markdown]
# ## The profile and the run directory
# One YAML file per machine holds every setting; the run directory is where each lesson leaves
# its results for the next one. `start_lesson` reads the profile (with the parameters above on
# top) and opens the run directory: open it with `start_lesson??` to read the whole thing.
#
# > **[한국어]** **프로필과 실행 디렉터리.** 머신마다 YAML 파일 하나(프로필)가 모든 설정을 담고,
# > 실행 디렉터리(run directory)에는 각 노트북이 다음 노트북을 위한 결과를 남깁니다.
# > `start_lesson`은 프로필을 읽고(위의 매개변수가 우선) 실행 디렉터리를 엽니다. `start_lesson??`로
# > 코드를 직접 읽어 보세요.

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## A record
# Each record is a question and the list of simple questions that answer it, step by step.
# Files are a JSON list or JSONL (one record per line); extra keys such as `id` are kept.
#
# > **[한국어]** **레코드.** 레코드 하나는 질문 하나와, 그 질문에 한 단계씩 답하는 단순한 질문들의
# > 목록입니다. 파일은 JSON 목록이나 JSONL(한 줄에 레코드 하나)이고, `id` 같은 다른 키는 그대로
# > 둡니다.

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
#
# > **[한국어]** **검증이 잘못된 레코드를 잡아냅니다.** `broken.jsonl`에는 일부러 넣은 실수가 다섯
# > 개 있습니다. 기본 설정에서는 첫 번째 실수에서 멈추고, 파일·줄·필드를 밝힌 오류를 보여 줍니다.

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
#
# > **[한국어]** `strict=False`로 불러오면 올바른 레코드만 불러오고, 잘못된 레코드는 이유와 함께
# > 모두 보고합니다. 조용히 버려지는 레코드는 없습니다.

# %%
# NBVAL_CHECK_OUTPUT
report = load_records(broken, strict=False)
print(report.report().replace(str(cfg.resolve_path(".")) + "/", ""))

# %% [markdown]
# ## The training data: validate, filter, deduplicate, split
# The profile names the training file (`data.train_file`: our format, or a public dataset such as
# `strategyqa:FILE`), or a weighted mix (`data.sources`). Questions that differ only in case,
# spacing, Unicode form or a final `?` count as duplicates. The split is fixed by the seed, so
# the same profile always holds out the same questions, and held-out questions never reach
# training.
#
# > **[한국어]** **학습 데이터: 검증, 거르기, 중복 제거, 분할.** 프로필은 학습
# > 파일(`data.train_file`: 우리 형식이나 `strategyqa:FILE` 같은 공개 데이터셋) 또는 가중치를 준
# > 혼합(`data.sources`)을 지정합니다. 대소문자, 공백, 유니코드 정규형, 끝의 `?`만 다른 질문은
# > 중복으로 봅니다. 분할은 시드로 정해지므로 같은 프로필은 언제나 같은 질문을 평가용으로 떼어 두고,
# > 평가 질문은 학습에 들어가지 않습니다.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.splits import prepare_splits

splits = prepare_splits(cfg)
print(splits)

# %% [markdown]
# ## Two kinds of data: templates and real questions
# The course trains on two kinds of records, and they teach different things.
#
# **The teaching set** (`data/teaching/decompose_teach.jsonl`) is generated from 14 templates per
# language. A template is a fixed pattern of steps; only the names change, drawn from small
# pools. It teaches the *form*: numbered steps, `#`-free references ("that city"), when to stop.
# But a held-out question of a trained template differs from training questions only in its
# names, and most of its steps are training targets word for word: a score on it measures
# *template filling*. Lesson 05 shows that a program with no model reaches most of it.
#
# **Real questions** (`data/strategyqa/`, StrategyQA: 2,061 training questions written by people,
# each with a human decomposition, MIT licence) have no template: every question needs its own
# plan, the steps refer back with `#1`, `#2`. Its dev set (229 questions) is never trained on:
# lesson 05 tests on it.
#
# Below: every template of the training data, how many questions it has, whether it is held out
# whole (`data.holdout_by: template` keeps it out of training: lesson 05's unseen-template
# section), one question and its steps; then two real questions.
#
# > **[한국어]** **두 종류의 데이터: 틀(template)과 실제 질문.** 이 코스는 두 종류의 레코드로
# > 학습하고, 둘은 서로 다른 것을 가르칩니다.
# >
# > **교육용 세트**(`data/teaching/decompose_teach.jsonl`)는 언어마다 14개의 틀로 만든 것입니다.
# > 틀은 단계의 고정된 패턴이고, 작은 목록에서 뽑은 이름만 바뀝니다. 이 세트는 *형식*을
# > 가르칩니다. 번호 붙은 단계, `#` 없는 참조("그 도시"), 멈출 때. 하지만 학습한 틀의 평가 질문은
# > 학습 질문과 이름만 다르고 단계 대부분이 글자 그대로 학습 목표이므로, 그 점수는 *틀 채우기*를
# > 잽니다. 05번에서 모델 없는 프로그램이 그 점수 대부분을 얻는 것을 봅니다.
# >
# > **실제 질문**(`data/strategyqa/`, StrategyQA: 사람이 쓴 학습 질문 2,061개와 사람이 쓴 분해,
# > MIT 라이선스)에는 틀이 없습니다. 질문마다 자기 계획이 필요하고, 단계는 `#1`, `#2`로 앞 단계를
# > 가리킵니다. dev 세트(229개)는 학습에 쓰지 않고, 05번에서 시험으로 씁니다.
# >
# > 아래는 학습 데이터의 모든 틀, 틀마다 질문 수, 틀째로 빼 두었는지(`data.holdout_by: template`는
# > 그 틀을 학습에서 뺍니다: 05번의 unseen-template 구역), 질문 하나와 그 단계, 그리고 실제 질문 두
# > 개입니다.

# %%
from IPython.display import Markdown, display

from qdlib.splits import template_table

everything = splits.train + splits.eval
display(Markdown(template_table(everything, set(splits.holdout.eval_names))))
real = [r for r in everything if not r.get("template")]
for r in real[:2]:
    print(r["question"], "->", " / ".join(r["sub_questions"]))
print(len(real), "real questions in this run's data")

# %% [markdown]
# The default profile, `cpu_small`, mixes all of StrategyQA train (its dev set is lesson 05's
# test, never trained on) with 400 English template questions (two templates held out whole),
# and keeps the **English** questions only (`data.languages: [en]`): its model, SmolLM2-135M, has
# no Hangul in its vocabulary, so a Korean question costs it about four times the tokens of an
# English one (ten times per character; Korean questions are shorter): the next section measures
# it. For Korean on a CPU there is `cpu_ko`: Gemma 3 270M, whose vocabulary holds Hangul. The GPU
# profiles train on both languages with Qwen2.5; `cpu_tiny` does too, with a tokenizer trained on
# this data.
#
# > **[한국어]** 기본 프로필 `cpu_small`은 StrategyQA train 전체(dev는 05번의 시험이라 학습하지
# > 않습니다)와 영어 템플릿 질문 400개(템플릿 두 개는 통째로 떼어 둡니다)를 섞고, **영어** 질문만
# > (`data.languages: [en]`) 씁니다. 이 프로필의 모델 SmolLM2-135M은 어휘에 한글이 없어서, 한국어
# > 질문 하나에 영어 질문의 약 네 배나 되는 토큰을 씁니다(글자당으로는 열 배, 한국어 질문이 더
# > 짧습니다). 다음 절에서 직접 잽니다. CPU에서 한국어를 하려면 `cpu_ko` 프로필을 쓰세요. 어휘에
# > 한글이 있는 Gemma 3 270M입니다. GPU 프로필은 Qwen2.5로 두 언어를 모두 학습하고, `cpu_tiny`도
# > 이 데이터로 학습한 토크나이저로 두 언어를 씁니다.

# %% [markdown]
# ## Korean costs more tokens: it depends on the tokenizer
# A tokenizer splits text into pieces from its vocabulary. SmolLM2's vocabulary was built for
# English: it holds almost no Hangul syllable, so each Korean syllable is spelled as its three
# UTF-8 bytes. Gemma 3's (262,144 pieces) and Qwen2.5's were built for many languages, Korean
# included; the tiny model's was trained on this very data. Fewer tokens per question means
# shorter examples: faster training and more text in `max_seq_length`. (A model is measured here
# when it is on this machine: Gemma 3 from its package, which `make` installs; Qwen2.5 only from
# the hub or its cache, which the course's CI machine does not have.)
#
# > **[한국어]** **한국어는 토큰이 더 듭니다: 토크나이저(tokenizer)에 달렸습니다.** 토크나이저는
# > 텍스트를 어휘 사전의 조각으로 나눕니다. SmolLM2의 어휘는 영어용이라 한글 음절이 거의 없어서,
# > 한국어 한 음절을 UTF-8 세 바이트로 적습니다. Gemma 3(조각 262,144개)와 Qwen2.5의 어휘는 한국어를
# > 포함한 여러 언어용이고, tiny 모델의 어휘는 바로 이 데이터로 학습했습니다. 질문당 토큰이
# > 적을수록 예제가 짧아져 학습이 빠르고 `max_seq_length`에 더 많은 텍스트가 들어갑니다. (이
# > 컴퓨터에 있는 모델만 잽니다. Gemma 3는 `make`가 설치하는 패키지에서, Qwen2.5는 허브나 그
# > 캐시에서만 오는데, 강의의 CI 머신에는 없습니다.)

# %%
# NBVAL_CHECK_OUTPUT
from IPython.display import Markdown

from qdlib.config import ConfigError, load_config
from qdlib.datacheck import tokenizer_costs
from qdlib.model import load_tokenizer

teaching = load_records(cfg.resolve_path("data/teaching/decompose_teach.jsonl")).records
texts = {lang: [r["question"] for r in teaching if r["lang"] == lang] for lang in ("en", "ko")}
tokenizer = load_tokenizer(cfg)
tokenizers = {f"{cfg.model.name} ({cfg.profile})": tokenizer,
              "tiny model (cpu_tiny)": load_tokenizer(load_config("cpu_tiny"))}
for other in ("cpu_small", "cpu_ko", "rtx4060"):
    if other == cfg.profile:
        continue
    name = f"{load_config(other).model.name} ({other})"
    try:
        tokenizers[name] = load_tokenizer(load_config(other))
    # 캐시에 없고 허브도 오프라인이거나, 오프라인 패키지가 설치되지 않았을 때
    except (OSError, ConfigError):  # not cached and the hub offline, or the package not installed
        tokenizers[name] = "not on this machine (offline)"
Markdown(tokenizer_costs(tokenizers, texts))

# %% [markdown]
# ## Prompt and answer
# The instruction is the chat's system turn (in Korean for Korean questions) and the question is
# the user's turn, inside the model's chat template. Our own system turn also replaces the
# default one SmolLM2's template would add ("You are a helpful AI assistant named SmolLM..."):
# 17 tokens in every example that teach nothing. The model learns to answer with a numbered list.
# Below is the plain `transformers` call that renders it: `apply_chat_template`. A base model
# (cpu_ko's Gemma 3 270M) has no chat template: its prompt is plain text, the instruction, the
# question and a header (`하위 질문:`) after which the answer follows.
#
# > **[한국어]** **프롬프트와 답.** 지시문은 대화의 system 차례(한국어 질문에는 한국어 지시문)이고
# > 질문은 user 차례이며, 둘 다 모델의 채팅 템플릿(chat template) 안에 들어갑니다. 우리가 system
# > 차례를 직접 주면 SmolLM2 템플릿이 넣는 기본 문장("You are a helpful AI assistant named
# > SmolLM...")도 빠집니다. 모든 예제에 들어가면서 아무것도 가르치지 않는 17개 토큰입니다. 모델은
# > 번호 목록으로 답하는 법을 배웁니다. 아래는 이를 만드는 `transformers`의 호출
# > `apply_chat_template`입니다. 베이스 모델(base model, cpu_ko의 Gemma 3 270M)에는 채팅 템플릿이
# > 없어서 프롬프트가 그냥 글입니다. 지시문, 질문, 그리고 답이 이어질 머리글(`하위 질문:`)
# > 순서입니다.

# %%
from qdlib.data import detect_language
from qdlib.prompts import (
    ANSWER_HEADERS,
    QUESTION_LABELS,
    prompt_messages,
    render_answer,
    render_prompt,
)

record = splits.train[0]
# system 차례(지시문)와 user 차례(질문)
messages = prompt_messages(record["question"])  # [{"role": "system", ...}, {"role": "user", ...}]
# 지시 튜닝된 모델: 자기 채팅 템플릿을 씁니다
if tokenizer.chat_template:  # an instruct model: its own chat template
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
# 베이스 모델(cpu_ko의 Gemma 3 270M)에는 템플릿이 없습니다: 그냥 글, 답 앞에 머리글
else:  # a base model (Gemma 3 270M in cpu_ko) has none: plain text, a header before the answer
    lang = detect_language(record["question"])
    prompt = (f"{messages[0]['content']}\n\n{QUESTION_LABELS[lang]}{messages[1]['content']}"
              f"{ANSWER_HEADERS[lang]}")
print(prompt + render_answer(record["sub_questions"]))
print("same as render_prompt:", prompt == render_prompt(record["question"], tokenizer))

# %% [markdown]
# ### Which tokens does the model learn from?
# We only want the model to learn to *write sub-questions*, not to repeat the question it was
# given. So every prompt token gets the label `-100`, which the loss ignores. The sub-questions
# and the end-of-sequence token (EOS) keep their ids: that is what the model is trained to
# produce, and how it learns to stop. The original project padded with the EOS and then masked
# every pad, so the EOS that ends an answer was never learned, and its model never stopped.
#
# > **[한국어]** **모델은 어떤 토큰에서 배울까요?** 모델이 *하위 질문을 쓰는 법*만 배우고 받은
# > 질문을 되풀이하는 법은 배우지 않게 하려고, 프롬프트 토큰에는 모두 손실(loss)이 무시하는 레이블
# > `-100`을 붙입니다. 하위 질문과 문장 끝 토큰(EOS)은 자기 id를 레이블로 가집니다. 모델이 써야 할
# > 내용이자, 멈추는 법을 배우는 곳입니다. 원래 프로젝트는 EOS로 패딩한 뒤 패딩을 모두 가려서 답을
# > 끝내는 EOS를 한 번도 배우지 못했고, 그래서 모델이 멈추지 않았습니다.

# %%
from qdlib.pictures import trained_tokens
from qdlib.prompts import encode_example

example = encode_example(record, tokenizer, cfg.data.max_seq_length)
trained_tokens(example, tokenizer)

# %%
# NBVAL_CHECK_OUTPUT
print("prompt tokens (label -100):", example["labels"].count(-100))
print("trained tokens:", example["n_trained"])
print("last trained token is EOS:", example["labels"][-1] == tokenizer.eos_token_id)

# %% [markdown]
# ## How long are the examples?
# Steps per record tell you what the model must learn to vary; token lengths tell you whether
# `max_seq_length` cuts anything (a cut answer loses its EOS, and the model never learns to stop).
#
# > **[한국어]** **예제는 얼마나 길까요?** 레코드당 단계 수는 모델이 무엇을 다르게 써야 하는지를,
# > 토큰 길이는 `max_seq_length`가 무언가를 자르는지를 보여 줍니다. 잘린 답은 EOS를 잃고, 모델은
# > 멈추는 법을 배우지 못합니다.

# %%
from qdlib.prompts import plot_lengths

plot_lengths(splits.train, tokenizer)

# %% [markdown]
# ## Check the data before it costs GPU hours
# `check_data` reports invalid records, duplicates (Korean typed on a Mac is often NFD: it
# matches its NFC twin here), train/eval leakage (`eval_spec=`), steps, token lengths with this
# profile's tokenizer, how many examples `max_seq_length` cuts, and the Korean/English mix.
# In a terminal: `qd data check FILE` (also `strategyqa:FILE`, `break:FILE`, `musique:FILE`);
# it exits non-zero on problems, so it can run in your own CI.
#
# > **[한국어]** **GPU 시간을 쓰기 전에 데이터를 점검하세요.** `check_data`는 잘못된 레코드,
# > 중복(맥에서 입력한 한국어는 NFD인 경우가 많은데, 여기서는 NFC 쌍둥이와 같은 것으로 잡습니다),
# > 학습·평가 누수 (`eval_spec=`), 단계 수, 이 프로필 토크나이저로 센 토큰 길이, `max_seq_length`에
# > 잘리는 예제 수, 한국어·영어 비율을 보고합니다. 터미널에서는 `qd data check FILE`이고, 문제가
# > 있으면 0이 아닌 코드로 끝나므로 여러분의 CI에서도 돌릴 수 있습니다.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.datacheck import check_data

spec = cfg.data.train_file or cfg.data.sources[0].spec
print(check_data(spec, tokenizer=tokenizer, max_seq_length=cfg.data.max_seq_length,
                 root=cfg.resolve_path(".")))

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.prompts import tokenize_splits

tokenized = tokenize_splits(splits.train, splits.eval, tokenizer, cfg.data.max_seq_length,
                            cfg.data.language)
print(tokenized.report())

# %% [markdown]
# ## Save the splits for the next lessons
#
# > **[한국어]** **다음 노트북을 위해 분할을 저장합니다.**

# %%
from qdlib.files import atomic_write_json, write_jsonl

write_jsonl(run / "data/train.jsonl", splits.train)
write_jsonl(run / "data/eval.jsonl", splits.eval)
atomic_write_json(run / "data/report.json", splits.report() | {"truncated": tokenized.truncated})
print(sorted(p.name for p in (run / "data").iterdir()))

# %% [markdown]
# ## What you learned
# - A record is a question plus its sub-questions; bad records are reported by file, line and field.
# - Duplicates and the split are handled deterministically from the seed.
# - Only the answer and its EOS are trained: the prompt is masked with `-100`.
# - The tokenizer decides what a language costs.
#
# > **[한국어]** **정리.** 레코드는 질문과 그 하위 질문들이고, 잘못된 레코드는 파일·줄·필드로
# > 보고합니다. 중복 제거와 분할은 시드로 늘 같게 정해집니다. 학습하는 것은 답과 그 EOS뿐이고
# > 프롬프트는 `-100`으로 가립니다. 한 언어에 드는 비용은 토크나이저가 정합니다.
#
# ## Exercises
# Three tiers: 🐢 easy, 🐕 medium, 🦁 stretch. Each has a solution below it (collapsed: click
# the cell's margin to open it). Try first.
#
# > **[한국어]** **연습 문제.** 🐢 쉬움, 🐕 보통, 🦁 도전의 세 단계입니다. 문제마다 아래에 풀이가
# > 접혀 있습니다(셀 왼쪽 여백을 눌러 펼치세요). 먼저 직접 풀어 보세요.

# %% [markdown] tags=["exercise"]
# 🐢 **Easy.** Write a record of your own with an empty sub-question and load it: what does the
# error say? Then load it with `strict=False`.
#
# > **[한국어]** 🐢 **쉬움.** 빈 하위 질문이 든 레코드를 직접 써서 불러오세요. 오류는 무엇이라고
# > 하나요? 그다음 `strict=False`로 불러오세요.

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
import tempfile
from pathlib import Path

mine = Path(tempfile.mkdtemp()) / "mine.jsonl"
good = {"question": "Which is taller, A or B?", "sub_questions": ["How tall is A?", "And B?"]}
bad = {"question": "Which is older, A or B?", "sub_questions": ["How old is A?", ""]}
mine.write_text("".join(json.dumps(r) + "\n" for r in (good, bad)), encoding="utf-8")
try:
    load_records(mine)
except DataError as err:
    print(str(err).splitlines()[0].replace(str(mine.parent) + "/", ""))
print(len(load_records(mine, strict=False).skipped), "skipped with strict=False")

# %% [markdown] tags=["exercise"]
# 🐕 **Medium.** Count the tokens per Hangul syllable of one Korean question with this profile's
# tokenizer (SmolLM2's in `cpu_small`), and explain the number from UTF-8.
#
# > **[한국어]** 🐕 **보통.** 이 프로필의 토크나이저(`cpu_small`에서는 SmolLM2)로 한국어 질문 하나의
# > 한글 음절당 토큰 수를 세고, 그 숫자를 UTF-8로 설명하세요.

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
korean = "서울과 부산 중 인구가 더 많은 도시는?"
syllables = sum("가" <= c <= "힣" for c in korean)
ids = tokenizer(korean.replace(" ", "").replace("?", ""), add_special_tokens=False)["input_ids"]
print(f"{len(ids)} tokens for {syllables} syllables: {len(ids) / syllables:.1f} per syllable")
print("bytes of 서 in UTF-8:", "서".encode())
# Each Hangul syllable is 3 bytes in UTF-8, and SmolLM2's byte-level vocabulary has (almost) no
# merged Hangul, so each byte is its own token: about 3 tokens per syllable. (Gemma 3, in cpu_ko,
# has Hangul pieces: under one token per syllable.)
# 한글 음절 하나는 UTF-8로 3바이트이고, SmolLM2의 바이트 단위 어휘에는 합쳐진 한글 토큰이
# (거의) 없어서 바이트마다 토큰 하나: 음절마다 토큰이 약 3개입니다. (cpu_ko의 Gemma 3에는 한글
# 조각이 있어서 음절마다 한 토큰이 안 됩니다.)

# %% [markdown] tags=["exercise"]
# 🦁 **Stretch.** Lower `data.max_seq_length` until answers get cut: to the longest prompt of the
# first 50 training examples plus 16 tokens. Tokenize them again: how many examples are cut, and
# what happens to the labels of a cut example? (Go below the longest prompt and qdlib refuses:
# an example whose prompt fills the window has nothing left to train.)
#
# > **[한국어]** 🦁 **도전.** 답이 잘리도록 `data.max_seq_length`를 낮추세요. 처음 50개 학습 예제 중
# > 가장 긴 프롬프트에 16토큰을 더한 길이로 정하고 다시 토큰화합니다. 몇 개가 잘리고, 잘린 예제의
# > 레이블은 어떻게 되나요? (가장 긴 프롬프트보다 짧게 하면 qdlib이 거부합니다. 프롬프트가 창을 모두
# > 채운 예제에는 학습할 토큰이 남지 않기 때문입니다.)

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
# 직접 만든 데이터는 이보다 적을 수 있습니다
n = min(50, len(tokenized.train))  # your own data may have fewer
first = tokenized.train.select(range(n))
# 모든 프롬프트가 들어가고 16 토큰이 남습니다
limit = max(row["labels"].count(-100) for row in first) + 16  # every prompt fits, with 16 to spare
short = tokenize_splits(splits.train[:n], [], tokenizer, limit, cfg.data.language)
print(short.report())
cut = [i for i in range(n) if len(short.train[i]["input_ids"]) == limit]
print(len(cut), f"of {n} training examples fill all {limit} tokens")
if cut:
    print("the first ends in EOS:", short.train[cut[0]]["labels"][-1] == tokenizer.eos_token_id)
# Cut on the right, the answer loses its end: the EOS is not trained, so the model does not
# learn to stop after it. Raise max_seq_length, or shorten the data.
# 오른쪽이 잘리면 답의 끝이 사라집니다. EOS가 학습되지 않으니 모델은 답 뒤에서 멈추는 법을
# 배우지 못합니다. max_seq_length를 늘리거나 데이터를 줄이세요.

# %% [markdown] tags=["questionnaire"]
# ## Questionnaire
# Answer in your own words, then open the answers below.
#
# 1. What label does a prompt token get, and why?
# 2. Why must the EOS after the answer keep its label?
# 3. What happens to an example that `max_seq_length` cuts on the right?
# 4. Why does a Korean question cost SmolLM2 more tokens than Gemma 3?
#
# > **[한국어]** **확인 문제.** 먼저 스스로 답해 본 뒤, 아래의 답을 펼쳐 보세요.
# > 1. 프롬프트 토큰은 어떤 레이블을 받고, 왜 그럴까요?
# > 2. 답 뒤의 EOS는 왜 레이블을 가져야 할까요?
# > 3. `max_seq_length`가 오른쪽을 자른 예제는 어떻게 될까요?
# > 4. 한국어 질문에 SmolLM2가 Gemma 3보다 토큰을 더 쓰는 이유는 무엇일까요?

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers.**
#
# 1. `-100`, which the loss ignores: the model should learn to write sub-questions, not to repeat
#    the question it was given.
# 2. It is how the model learns to stop. The original project padded with the EOS and masked every
#    pad, so its model never learned to stop.
# 3. Its answer loses its end and its EOS: that example no longer teaches the model to stop.
#    `check_data` counts such examples before training.
# 4. SmolLM2's vocabulary has (almost) no Hangul, so each syllable is spelled as its three UTF-8
#    bytes; Gemma 3's vocabulary holds Hangul pieces.
#
# > **[한국어]** **답.**
# > 1. 손실이 무시하는 `-100`입니다. 모델은 받은 질문을 되풀이하는 법이 아니라 하위 질문을 쓰는 법을
# >    배워야 하기 때문입니다.
# > 2. 모델이 멈추는 법을 그 토큰에서 배웁니다. 원래 프로젝트는 EOS로 패딩하고 패딩을 모두 가려서
# >    모델이 끝내 멈추지 못했습니다.
# > 3. 답의 끝과 EOS가 사라져서, 그 예제는 더 이상 멈추는 법을 가르치지 못합니다. `check_data`가
# >    학습 전에 그런 예제를 셉니다.
# > 4. SmolLM2의 어휘에는 한글이 (거의) 없어서 음절마다 UTF-8 세 바이트로 적지만, Gemma 3의 어휘에는
# >    한글 조각이 들어 있습니다.
