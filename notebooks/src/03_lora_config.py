# %% [markdown]
# # 03 · LoRA config: where the adapters go, how big they are, and what they buy
#
# **Goal:** choose which layers get LoRA adapters and how big they are, write the `LoraConfig`
# yourself, attach it with `get_peft_model`, and see what share of the model trains. Then a small
# experiment on the real model: what rank, DoRA and rsLoRA cost and buy for the same budget.
#
# > **[한국어]** **03 · LoRA 설정: 어댑터(adapter)를 어디에, 얼마나 크게 붙이고, 무엇을 얻는가.**
# > 어떤 층에 LoRA 어댑터를 얼마나 크게 붙일지 정하고, `LoraConfig`를 직접 쓰고, `get_peft_model`로
# > 붙인 뒤 모델의 몇 퍼센트가 학습되는지 봅니다. 그다음 실제 모델로 작은 실험을 합니다. 같은
# > 예산에서 랭크(rank), DoRA, rsLoRA가 무엇을 치르고 무엇을 얻는지 봅니다.

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
# True면 랭크 실험을 여기서 돌립니다(2코어에서 약 8분)
rank_experiment = False  # True: run the rank experiment here (~8 minutes on 2 cores)

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## The idea: a frozen weight, and a small update beside it
# LoRA (Hu et al., 2021) freezes every base weight $W$ ($d_{out} \times d_{in}$) and learns a
# low-rank update next to it: $W x + \frac{\alpha}{r} B A x$, with $A$ of shape $r \times d_{in}$
# and $B$ of shape $d_{out} \times r$. Only $A$ and $B$ train: $r (d_{in} + d_{out})$ values
# instead of $d_{in} d_{out}$. $B$ starts at zero, so training starts from the base model exactly;
# after training, $B A$ can be added into $W$ (lesson 06 merges it).
#
# > **[한국어]** **발상: 고정된 가중치와, 그 옆의 작은 갱신.** LoRA(Hu 외, 2021)는 기본 가중치
# > $W$($d_{out} \times d_{in}$)를 모두 고정하고 그 옆에 낮은 랭크의 갱신 $\frac{\alpha}{r} B A x$를
# > 배웁니다. $A$는 $r \times d_{in}$, $B$는 $d_{out} \times r$ 모양이고, 이 둘만 학습하므로
# > $d_{in} d_{out}$ 대신 $r (d_{in} + d_{out})$개의 값만 배웁니다. $B$는 0에서 시작하므로 학습은
# > 정확히 베이스 모델에서 출발하고, 학습이 끝나면 $B A$를 $W$에 더해 합칠(merge) 수 있습니다(06번).

# %%
from qdlib.pictures import lora_update

lora_update(d=12, r=2)

# %%
from qdlib.model import load_model

base_model = load_model(cfg)

# %% [markdown]
# ## The config, written out
# Every linear layer in the transformer blocks can take an adapter: the attention projections
# (`q_proj`, `k_proj`, `v_proj`, `o_proj`) and the MLP (`gate_proj`, `up_proj`, `down_proj`).
# Adapting all of them is the QLoRA paper's advice. Here is the `peft.LoraConfig` for this
# profile, every argument with what to choose; `lora_config(cfg, model)` builds the same one from
# the profile, and the cell checks that they are equal.
#
# > **[한국어]** **설정을 직접 써 보기.** 트랜스포머 블록의 모든 선형층, 즉 어텐션 투영(`q_proj`,
# > `k_proj`, `v_proj`, `o_proj`)과 MLP(`gate_proj`, `up_proj`, `down_proj`)에 어댑터를 붙일 수
# > 있습니다. 모두 붙이는 것이 QLoRA 논문의 권고입니다. 아래는 이 프로필의 `peft.LoraConfig`이고,
# > 인자마다 무엇을 고르면 되는지 적었습니다. `lora_config(cfg, model)`은 프로필로 같은 설정을
# > 만들고, 셀은 둘이 같은지 확인합니다.

# %%
# NBVAL_CHECK_OUTPUT
from peft import LoraConfig, TaskType

from qdlib.lora import linear_module_names, lora_config

targets = cfg.lora.target_modules
written = LoraConfig(
    # 인과 언어 모델: peft가 기대하는 출력층과 손실
    task_type=TaskType.CAUSAL_LM,  # a causal language model: the head and the loss peft expects
    # 랭크: 8-64. 클수록 더 배우고 더 비쌉니다(아래 실험)
    r=cfg.lora.r,  # the rank: 8-64; more learns more and costs more (the experiment below)
    # 갱신은 alpha / r배가 됩니다: alpha = 2r이 흔합니다
    lora_alpha=cfg.lora.alpha,  # the update is scaled by alpha / r: alpha = 2r is common
    # 0.0-0.1: 긴 학습에서 약간의 정규화
    lora_dropout=cfg.lora.dropout,  # 0.0-0.1: some regularisation on long runs
    target_modules=linear_module_names(base_model) if targets == "all-linear" else targets,
    # 편향은 학습하지 않습니다: 어댑터가 작고 깔끔하게 병합됩니다
    bias="none",  # train no biases: the adapter stays small and merges cleanly
    # alpha / sqrt(r)로 곱합니다: 큰 랭크에서 더 안정적
    use_rslora=cfg.lora.use_rslora,  # scale by alpha / sqrt(r): steadier for large ranks
    # 크기와 방향을 따로 학습: 조금 낫고 더 느립니다
    use_dora=cfg.lora.use_dora,  # learn magnitude and direction apart: a little better, slower
)
lora_cfg = lora_config(cfg, base_model)
print("the same as lora_config(cfg, model):", written == lora_cfg)
print("adapted:", sorted(written.target_modules))
print(f"r={written.r}, alpha={written.lora_alpha}, alpha/r = {written.lora_alpha / written.r}")

# %% [markdown]
# `alpha / r` is the update's scale. Keep `alpha = 2r` and the scale stays 2 when you change the
# rank, so the learning rate you found still fits. Keep alpha fixed instead and raise r, and
# $\alpha / r$ falls as $1/r$: rsLoRA (`use_rslora`) scales by $\alpha / \sqrt{r}$, which its
# authors argue keeps high ranks learning. The `cpu_tiny` profile also adapts `lm_head`, the output
# layer: the tiny model's is random, and a frozen random output layer cannot become confident
# about any token. Real-model profiles leave it out.
#
# > **[한국어]** `alpha / r`은 갱신의 배율입니다. `alpha = 2r`로 두면 랭크를 바꿔도 배율이 2로
# > 유지되어 찾아 둔 학습률이 그대로 맞습니다. 반대로 alpha를 고정하고 r을 키우면 $\alpha / r$이
# > $1/r$로 줄어듭니다. rsLoRA(`use_rslora`)는 배율을 $\alpha / \sqrt{r}$로 두는데, 저자들은 이렇게
# > 해야 큰 랭크도 계속 배운다고 주장합니다. `cpu_tiny` 프로필은 출력층 `lm_head`에도 어댑터를
# > 붙입니다. tiny 모델의
# > 출력층은 랜덤이라, 고정된 랜덤 출력층으로는 어떤 토큰도 자신 있게 고를 수 없습니다. 실제 모델의
# > 프로필은 붙이지 않습니다.

# %% [markdown]
# ## Attach it: `get_peft_model`
# `get_peft_model` wraps the base model: each targeted linear becomes a LoRA layer holding the
# frozen weight and the trainable $A$ and $B$. peft's own count, `print_trainable_parameters`,
# divides by *all* parameters of the wrapped model (the base **plus** the adapters). The rank
# table divides by the base model alone. Two denominators, two slightly different shares: say
# which one you quote.
#
# > **[한국어]** **붙이기: `get_peft_model`.** `get_peft_model`은 베이스 모델을 감쌉니다. 대상
# > 선형층마다 고정된 가중치와 학습되는 $A$, $B$를 가진 LoRA 층이 됩니다. peft의
# > `print_trainable_parameters`는 감싼 모델의 *모든* 매개변수(베이스 모델 **더하기** 어댑터)로
# > 나눕니다. 아래 랭크 표는 베이스 모델만으로 나눕니다. 분모가 둘이라 비율이 조금 다릅니다. 어느
# > 쪽을
# > 말하는지 밝히세요.

# %%
# NBVAL_CHECK_OUTPUT
from peft import get_peft_model
from transformers import set_seed

# B는 0에서 시작하고, A의 무작위 시작값은 시드가 정합니다
set_seed(cfg.seed)  # B starts at zero; A's random start is fixed by the seed
peft_model = get_peft_model(base_model, written)
peft_model.print_trainable_parameters()

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.lora import lora_parameter_count

base_size = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" not in n)
for r in (4, 8, 16, 32, 64):
    n = lora_parameter_count(base_model, sorted(written.target_modules), r)
    print(f"r={r:3d}: {n:>10,} trainable = {100 * n / base_size:5.2f}% of the base "
          f"({100 * n / (base_size + n):5.2f}% of base + adapters)")

# %%
from qdlib.lora import save_lora_config

# lora_cfg.save_pretrained, 파일을 통째로 씁니다
save_lora_config(lora_cfg, run / "lora")  # lora_cfg.save_pretrained, written whole
print("saved", sorted(p.name for p in (run / "lora").iterdir()))

# %% [markdown]
# ## What rank, DoRA and rsLoRA buy: an experiment on the real model
# Same start, same examples in the same order, same number of steps (the budget: 24 steps of 8
# examples), then the same 16 held-out questions. Five variants: rank 4, 16 and 64, rank 16 with
# rsLoRA, rank 16 with DoRA. The numbers below come from a real run of the `cpu_small` model
# (`scripts/rank_experiment.py`, kept in `benchmarks/results/`); set `rank_experiment = True` to
# run it here (about 8 minutes on 2 cores; the kept run printed below says how long it took).
#
# > **[한국어]** **랭크, DoRA, rsLoRA가 주는 것: 실제 모델로 한 실험.** 같은 시작점, 같은 순서의
# > 같은 예제, 같은 step 수(예산: 8개씩 24 step)로 학습한 뒤 같은 평가 질문 16개로 잽니다. 변형은
# > 다섯 가지: 랭크 4, 16, 64, 랭크 16 + rsLoRA, 랭크 16 + DoRA. 아래 숫자는 `cpu_small` 모델로
# > 실제로 돌린 결과 (`scripts/rank_experiment.py`, `benchmarks/results/`에 보관)이고,
# > `rank_experiment = True`로 두면 여기서 직접 돌립니다(2코어에서 약 8분. 아래에 출력되는 보관된
# > 실행이
# > 걸린 시간을 알려 줍니다).

# %%
from IPython.display import Markdown, display

from qdlib.experiments import disagreements, plot_rank_experiment, rank_table
from qdlib.files import read_json

if rank_experiment:
    from qdlib.experiments import rank_experiment as run_it

    results, where = run_it(cfg), f"{cfg.model.name}, this run"
else:
    kept = read_json(cfg.resolve_path("benchmarks/results/rank_experiment.json"))
    # 저장된 실행: 어떤 프로필, 머신, 예산이었는지
    meta = kept["meta"]  # the kept run: which profile, machine and budget
    results = kept["results"]
    where = f"{meta['profile']} on {meta['machine']}, {meta['steps']} steps"
display(Markdown(f"Measured on {where}:\n\n" + rank_table(results)))
# 변형들이 다르게 답한 질문
for case in disagreements(results):  # questions the variants answered differently
    print(case["question"])
    for variant, answer in case["answers"].items():
        print(f"  {variant}: " + answer.replace("\n", " | "))
plot_rank_experiment(results)

# %% [markdown]
# How to read it (the numbers are those of the kept run; with 16 questions, one question moves a
# score by 0.06):
# - **Cost.** Trainable values grow linearly with the rank (1.2 M, 4.9 M, 19.5 M); time per step
#   much less: rank 64 took about 13% longer per step than rank 4, because the frozen model's
#   forward and backward pass is most of the work.
# - **Learning.** The loss after 24 steps falls with the rank (0.090, 0.081, 0.057), yet every
#   variant writes the format, and exact match moves by one question (0.75 to 0.81): noise. Rank
#   4 is where too little shows: for "Manila or Rome" it asks "In what city is Manila larger?"
#   where the others ask for the two populations.
# - **rsLoRA** at r=16 only makes the scale 4x larger ($\alpha/\sqrt{r}$ = 8 instead of
#   $\alpha/r$ = 2). Here that bought no lower loss (0.085 against 0.081) and the same exact match.
#   Its claimed benefit is at high rank with a fixed alpha, which this experiment (alpha = 2r for
#   every variant) does not test: that would be r=64 with alpha=16, plain against rsLoRA.
# - **DoRA** learns a magnitude per output feature (156 k more values) and took about 18% longer
#   per step, for a loss a little lower (0.077 against 0.081) and the same score: in a budget this
#   short, not worth its time.
#
# So the profile's r=16 gives nothing away here, at a quarter of rank 64's values. Rank buys
# capacity, which matters for harder data or longer training, not for a regular format learned
# from a few hundred examples.
#
# > **[한국어]** 읽는 법(숫자는 보관된 실행의 것입니다. 질문이 16개라서 질문 하나가 점수를 0.06
# > 움직입니다).
# > - **비용.** 학습되는 값은 랭크에 비례해 늘지만(1.2 M, 4.9 M, 19.5 M) step당 시간은 훨씬 덜
# >   늘어납니다. 랭크 64는 랭크 4보다 step마다 약 13% 더 걸렸습니다. 고정된 모델의 순전파·역전파가
# >   일의 대부분이기 때문입니다.
# > - **학습.** 24 step 뒤의 손실은 랭크가 클수록 낮지만(0.090, 0.081, 0.057), 모든 변형이 형식을
# >   지키고 exact match는 질문 하나만큼(0.75에서 0.81) 움직입니다. 잡음입니다. 랭크가 부족한 티는
# >   랭크 4에서 납니다. "Manila or Rome"에 다른 변형은 두 도시의 인구를 묻는데, 랭크 4는 "In what
# >   city is Manila larger?"라고 씁니다.
# > - **rsLoRA**는 r=16에서 배율을 4배로 키울 뿐입니다($\alpha/r$ = 2 대신 $\alpha/\sqrt{r}$ = 8).
# >   여기서는 손실이 더 낮아지지 않았고(0.081 대신 0.085) 완전 일치도 같았습니다. rsLoRA의 장점은
# >   alpha를 고정한 큰 랭크에서 나타난다는 것인데, 이 실험은 모든 변형에 alpha = 2r을 써서 그것을
# >   시험하지 않습니다. 그러려면 alpha=16으로 고정한 r=64에서 보통 LoRA와 rsLoRA를 비교해야 합니다.
# > - **DoRA**는 출력 특징마다 크기(magnitude)를 하나씩 더 배우고(15만 6천 개 더) 스텝마다 약 18% 더
# >   걸렸습니다. 손실은 조금 낮았지만(0.081 대신 0.077) 점수는 같았습니다. 이렇게 짧은 예산에서는
# >   그 시간만큼의 값어치가 없습니다.
# >
# > 그러니 프로필의 r=16은 랭크 64의 4분의 1 값으로 여기서 잃는 것이 없습니다. 랭크는 용량을 사고,
# > 용량은 더 어려운 데이터나 더 긴 학습에서 중요하지, 예제 몇백 개로 배우는 규칙적인 형식에서는
# > 중요하지 않습니다.

# %% [markdown]
# ## What each setting costs in GPU memory
# LoRA, its gradients and its optimizer states grow with the rank: small at r=16, four times that
# at r=64. Gradient checkpointing and the tokens per batch matter even more: activations and
# logits grow with every token. Each row changes one setting of the rtx4060 profile (GiB):
#
# > **[한국어]** **설정마다 드는 GPU 메모리.** LoRA와 그 기울기, 옵티마이저 상태는 랭크에 따라
# > 늘어납니다(r=16에서 작고, r=64에서 네 배). 기울기 체크포인팅과 배치당 토큰 수는 더
# > 중요합니다. 활성값과 로짓이 토큰마다 늘기 때문입니다. 각 줄은 rtx4060 프로필의 설정 하나만 바꾼
# > 것입니다(GiB).

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
# ## What you learned
# - LoRA trains two small matrices per adapted layer; the base stays frozen.
# - `r` sets the size, `alpha / r` (or `alpha / sqrt(r)` with rsLoRA) the strength.
# - "Trainable share" has two denominators: the base, or the base plus the adapters.
# - For a short run on a regular format, a mid rank is enough; DoRA costs time.
#
# > **[한국어]** **정리.** LoRA는 붙인 층마다 작은 행렬 두 개만 학습하고 베이스 모델은 고정합니다.
# > `r`이 크기를, `alpha / r`(rsLoRA에서는 `alpha / sqrt(r)`)이 세기를 정합니다. "학습 비율"에는
# > 분모가 둘 있습니다(베이스 모델, 또는 베이스 모델 더하기 어댑터). 규칙적인 형식을 짧게 학습할
# > 때는
# > 중간 랭크로 충분하고, DoRA는 시간이 더 듭니다.
#
# ## Exercises
#
# > **[한국어]** **연습 문제.** 🐢 쉬움, 🐕 보통, 🦁 도전. 풀이는 문제 아래에 접혀 있습니다.

# %% [markdown] tags=["exercise"]
# 🐢 **Easy.** Adapt only `q_proj` and `v_proj` (the original LoRA paper's choice): how many
# values train now, and what share of the base is that?
#
# > **[한국어]** 🐢 **쉬움.** `q_proj`와 `v_proj`에만 어댑터를 붙이면(원래 LoRA 논문의 선택) 몇 개의
# > 값이 학습되고, 베이스 모델의 몇 퍼센트인가요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
n = lora_parameter_count(base_model, ["q_proj", "v_proj"], cfg.lora.r)
print(f"{n:,} values, {100 * n / base_size:.2f}% of the base")

# %% [markdown] tags=["exercise"]
# 🐕 **Medium.** On `Qwen/Qwen2.5-3B-Instruct` (the rtx4060 model: its architecture ships with
# qdlib), what share would `r=16, all-linear` train? Use `qdlib.memory.lora_parameters`.
#
# > **[한국어]** 🐕 **보통.** `Qwen/Qwen2.5-3B-Instruct`(rtx4060 모델: 구조 숫자가 qdlib에 들어
# > 있습니다)에서 `r=16, all-linear`는 몇 퍼센트를 학습할까요? `qdlib.memory.lora_parameters`를
# > 쓰세요.

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
from qdlib.memory import ARCHITECTURES, linear_shapes, lora_parameters, parameter_counts

qwen = ARCHITECTURES["Qwen/Qwen2.5-3B-Instruct"]
trained = lora_parameters(qwen, list(linear_shapes(qwen)), 16)
total = sum(parameter_counts(qwen).values())
print(f"{trained:,} of {total:,}: {100 * trained / total:.2f}% of the base")

# %% [markdown] tags=["exercise"]
# 🦁 **Stretch.** Check that the LoRA layers change nothing at the start: compare the logits of the
# wrapped model and of the base (with the adapters switched off) on one prompt.
#
# > **[한국어]** 🦁 **도전.** 처음에는 LoRA 층이 아무것도 바꾸지 않는지 확인하세요. 프롬프트
# > 하나에서 감싼 모델과 (어댑터를 끈) 베이스 모델의 로짓을 비교하세요.

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
import torch

from qdlib.model import load_tokenizer

ids = load_tokenizer(cfg)("Which is older, A or B?", return_tensors="pt")["input_ids"]
with torch.no_grad():
    wrapped = peft_model(ids).logits
    with peft_model.disable_adapter():
        plain = peft_model(ids).logits
# B가 0에서 시작하므로 B A x = 0
print("identical at the start:", torch.equal(wrapped, plain))  # B starts at zero: B A x = 0

# %% [markdown] tags=["questionnaire"]
# ## Questionnaire
# Answer in your own words, then open the answers below.
#
# 1. Why does a LoRA model start out exactly equal to the base model?
# 2. What does `alpha = 2r` keep the same when you change the rank?
# 3. Why did rank 64 cost only a little more time per step than rank 4?
# 4. Why do the `cpu_tiny` profile's adapters include `lm_head` and the real models' not?
#
# > **[한국어]** **확인 문제.** 먼저 스스로 답해 본 뒤, 아래의 답을 펼쳐 보세요.
# > 1. LoRA 모델은 왜 처음에 베이스 모델과 똑같을까요?
# > 2. `alpha = 2r`로 두면 랭크를 바꿔도 무엇이 그대로일까요?
# > 3. 랭크 64가 랭크 4보다 스텝당 시간이 조금밖에 더 들지 않은 이유는 무엇일까요?
# > 4. `cpu_tiny` 프로필은 왜 `lm_head`에도 어댑터를 붙이고 실제 모델은 붙이지 않을까요?

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers.**
#
# 1. B starts at zero, so the update $B A x$ is zero until training moves B.
# 2. The update's scale $\alpha / r = 2$, so the learning rate that worked at one rank still fits at
#    another.
# 3. The frozen model's forward and backward pass is most of the work; the adapters are small beside
#    it.
# 4. The tiny model's output layer is random: frozen, it could never become confident about a token.
#    A pretrained output layer already is.
#
# > **[한국어]** **답.**
# > 1. B가 0에서 시작하므로, 학습이 B를 움직이기 전까지 갱신 $B A x$는 0입니다.
# > 2. 갱신의 배율 $\alpha / r = 2$입니다. 그래서 한 랭크에서 맞던 학습률이 다른 랭크에서도
# >    맞습니다.
# > 3. 고정된 모델의 순전파와 역전파가 일의 대부분이고, 어댑터는 그에 비해 작기 때문입니다.
# > 4. tiny 모델의 출력층은 무작위라서 고정하면 어떤 토큰도 자신 있게 고를 수 없습니다. 사전학습된
# >    출력층은 이미 그럴 수 있습니다.
