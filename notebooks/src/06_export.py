# %% [markdown]
# # 06 · Export: a folder anyone can load, that answers like the model you evaluated
#
# **Goal:** save the adapter for use with `peft`, merge it into the base weights for use with
# plain `transformers`, reload the merged model *without qdlib* and check it gives the same greedy
# answers as base + adapter, write a model card, and decompose questions from the command line.
#
# > **[한국어]** **06 · 내보내기: 누구나 불러올 수 있고, 평가한 모델과 똑같이 답하는 폴더.**
# > 어댑터를 `peft`용으로 저장하고, 평범한 `transformers`용으로 기본 가중치에 병합(merge)하고,
# > 병합된 모델을 *qdlib 없이* 다시 불러와 베이스 모델 + 어댑터와 같은 탐욕적(greedy) 답을 내는지
# > 확인하고, 모델 카드를 쓰고, 명령줄에서 질문을 분해해 봅니다.

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

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## The adapter on its own
# Small, and loaded on top of the base model with `peft`: safetensors weights,
# `adapter_config.json` (which names the base model) and the tokenizer with its chat template.
#
# > **[한국어]** **어댑터만 따로.** 작고, `peft`로 베이스 모델 위에 얹어 불러옵니다. safetensors
# > 가중치, 베이스 모델의 이름이 적힌 `adapter_config.json`, 채팅 템플릿이 든 토크나이저로 되어
# > 있습니다.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.export import export_adapter

adapter_dir = run.require("adapter/adapter_config.json").parent
exported = export_adapter(adapter_dir, run / "export/adapter")
print(sorted(p.name for p in exported.iterdir() if p.suffix in (".json", ".safetensors")))

# %% [markdown]
# ## Merge, by hand: `PeftModel.from_pretrained` and `merge_and_unload`
# Two plain `peft` calls. `PeftModel.from_pretrained(base, adapter_dir)` reads
# `adapter_config.json` and the adapter weights and wraps each adapted layer of the base, as in
# training. `merge_and_unload()` adds each layer's update $\frac{\alpha}{r} B A$ into its weight
# $W$ and returns a plain `transformers` model with no LoRA layers left: the same size as the
# base, as fast as the base, and loadable without `peft`.
#
# Merge into an **unquantized** copy of the base (`quantization_config=None`, the profile's
# `dtype`), even after QLoRA training: merging into 4-bit weights would round the small update
# away (the medium exercise measures by how much), so qdlib's `merge_adapter` always loads the base
# unquantized. The cell checks the arithmetic on one layer: after the merge, its weight is
# $W + \frac{\alpha}{r} BA$.
#
# > **[한국어]** **직접 병합하기: `PeftModel.from_pretrained`와 `merge_and_unload`.** `peft`의 기본
# > 호출 두 개입니다. `PeftModel.from_pretrained(base, adapter_dir)`는 `adapter_config.json`과
# > 어댑터 가중치를 읽어 학습 때처럼 베이스 모델의 각 층을 감쌉니다. `merge_and_unload()`는 층마다
# > 갱신 $\frac{\alpha}{r} B A$를 가중치 $W$에 더하고, LoRA 층이 남지 않은 평범한 `transformers`
# > 모델을 돌려줍니다. 크기도 속도도 베이스 모델과 같고, `peft` 없이 불러올 수 있습니다.
# >
# > 병합(merge)은 QLoRA로 학습했더라도 **양자화(quantization)하지 않은** 베이스 모델 사본(
# > `quantization_config=None`, 프로필의 `dtype`)에 합니다. 4비트 가중치에 병합하면 작은 갱신이
# > 반올림되어 사라지고(얼마나 사라지는지는 보통 난이도 연습 문제에서 잽니다), 그래서 qdlib의
# > `merge_adapter`는 베이스 모델을 늘 양자화 없이 불러옵니다. 아래 셀은 층 하나에서 계산을
# > 확인합니다. 병합 뒤 그 층의 가중치는 $W + \frac{\alpha}{r} BA$입니다.

# %%
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from qdlib.model import resolve_dtype, weights_source

base = AutoModelForCausalLM.from_pretrained(
    # 02번이 찾은 베이스 모델의 폴더(또는 허브 id)
    weights_source(cfg).path,  # the base's folder (or hub id), as lesson 02 found it
    # quantization_config 없음: 완전한 정밀도에서 병합
    dtype=resolve_dtype(cfg.model.dtype),  # no quantization_config: merge in full precision
    # 믿을 수 없으면 모델 폴더에 딸려 온 코드는 절대 실행하지 않습니다
    trust_remote_code=False,  # never run code that ships with a model folder, unless you trust it
    use_safetensors=True,
)
# adapter_config.json과 가중치를 읽습니다
peft_model = PeftModel.from_pretrained(base, adapter_dir)  # reads adapter_config.json + weights
name, layer = next((n, m) for n, m in peft_model.named_modules() if hasattr(m, "lora_A")
                   # 어댑터가 붙은 첫 층
                   and "default" in m.lora_A)  # the first adapted layer
A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
# scaling = alpha / r: 갱신에 곱하는 배율
update = layer.scaling["default"] * (B @ A)  # scaling = alpha / r
# 병합이 바꾸기 전에
W = layer.base_layer.weight.detach().clone()  # before the merge changes it
# 어댑터가 붙은 모든 층에서 W + alpha/r B A, LoRA 층은 사라집니다
merged = peft_model.merge_and_unload()  # W + alpha/r B A in every adapted layer; LoRA removed
W_merged = merged.get_submodule(name.removeprefix("base_model.model.")).weight
print(f"{name}: A {tuple(A.shape)}, B {tuple(B.shape)}, alpha/r = {layer.scaling['default']}")

# %%
# NBVAL_CHECK_OUTPUT
print("merged weight = W + alpha/r B A:", torch.allclose(W_merged, W + update, atol=1e-6))
print("LoRA layers left:", sum(hasattr(m, "lora_A") for m in merged.modules()))

# %% [markdown]
# ## The same, saved: `merge_adapter`
# `merge_adapter` makes these calls with the profile's values and saves the merged model with the
# tokenizer. The folder is written under a temporary name and renamed when complete, so an
# interrupted export never leaves a half model behind. Read back from its safetensors file, its
# weights are the ones you just merged by hand. The check keeps one model in memory at a time: a
# fingerprint (sha256) of each tensor merged by hand, then that model is let go before
# `merge_adapter` loads its own (two copies of a 7B model do not fit a 24 GB card).
#
# > **[한국어]** **저장까지: `merge_adapter`.** `merge_adapter`는 프로필 값으로 같은 호출을 하고,
# > 병합된 모델을 토크나이저와 함께 저장합니다. 폴더는 임시 이름으로 쓴 뒤 다 쓰면 이름을 바꾸므로,
# > 내보내기가 중간에 끊겨도 반쪽짜리 모델이 남지 않습니다. safetensors 파일에서 다시 읽은
# > 가중치는 방금 직접 병합한 가중치와 같습니다. 이 확인은 메모리에 모델을 한 번에 하나만 둡니다.
# > 손으로 병합한 텐서마다 지문(sha256)을 남기고, `merge_adapter`가 자기 모델을 불러오기 전에 그
# > 모델을 놓아 줍니다(7B 모델 두 벌은 24 GB 카드에 들어가지 않습니다).

# %%
import gc

from qdlib.export import merge_adapter
from qdlib.model import fingerprint

# 손으로 병합한 텐서마다 지문 하나
by_hand = {k: fingerprint([t]) for k, t in merged.state_dict().items()}  # one hash per tensor
# 그다음 모델을 놓아 주면 메모리에는 한 번에 모델 하나만 있습니다
del base, peft_model, merged  # then let the model go: one model in memory at a time
gc.collect()
merged_dir = merge_adapter(cfg, adapter_dir, run / "export/merged")
print(sorted(p.name for p in merged_dir.iterdir()))

# %%
# NBVAL_CHECK_OUTPUT
from safetensors import safe_open

# 쓰인 그대로의 텐서를 이름별로, 한 번에 하나씩 읽습니다
with safe_open(merged_dir / "model.safetensors", framework="pt") as saved:  # one at a time
    same = [fingerprint([saved.get_tensor(k)]) == by_hand[k] for k in saved.keys()]
print(len(same), "tensors; saved = merged by hand:", all(same))

# %% [markdown]
# ## Parity: same answers, token for token, without qdlib
# A fresh Python process loads the merged folder with plain `transformers` (it never imports
# qdlib) and decodes the held-out questions greedily. We compare its tokens with base + adapter.
# Tiny floating-point differences can flip a near-tie now and then; more than 1% would mean the
# export went wrong.
#
# > **[한국어]** **같은 답, 토큰 하나하나까지, qdlib 없이.** 새 파이썬 프로세스가 병합된 폴더를
# > 평범한 `transformers`로 불러와(qdlib는 전혀 import하지 않습니다) 평가 질문을 탐욕적으로
# > 디코딩합니다. 그 토큰을 베이스 모델 + 어댑터의 토큰과 비교합니다. 아주 작은 부동소수점 차이로
# > 가끔 거의 동점인 토큰이 뒤바뀔 수 있지만, 1%를 넘으면 내보내기가 잘못된 것입니다.

# %%
from qdlib.data import load_records
from qdlib.export import parity_with_plain_transformers
from qdlib.inference import generate, generation_settings
from qdlib.model import load_tokenizer, load_with_adapter

tokenizer = load_tokenizer(cfg)
questions = [r["question"] for r in load_records(run.require("data/eval.jsonl")).records]
questions = questions[: cfg.export.parity_samples or cfg.evaluation.max_samples]
# 배치 크기, max_new_tokens, 지시문 언어
settings = generation_settings(cfg)  # batch size, max_new_tokens, instruction language
reference = generate(load_with_adapter(cfg, adapter_dir), tokenizer, questions, **settings)
# 프로필이 허락하지 않으면 false: 폴더의 코드는 실행하지 않습니다
trust = cfg.model.trust_remote_code  # false unless the profile says so: no code from the folder
check = parity_with_plain_transformers(merged_dir, tokenizer, questions, reference, **settings,
                                       trust_remote_code=trust)
print(check)
for m in check.mismatches[:3]:
    print(f"differs: {m['question']}\n  adapter: {m['reference']!r}\n  merged:  {m['merged']!r}")

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.files import atomic_write_json

atomic_write_json(run / "export/parity.json", vars(check) | {"rate": check.rate})
print("at least 99% identical:", check.rate >= 0.99)

# %% [markdown]
# ## The model card
# `export/README.md` says what the model is, what it was trained on and how, how it scored, the
# prompt it expects, and how to use it. It is what the hub shows if you share the model.
#
# > **[한국어]** **모델 카드.** `export/README.md`는 모델이 무엇인지, 무엇으로 어떻게 학습했는지,
# > 점수는 어땠는지, 어떤 프롬프트를 기대하는지, 어떻게 쓰는지를 적습니다. 모델을 공유하면 허브가
# > 보여 주는 페이지입니다.

# %%
from IPython.display import Markdown

from qdlib.export import model_card
from qdlib.files import atomic_write_text

card = model_card(cfg, run.path, tokenizer)
atomic_write_text(run / "export/README.md", card)
Markdown(card[card.index("## Training"):card.index("## Prompt format")])

# %% [markdown]
# ## Share it (optional)
# With `export.push_to_hub: user/repo` in the profile, the export is uploaded as a private repo.
# The token comes from `HF_TOKEN` in the environment or `.env`, never from a profile or a
# notebook, and is never printed. `export.gguf: true` converts the merged model for llama.cpp
# and Ollama with llama.cpp's own converter, which you install yourself.
#
# > **[한국어]** **공유하기(선택).** 프로필에 `export.push_to_hub: user/repo`가 있으면 내보낸 폴더를
# > 비공개 저장소로 올립니다. 토큰은 환경 변수나 `.env`의 `HF_TOKEN`에서만 읽고, 프로필이나
# > 노트북에는 쓰지 않으며, 출력하지도 않습니다. `export.gguf: true`는 병합된 모델을 llama.cpp 자체
# > 변환기(직접 설치)로 llama.cpp와 Ollama용 GGUF로 바꿉니다.

# %%
from qdlib.export import convert_to_gguf
from qdlib.hub import push_to_hub

if cfg.export.push_to_hub:
    print(push_to_hub(run / "export", cfg.export.push_to_hub))
if cfg.export.gguf:
    gguf = run / f"export/model-{cfg.export.gguf_outtype}.gguf"
    try:
        print(convert_to_gguf(merged_dir, gguf, cfg.export.llama_cpp_dir, cfg.export.gguf_outtype))
    # 변환기가 설치되지 않았으면 할 일을 알려 줍니다
    except FileNotFoundError as missing:  # the converter is not installed: say what to do
        print(missing)
print("push_to_hub:", cfg.export.push_to_hub, "| gguf:", cfg.export.gguf)

# %% [markdown]
# ## Use it: `qd decompose`
# From a terminal: `qd decompose --model RUN/export/merged "question"` (or an adapter folder),
# `--file questions.txt` for many, `--format json` for programs. The same, from Python, on four
# questions: one worded like a trained template (a city comparison), two real questions from
# StrategyQA dev (the first two of the file: not chosen for looking good), and a Korean one. The
# cell before says, from the run's own training data, which of them the model was trained on: a
# demo claims only what that check shows. Read the answers as you read lesson 05's examples: the
# form is right every time, the content often is not, and a question worded unlike its template
# can fail even where the template was trained. `cpu_small` was tuned on English only: its
# answer to the Korean question is not a Korean decomposition (lesson 01 says why). `cpu_ko` is
# tuned on Korean: its run in `docs/runs/cpu_ko/` answers in Korean (there this Korean question
# is a training question, as its check cell says; lesson 05's real section is the honest test).
#
# > **[한국어]** **사용하기: `qd decompose`.** 터미널에서 `qd decompose --model RUN/export/merged
# > "질문"`(어댑터 폴더도 됩니다), 여러 질문은 `--file questions.txt`, 프로그램용 출력은
# > `--format json`입니다. 아래는 같은 일을 파이썬에서 네 질문에 합니다. 학습한 틀처럼 표현된 질문
# > 하나(도시 비교), StrategyQA dev의 실제 질문 둘(파일의 처음 두 개: 잘 나와서 고른 것이
# > 아닙니다), 한국어 질문 하나입니다. 그 앞 셀은 이 실행의 학습 데이터에서 어느 질문으로
# > 학습했는지 확인합니다. 데모는 이 확인이 보여 주는 것만 주장합니다. 답은 05번의 예제처럼
# > 읽으세요. 형식은 매번 맞지만 내용은 자주 틀리고, 틀과 다르게 표현된 질문은 그 틀을 학습했어도
# > 틀릴 수 있습니다. `cpu_small`은 영어로만 튜닝되어서 한국어 질문에 한국어 분해를 쓰지 못합니다
# > (이유는 01번에). 한국어로 튜닝한 `cpu_ko`의 실행(`docs/runs/cpu_ko/`)은 한국어로
# > 답합니다(거기서는 이 한국어 질문이 학습 질문이라는 것을 확인 셀이 보여 줍니다. 정직한
# > 시험은 05번의 real 구역입니다).

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.data import load_records, normalize_question

dev = load_records(cfg.resolve_path("data/strategyqa/dev.jsonl")).records
demo = ["Which city has more people, Seoul or Busan?",
        dev[0]["question"], dev[1]["question"],
        "서울과 부산 중 인구가 더 많은 도시는?"]
train_questions = [r["question"] for r in load_records(run / "data/train.jsonl").records]
trained = {normalize_question(q) for q in train_questions}
for q in demo:
    print("trained on" if normalize_question(q) in trained else "never trained on", "|", q)

# %%
from qdlib.cli import main as qd

exit_code = qd(["decompose", "--model", str(merged_dir), *demo])

# %% [markdown]
# ## What you learned
# - An adapter is small and needs the base; a merged model stands alone. Two plain calls make
#   it: `PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()`.
# - Merging adds $\frac{\alpha}{r} BA$ into $W$: do it on unquantized weights, never 4-bit ones.
# - Check parity after export, outside your own code: the model you ship must be the model you
#   evaluated.
#
# > **[한국어]** **정리.** 어댑터는 작고 베이스 모델이 있어야 하며, 병합된 모델은 그것만으로 쓸 수
# > 있습니다. 기본
# > 호출 두 개로 만듭니다: `PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()`. 병합은
# > $W$에 $\frac{\alpha}{r} BA$를 더하는 일이므로, 4비트가 아닌 양자화하지 않은 가중치에 하세요.
# > 내보낸 뒤에는 여러분 코드 밖에서 동일성(parity)을 확인하세요. 배포하는 모델은 평가한 바로 그
# > 모델이어야 합니다.
#
# ## Exercises
#
# > **[한국어]** **연습 문제.** 🐢 쉬움, 🐕 보통, 🦁 도전. 풀이는 문제 아래에 접혀 있습니다.

# %% [markdown] tags=["exercise"]
# 🐢 **Easy.** How much disk space do `export/adapter` and `export/merged` take, and why so
# different?
#
# > **[한국어]** 🐢 **쉬움.** `export/adapter`와 `export/merged`는 디스크를 얼마나 차지하고, 왜
# > 그렇게 다른가요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
def folder_mb(folder):
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


print(f"adapter {folder_mb(run / 'export/adapter'):.1f} MB, "
      f"merged {folder_mb(merged_dir):.1f} MB")
# The adapter holds only A and B for each adapted layer (and the tokenizer); the merged folder
# holds every weight of the model.
# 어댑터는 층마다 A와 B만(그리고 토크나이저를) 담고, 병합된 폴더는
# 모델의 모든 가중치를 담습니다.

# %% [markdown] tags=["exercise"]
# 🐕 **Medium.** Why not merge into 4-bit weights? Round the merged weight of the layer above to
# 4-bit NF4 (`bitsandbytes.functional.quantize_4bit`, then `dequantize_4bit`) and compare the
# rounding error with the size of the LoRA update itself.
#
# > **[한국어]** 🐕 **보통.** 왜 4비트 가중치에 병합하면 안 될까요? 위 층의 병합된 가중치를 4비트
# > NF4로 반올림하고(`bitsandbytes.functional.quantize_4bit` 다음 `dequantize_4bit`), 그 반올림
# > 오차를 LoRA 갱신 자체의 크기와 비교하세요.

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
import bitsandbytes.functional as bnbf

packed, state = bnbf.quantize_4bit(W_merged.detach().contiguous(), quant_type="nf4")
rounded = bnbf.dequantize_4bit(packed, state)
print(f"size of the LoRA update       {update.norm():.4f}")
print(f"4-bit rounding error, merged  {(rounded - W_merged).norm():.4f}")
# The rounding error is as large as the update or larger: in 4-bit, much of what training
# learned would be rounded away. Keep the merge in full precision and quantize afterwards if you
# must, then evaluate the quantized model again.
# 반올림 오차가 갱신만큼 크거나 더 큽니다. 4비트에서는 학습으로 배운 것의 상당 부분이
# 반올림으로 사라집니다. 병합은 완전한 정밀도에서 하고, 꼭 필요하면 그 뒤에 양자화한 다음
# 양자화한 모델을 다시 평가하세요.

# %% [markdown] tags=["exercise"]
# 🦁 **Stretch.** Save the merged model in bfloat16 and run the parity check on it for the first
# eight questions. How many answers stay identical? Why is greedy decoding the right way to
# test parity?
#
# > **[한국어]** 🦁 **도전.** 병합된 모델을 bfloat16으로 저장하고 처음 여덟 질문으로 동일성 검사를
# > 하세요. 몇 개의 답이 그대로인가요? 동일성 검사에는 왜 탐욕적 디코딩이 맞을까요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
import tempfile

# 병합된 폴더를 bfloat16으로 읽어 다시 저장합니다
half_model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.bfloat16)  # read, cast
with tempfile.TemporaryDirectory() as tmp:
    half_model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    half = parity_with_plain_transformers(tmp, tokenizer, questions[:8], reference[:8], **settings)
print("bfloat16:", half)
# bfloat16 keeps 8 bits of mantissa: every logit moves a little, and where the two best tokens
# are nearly tied an answer can flip (how many did is printed above; try all the questions).
# Greedy decoding is deterministic, so any difference is the model's, not chance; with sampling,
# two identical models would differ too.
# bfloat16의 가수는 8비트입니다. 모든 로짓이 조금씩 움직이고, 가장 좋은 두 토큰이 거의 같은
# 곳에서는 답이 뒤집힐 수 있습니다(몇 개가 뒤집혔는지는 위에 출력됩니다. 모든 질문으로 해
# 보세요). 탐욕적 디코딩은 결정적이므로 차이는 우연이 아니라 모델 탓입니다. 샘플링이라면 같은
# 두 모델도 다르게 답합니다.

# %% [markdown] tags=["questionnaire"]
# ## Questionnaire
# Answer in your own words, then open the answers below.
#
# 1. What does the adapter folder hold, and what does the merged folder hold?
# 2. What does `merge_and_unload()` add to each adapted weight?
# 3. Why merge into unquantized weights, even after QLoRA?
# 4. What does the parity check compare?
#
# > **[한국어]** **확인 문제.** 먼저 스스로 답해 본 뒤, 아래의 답을 펼쳐 보세요.
# > 1. 어댑터 폴더와 병합된 폴더에는 각각 무엇이 들었을까요?
# > 2. `merge_and_unload()`는 어댑터가 붙은 가중치마다 무엇을 더할까요?
# > 3. QLoRA로 학습했어도 왜 양자화하지 않은 가중치에 병합할까요?
# > 4. 동일성(parity) 확인은 무엇을 비교할까요?

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers.**
#
# 1. The adapter: only A and B for each adapted layer, its config and the tokenizer (it needs the
#    base model). The merged folder: every weight, loadable without peft.
# 2. $\frac{\alpha}{r} B A$; the LoRA layers are removed and a plain `transformers` model is left.
# 3. In 4 bits the rounding error is as large as the update or larger: much of what training learned
#    would be rounded away.
# 4. The merged model, loaded again without qdlib, against base + adapter: the same greedy answers
#    on the same questions.
#
# > **[한국어]** **답.**
# > 1. 어댑터에는 층마다 A와 B, 설정, 토크나이저만 들어 있어 베이스 모델이 필요합니다. 병합된
# >    폴더에는 모든 가중치가 들어 있어 peft 없이 불러옵니다.
# > 2. $\frac{\alpha}{r} B A$를 더하고, LoRA 층을 없애 평범한 `transformers` 모델을 남깁니다.
# > 3. 4비트에서는 반올림 오차가 갱신만큼 크거나 더 커서, 학습으로 배운 것의 상당 부분이 반올림으로
# >    사라집니다.
# > 4. qdlib 없이 다시 불러온 병합 모델과 베이스 + 어댑터를 비교합니다. 같은 질문에 같은 탐욕적 답을
# >    내야 합니다.
