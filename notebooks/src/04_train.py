# %% [markdown]
# # 04 · Train: fit the adapters with the Hugging Face Trainer
#
# **Goal:** train the LoRA adapters on the training split, watch the loss fall, and save the
# adapter. We use `transformers.Trainer` as its authors intend, and build every object it needs
# here, in the open: the collator, the `TrainingArguments` and the `Trainer` itself.
#
# > **[한국어]** **04 · 학습: Hugging Face Trainer로 어댑터 맞추기.** 학습 분할로 LoRA 어댑터를
# > 학습하고, 손실(loss)이 떨어지는 것을 보고, 어댑터를 저장합니다. `transformers.Trainer`를 만든
# > 사람들이 의도한 대로 쓰며, Trainer에 필요한 것(콜레이터, `TrainingArguments`, `Trainer` 자체)을
# > 여기서 드러내 놓고 만듭니다.

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
# True면 run_dir의 가장 최근 완전한 체크포인트에서 이어 학습합니다(qd run --resume)
resume = False  # True: continue from the newest complete checkpoint in run_dir (qd run --resume)

# %%
from qdlib.runs import start_lesson

cfg, run = start_lesson(profile, run_dir, seed=seed, data=data, model=model, lora=lora,
                        training=training, evaluation=evaluation, export=export)

# %% [markdown]
# ## Inputs from earlier lessons
# The splits from lesson 01 and the LoRA config from lesson 03.
#
# > **[한국어]** **앞 노트북의 결과.** 01번의 분할과 03번의 LoRA 설정을 불러옵니다.

# %%
# NBVAL_CHECK_OUTPUT
from peft import LoraConfig

from qdlib.data import load_records
from qdlib.model import load_tokenizer
from qdlib.prompts import tokenize_splits

train_records = load_records(run.require("data/train.jsonl")).records
eval_records = load_records(run.require("data/eval.jsonl")).records
# 03번이 저장한 것
lora_cfg = LoraConfig.from_pretrained(run.require("lora"))  # what lesson 03 saved
tokenizer = load_tokenizer(cfg)
tokenized = tokenize_splits(train_records, eval_records, tokenizer, cfg.data.max_seq_length,
                            cfg.data.language)
print(tokenized.report())

# %% [markdown]
# ## The collator: batches without wasted padding
# The original project padded every example to `max_seq_length`. Here the collator pads each
# batch only to its longest example, and length-grouped sampling puts examples of similar length
# together. Labels are padded with `-100`, so padding is never trained, while the EOS at the end
# of each answer keeps its label.
#
# With `training.packing: true` (the GPU profiles) there is no padding at all: the batch's
# examples are laid end to end in one row, and `position_ids` restart at 0 for each, which
# transformers turns into one attention block per example. The loss is the same; the wasted
# work is gone. The picture shows it on four examples of this run.
#
# > **[한국어]** **콜레이터(collator): 패딩 낭비 없는 배치.** 원래 프로젝트는 모든 예제를
# > `max_seq_length`까지 패딩했습니다. 여기서는 콜레이터가 배치마다 가장 긴 예제까지만 패딩하고,
# > 길이가 비슷한 예제끼리 묶어 뽑습니다. 레이블은 `-100`으로 패딩하므로 패딩은 학습되지 않고, 답
# > 끝의 EOS는 레이블을 그대로 가집니다. GPU 프로필의 `training.packing: true`에서는 패딩이 아예
# > 없습니다. 예제들을 한 줄로 이어 붙이고 `position_ids`를 예제마다 0부터 다시 시작하면,
# > transformers가 예제마다 어텐션 블록 하나씩을 만듭니다. 손실은 같고 낭비는 사라집니다. 그림은 이
# > 실행의 예제 네 개입니다.

# %%
from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

from qdlib.pictures import batch_layouts

padded = DataCollatorForSeq2Seq(
    tokenizer,
    # max_seq_length가 아니라 배치에서 가장 긴 예제까지
    padding="longest",  # to the longest example of each batch, not to max_seq_length
    # 패딩은 학습하지 않고, 답의 EOS는 레이블을 유지합니다
    label_pad_token_id=-100,  # padding is never trained; the answer's EOS keeps its label
    return_tensors="pt",
)
# 한 줄, 패딩 없음
packed = DataCollatorWithFlattening(separator_id=-100, return_tensors="pt")  # one row, no pad
collator = packed if cfg.training.packing else padded
batch_layouts([len(tokenized.train[i]["input_ids"]) for i in range(4)])

# %%
# NBVAL_CHECK_OUTPUT
examples = [tokenized.train[i] for i in range(cfg.training.batch_size)]
trained = sum(sum(label != -100 for label in e["labels"]) for e in examples)
ways = {
    f"padded to max_seq_length ({cfg.data.max_seq_length})":
        (len(examples), cfg.data.max_seq_length),
    "padded to the longest in the batch": tuple(padded(examples)["input_ids"].shape),
    "packed, padding-free": tuple(packed(examples)["input_ids"].shape),
}
for name, (rows, width) in ways.items():
    real = sum(len(e["input_ids"]) for e in examples)
    print(f"{name:>40}: {rows:2d} x {width:4d} = {rows * width:5d} positions, "
          f"{100 * (1 - real / (rows * width)):4.1f}% padding, {trained} tokens trained")

# %% [markdown]
# ## `TrainingArguments`: every setting of the run
# The profile's `training` section, as the Trainer takes it. Each argument says what to choose;
# `training_arguments(cfg, ...)` builds the same object from the profile, and the cell checks
# that both are equal.
#
# > **[한국어]** **`TrainingArguments`: 학습의 모든 설정.** 프로필의 `training` 절을 Trainer가 받는
# > 모양으로 씁니다. 인자마다 무엇을 고르면 되는지 적었고, `training_arguments(cfg, ...)`가 프로필로
# > 같은 객체를 만드는지 셀이 확인합니다.

# %%
# NBVAL_CHECK_OUTPUT
import torch
from transformers import TrainingArguments

from qdlib.model import resolve_dtype
from qdlib.train import training_arguments

t, on_gpu = cfg.training, torch.cuda.is_available()
# CPU에서는 float32
model_dtype = resolve_dtype(cfg.model.dtype)  # float32 on a CPU
args = TrainingArguments(
    # 체크포인트는 실행 디렉터리에 저장됩니다
    output_dir=str(run / "checkpoints"),  # checkpoints go into the run directory
    # 데이터를 몇 번 돌지. max_steps > 0이면 그쪽이 우선
    num_train_epochs=t.epochs,  # passes over the data; max_steps > 0 wins over it
    max_steps=t.max_steps,
    # 스텝당 예제 수(GPU마다)
    per_device_train_batch_size=t.batch_size,  # examples per step (per GPU)
    per_device_eval_batch_size=t.batch_size,
    # 메모리는 그대로, 배치는 더 크게
    gradient_accumulation_steps=t.gradient_accumulation_steps,  # a bigger batch, same memory
    # LoRA에는 1e-4에서 2e-3: 전체 미세조정보다 높게
    learning_rate=t.learning_rate,  # LoRA likes 1e-4 to 2e-3: higher than full fine-tuning
    # cosine: 처음엔 빠르게, 0까지 부드럽게 내려갑니다
    lr_scheduler_type=t.lr_scheduler,  # cosine: fast at first, gently down to zero
    # 1보다 작으면 전체 스텝 중 비율: 그동안 학습률을 올립니다
    warmup_steps=t.warmup_ratio,  # below 1: a share of the steps, ramping the rate up
    weight_decay=t.weight_decay,
    # 기울기를 자릅니다: 배치 하나가 모델을 흔들지 못하게
    max_grad_norm=t.max_grad_norm,  # clip the gradient: no single batch throws the model off
    # adamw_torch. 8 GB 카드에서는 paged_adamw_8bit
    optim=t.optimizer,  # adamw_torch; paged_adamw_8bit on an 8 GB card
    # 비슷한 길이끼리 한 배치(패딩이 적음). 한 소스가 학습을 마무리하면(finish_fraction)
    # 순서는 아래 finishing_order가 이미 정했으므로 그대로(sequential) 읽습니다
    # Similar lengths per batch (little padding). When a source finishes the run
    # (finish_fraction), finishing_order below has set the order: read it as it is (sequential)
    train_sampling_strategy=("sequential" if cfg.finish_steps()
                             else "group_by_length" if t.group_by_length else "random"),
    logging_steps=t.logging_steps,
    logging_first_step=True,
    # 떼어 둔 답의 손실을 볼지 말지
    eval_strategy="steps" if t.eval_steps else "no",  # the loss on held-out answers, or not
    eval_steps=t.eval_steps,
    # 이어 학습할 체크포인트
    save_strategy="steps",  # checkpoints to resume from
    save_steps=t.save_steps,
    save_total_limit=t.save_total_limit,
    # bf16을 지원하는 GPU에서 혼합 정밀도
    bf16=on_gpu and model_dtype == torch.bfloat16,  # mixed precision on a GPU with bf16
    # 오래된 GPU에서. CPU에서는 float32
    fp16=on_gpu and model_dtype == torch.float16,  # on an older GPU; float32 on a CPU
    use_cpu=not on_gpu,
    # 여기서는 프로세스 하나. torchrun 아래의 qd train은 gloo나 nccl
    ddp_backend=None,  # one process here; qd train under torchrun sets gloo or nccl
    # 어댑터의 시작값과 예제 순서: 실행마다 같게
    seed=cfg.seed,  # the adapters' start and the order of examples: the same every run
    data_seed=cfg.seed,
    ddp_find_unused_parameters=False,
    # tensorboard, wandb, 또는 없음
    report_to=[] if t.report_to == "none" else [t.report_to],  # tensorboard, wandb, or nothing
    dataloader_num_workers=0,
    # 우리 열은 모델이 받는 것과 정확히 같습니다
    remove_unused_columns=False,  # our columns are exactly what the model takes
    disable_tqdm=False,
)
print("the same as training_arguments(cfg):",
      args.to_dict() == training_arguments(cfg, run / "checkpoints", model_dtype).to_dict())

# %% [markdown]
# ## The `Trainer`
# The model with its adapters (as lesson 03 made it), the arguments, the data and the collator.
# Two details matter for packing: the model's KV cache is for generation, and left on during
# training it would also switch off the per-example attention blocks, so it goes off; and
# `check_packing` proves on this very model that packed examples cannot see each other. One
# callback matters for resuming: the Trainer checks its step limit only *after* a step, so a
# finished run resumed would train one step too many; `StopWhenFinished` stops it first. And one
# saving: the output layer turns each position's hidden state into a score for every word of the
# vocabulary (Gemma 3: 262,144 words), and the loss needs those scores only where an answer token
# is predicted. `AnswerLogitsOnly` tells the model those positions; `answer_loss` scores them.
# Last, the order: a profile can let one source finish the run (`finish_fraction` on a source in
# `data.sources`: that share of the last steps), so that what the model learns last is that
# source's form. `finishing_order`
# puts those examples after the mix, and the Trainer reads them in that order.
#
# > **[한국어]** **`Trainer`.** 어댑터를 붙인 모델(03번처럼), 인자, 데이터, 콜레이터를 넘깁니다.
# > 패킹에는 두 가지가 중요합니다. 모델의 KV 캐시는 생성용이라, 학습 중에 켜 두면 예제별 어텐션
# > 블록도 꺼지므로 끕니다. 그리고 `check_packing`이 바로 이 모델에서 패킹된 예제끼리 서로 보지
# > 못함을 증명합니다. 이어 학습하기에는 콜백 하나가 중요합니다. Trainer는 step 한도를 step을 *마친
# > 뒤에야* 확인하므로, 끝난 학습을 이어 가면 한 step을 더 학습합니다. `StopWhenFinished`가 그 전에
# > 멈춥니다. 절약도 하나 있습니다. 출력층은 위치마다 은닉 상태를 어휘의 모든 단어(Gemma 3는
# > 262,144개)에 대한 점수로 바꾸는데, 손실에는 답의 토큰을 예측하는 위치의 점수만 필요합니다.
# > `AnswerLogitsOnly`가 모델에 그 위치를 알려 주고, `answer_loss`가 그 점수로 손실을 냅니다.
# > 마지막으로 순서입니다. 프로필은 소스 하나가 학습을 마무리하게 할 수 있습니다(`data.sources`의
# > 소스에 `finish_fraction`: 마지막 스텝 중 그 비율). 그러면 모델이 마지막에 배우는 것이 그
# > 소스의 형식이 됩니다.
# > `finishing_order`가 그 예제들을 섞인 데이터 뒤에 두고, Trainer는 그 순서대로 읽습니다.

# %%
from transformers import Trainer, set_seed

from qdlib.lora import attach_lora
from qdlib.model import load_model
from qdlib.train import (
    AnswerLogitsOnly,
    StopWhenFinished,
    answer_loss,
    check_packing,
    finishing_order,
    watch_generation,
)

set_seed(cfg.seed)
peft_model = attach_lora(load_model(cfg), lora_cfg, cfg.training.gradient_checkpointing, cfg.seed)
# KV 캐시는 생성용입니다(패킹도 깨뜨립니다)
peft_model.config.use_cache = False  # a KV cache is for generation (and breaks packing)
if cfg.training.packing:
    # 허용 오차
    check_packing(peft_model, tokenized.train[:3]["input_ids"], model_dtype)  # its tolerance
trainer = Trainer(
    model=peft_model,
    # 위의 TrainingArguments
    args=args,  # the TrainingArguments above
    # 한 소스가 마지막 스텝을 맡으면 그 예제가 맨 뒤에; 아니면 그대로
    train_dataset=finishing_order(tokenized.train, cfg),  # a finishing source's examples last
    eval_dataset=tokenized.eval if cfg.training.eval_steps else None,
    # The output layer (hidden size x vocabulary, per position) only where an answer token is
    # predicted: the batch says where (logits_to_keep), answer_loss scores those logits. The loss
    # is the model's own; the prompt's and the padding's logits are never computed.
    # 출력층(위치마다 은닉 크기 x 어휘)은 답의 토큰을 예측하는 위치에서만 계산합니다.
    # 배치가 그 위치를 알려 주고(logits_to_keep), answer_loss가 그 로짓으로 손실을 냅니다.
    # 손실은 모델 자신의 것과 같고, 프롬프트와 패딩의 로짓은 아예 계산하지 않습니다.
    data_collator=AnswerLogitsOnly(collator),
    compute_loss_func=answer_loss,
    processing_class=tokenizer,
    # 끝난 학습을 이어 가도 한 스텝도 더 학습하지 않습니다
    callbacks=[StopWhenFinished()],  # a finished run, resumed, trains no step more
)
# evaluation.generate_every가 있으면 과제 지표도
watch_generation(trainer, cfg, eval_records)  # with evaluation.generate_every: task metrics too
print(f"{t.epochs} epochs, batch {t.batch_size} x {t.gradient_accumulation_steps} accumulation, "
      f"lr {t.learning_rate}, {t.optimizer}, {len(tokenized.train)} examples")

# %% [markdown]
# `qd train` and every other way of training in qdlib build their Trainer with one function,
# `qdlib.train.setup`: load the model, attach the adapters, then `build_trainer`. Built from the
# same model, `build_trainer` must give a Trainer equal to the one above in everything that
# decides the training: the arguments, the dtype, the collator, the callbacks, the data.
#
# > **[한국어]** `qd train`을 비롯해 qdlib에서 학습하는 모든 길은 함수 하나,
# > `qdlib.train.setup`으로 Trainer를 만듭니다. 모델을 불러오고, 어댑터를 붙이고, `build_trainer`를
# > 부릅니다. 같은 모델로 만들면 `build_trainer`의 Trainer는 학습을 정하는 모든 것(인자, dtype,
# > 콜레이터, 콜백, 데이터)에서 위의 Trainer와 같아야 합니다.

# %%
# NBVAL_CHECK_OUTPUT
from qdlib.train import build_trainer, trainer_facts

built = build_trainer(peft_model, tokenizer, tokenized, cfg, run / "checkpoints", eval_records)
print("callbacks:", trainer_facts(trainer)["callbacks"])
print("the same as qdlib's build_trainer:", trainer_facts(trainer) == trainer_facts(built))

# %% [markdown]
# ## Train
# The Trainer logs the loss every few steps and saves checkpoints into the run directory, so an
# interrupted run can resume: with `resume = True` it continues from the newest *complete*
# checkpoint (one cut off by a crash is skipped, and the message says why; none at all is an
# error, never a silent restart). With `evaluation.generate_every` set, it also decodes a few
# eval questions now and then and logs task metrics: a loss can fall while the model still
# never stops.
#
# > **[한국어]** **학습.** Trainer는 몇 step마다 손실을 기록하고 체크포인트를 실행 디렉터리에
# > 저장하므로, 끊긴 학습을 이어 갈 수 있습니다. `resume = True`면 가장 최근의 *완전한*
# > 체크포인트부터 이어 갑니다(쓰다 만 체크포인트는 이유와 함께 건너뛰고, 하나도 없으면 처음부터
# > 조용히 다시 시작하지 않고 오류를 냅니다). `evaluation.generate_every`를 설정하면 가끔 평가 질문
# > 몇 개를 생성해 과제 지표도 기록합니다. 손실은 떨어지는데 모델이 여전히 멈추지 않을 수도 있기
# > 때문입니다.

# %%
from qdlib.train import NothingLeftToTrain, resume_point

# 완전한 체크포인트가 없으면 오류
checkpoint = resume_point(run / "checkpoints") if resume else None  # none complete: an error
try:
    result = trainer.train(resume_from_checkpoint=checkpoint)
    print(f"{result.global_step} steps in {result.metrics['train_runtime']:.0f}s")
# StopWhenFinished가 스텝 전에 냅니다
except NothingLeftToTrain as done:  # raised by StopWhenFinished, before any step
    print(f"nothing left to train: {checkpoint} is at {done}")

# %% [markdown]
# ## Save the adapter, and read the loss curve
# `finish_training` keeps what the run needs: the adapter in `adapter/` (the LoRA weights as
# safetensors, its config and the tokenizer: tens of megabytes, not the whole model), and in
# `train/` the log, the loss curve and a summary, each file written whole. `qd train` finishes
# with the same call. The loss is measured on answer tokens only.
#
# > **[한국어]** **어댑터를 저장하고 손실 곡선 읽기.** `finish_training`은 실행에 필요한 것을
# > 남깁니다. `adapter/`에 어댑터(LoRA 가중치 safetensors, 설정, 토크나이저: 모델 전체 대신 몇
# > 십 메가바이트), `train/`에 기록, 손실 곡선, 요약을 파일마다 온전하게 씁니다. `qd train`도 같은
# > 호출로 끝납니다. 손실은 답 토큰에서만 잽니다.

# %%
from IPython.display import display

from qdlib.train import finish_training

fig = finish_training(trainer, run.path, resumed_from=checkpoint)
display(fig)
logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
later = logged[len(logged) // 5 :]  # 처음 5분의 1 다음부터 / after the first fifth of the logs
print(f"after the first fifth of the logs the loss ranges from {min(later):.3f} to "
      f"{max(later):.3f}; lowest {min(logged):.3f}")

# %%
# NBVAL_CHECK_OUTPUT
losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
print("optimizer steps:", trainer.state.global_step)
# 마지막 기록들의 평균: 배치 하나하나는 튑니다(아래 참고)
last = losses[-5:]  # a mean over the last logs: single batches jump (see below)
print("loss fell by a third or more:", sum(last) / len(last) < losses[0] * 2 / 3)
print(sorted(p.name for p in (run / "adapter").iterdir() if p.suffix in (".json", ".safetensors")))
print(sorted(p.name for p in (run / "train").iterdir()))

# %% [markdown]
# What good and bad look like. The curve above falls fast in the first steps (the numbered form
# and the EOS are learned), then **jumps** up and down inside the range printed under it instead
# of settling. That is the data, not instability: each batch is a handful of examples, and the
# kinds differ. A template question's answer is predictable from the question (low loss); a real
# StrategyQA question needs its own plan (high loss); how many of each a batch holds moves the
# logged loss. Read the trend over many steps, not one point. On real questions a loss near zero
# (the "lowest" printed above) would be a warning: real decompositions cannot be predicted word
# for word, so near-zero loss on them means memorising. On template questions it is expected:
# there the answer *is* the question's names in a fixed pattern (`cpu_ko` ends its run on them
# alone, so its last logged losses are low).
# The illustrations below (drawn, not measured) are the shapes to recognise in your own runs: too
# high a learning rate jumps or climbs, too low barely moves, and overfitting shows when a
# held-out loss turns back up while the training loss keeps falling (turn on
# `training.eval_steps` to see the held-out loss).
#
# > **[한국어]** **좋은 곡선과 나쁜 곡선.** 위 곡선은 처음 몇 스텝에서 빠르게 떨어진 뒤(번호 형식과
# > EOS를 배웁니다) 자리 잡지 않고 그 아래 출력한 범위 안에서 **오르내립니다**. 불안정해서가 아니라
# > 데이터 때문입니다. 배치 하나는 예제 몇 개뿐이고 예제의 종류가 다릅니다. 템플릿 질문의 답은
# > 질문에서 예측할 수 있고(손실이 낮음), StrategyQA의 실제 질문은 질문마다 자기 계획이 필요합니다
# > (손실이 높음). 배치에 어느 쪽이 몇 개 들었는지가 기록된 손실을 움직입니다. 한 점이 아니라 여러
# > 스텝의 흐름을 읽으세요. 실제 질문에서 손실이 0에 가깝다면(위에 출력한 "lowest") 경고입니다.
# > 실제 분해는 글자 그대로 예측할 수 없으므로, 0에 가까운 손실은 외웠다는 뜻입니다. 템플릿
# > 질문에서는 당연한 일입니다. 거기서는 답이 곧 정해진 틀에 질문의 이름을 넣은 것이기 때문입니다
# > (`cpu_ko`는 마지막 스텝들을 템플릿만으로 학습하므로 마지막 손실이 낮습니다). 아래 그림(측정이
# > 아니라 그린 예시)은 여러분의 학습에서 알아봐야 할 모양입니다. 학습률이 너무 크면 튀거나
# > 오르고, 너무 작으면 거의 움직이지 않으며, 과적합(overfitting)은 학습 손실이 계속 떨어지는데
# > 평가 손실이 다시 오를 때 보입니다(`training.eval_steps`를 켜면 평가 손실을 볼 수 있습니다).

# %%
from qdlib.pictures import loss_shapes

loss_shapes()

# %% [markdown]
# ## When to leave the notebook: multi-GPU and long runs
# A notebook is one process: it trains on one GPU, and it stops when its kernel or your
# connection does. For runs of hours, or on a pod with several GPUs, train from a terminal with
# `qd train`. It does what lessons 01 and 04 do, into a run directory that lessons 05 and 06 read
# as usual.
#
# ```bash
# qd train --profile runpod --run-dir runs/big                       # one GPU
# accelerate launch --config_file configs/accelerate/ddp.yaml \
#     -m qdlib.cli train --profile runpod --run-dir runs/big          # every GPU (DDP)
# torchrun --nproc_per_node 2 -m qdlib.cli train --profile runpod --run-dir runs/big
# qd train --run-dir runs/big --resume                               # after a crash
# ```
#
# Each GPU runs its own process on its share of every batch, so one optimizer step sees
# `batch_size x gradient_accumulation_steps x GPUs` examples and an epoch takes fewer steps.
# Only the first process writes the run directory. `fsdp.yaml` and `deepspeed_zero3.yaml` also
# split the weights across the GPUs once loaded (each GPU loads the whole model first, so it
# must fit on one).
#
# > **[한국어]** **노트북을 떠날 때: 여러 GPU와 긴 학습.** 노트북은 프로세스 하나라서 GPU 하나로
# > 학습하고, 커널이나 접속이 끊기면 멈춥니다. 몇 시간짜리 학습이나 GPU가 여러 개인 환경에서는
# > 터미널에서 `qd train`(`accelerate launch`, `torchrun`)으로 학습하세요. 01번과 04번이 하는 일을
# > 실행 디렉터리에 해 두므로 05번과 06번은 평소처럼 읽습니다. GPU마다 프로세스가 배치의 제 몫을
# > 맡으므로 optimizer step 하나가 `batch_size x gradient_accumulation_steps x GPU 수`개의 예제를
# > 보고, 실행 디렉터리는 첫 프로세스만 씁니다. 중단되면 `--resume`으로 마지막 완전한 체크포인트부터
# > 이어 갑니다.

# %% [markdown]
# ## What you learned
# - The Trainer does the loop; you give it the model, the `TrainingArguments`, the data and the
#   collator, all in plain sight.
# - Dynamic padding, length grouping or packing keep padding out of the compute.
# - The adapter is small and saved on its own; the base model is untouched.
# - A loss curve's shape tells you what to change.
#
# > **[한국어]** **정리.** 반복 학습은 Trainer가 하고, 여러분은 모델, `TrainingArguments`, 데이터,
# > 콜레이터를 눈에 보이게 넘깁니다. 동적 패딩, 길이별 묶음, 패킹이 패딩을 계산에서 뺍니다. 어댑터는
# > 작고 따로 저장되며 베이스 모델은 그대로입니다. 손실 곡선의 모양이 무엇을 바꿀지 알려 줍니다.
#
# ## Exercises
#
# > **[한국어]** **연습 문제.** 🐢 쉬움, 🐕 보통, 🦁 도전. 풀이는 문제 아래에 접혀 있습니다.

# %% [markdown] tags=["exercise"]
# 🐢 **Easy.** How many optimizer steps does one epoch take with this profile, and why?
#
# > **[한국어]** 🐢 **쉬움.** 이 프로필로 한 epoch은 optimizer step 몇 개이고, 왜 그런가요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
import math

per_step = t.batch_size * t.gradient_accumulation_steps
print(f"{len(tokenized.train)} examples / {per_step} per step = "
      f"{math.ceil(len(tokenized.train) / per_step)} steps")
# 스텝 예산이 에폭보다 먼저 학습을 끝냅니다
if t.max_steps > 0:  # a budget in steps ends training before the epoch does
    print(f"training.max_steps = {t.max_steps}: {t.max_steps * per_step} examples are seen")

# %% [markdown] tags=["exercise"]
# 🐕 **Medium.** Find the three training examples with the highest loss under the trained
# adapter: what do they have in common?
#
# > **[한국어]** 🐕 **보통.** 학습된 어댑터에서 손실이 가장 큰 학습 예제 세 개를 찾으세요. 무엇이
# > 공통점인가요?

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
peft_model.eval()
scored = []
with torch.no_grad():
    for i in range(min(32, len(tokenized.train))):
        row = tokenized.train[i]
        out = peft_model(input_ids=torch.tensor([row["input_ids"]]),
                         labels=torch.tensor([row["labels"]]))
        scored.append((out.loss.item(), train_records[i]["question"]))
for loss, question in sorted(scored, reverse=True)[:3]:
    print(f"{loss:.3f}  {question}")
# Real questions: no template predicts their steps, so every word of the gold is a guess the
# model can get wrong. Template questions cost little once the pattern is learned.
# 실제 질문: 단계를 알려 주는 템플릿이 없어서 정답의 모든 낱말이 모델이 틀릴 수 있는
# 추측입니다. 템플릿 질문은 틀을 익히고 나면 손실이 거의 없습니다.

# %% [markdown] tags=["exercise"]
# 🐕 **Medium.** Change the learning rate and watch what it does. On the same base, train two
# fresh adapters for 8 steps on the same batches (half the profile's batch, to be quick): one at
# the profile's rate, one at a tenth of it (`peft_model.add_adapter`, `set_adapter`, and
# `dataclasses.replace(args, ...)` for the arguments). Draw both loss curves: which one learns
# more in a short budget? The trained adapter must come out of it untouched.
#
# > **[한국어]** 🐕 **보통.** 학습률을 바꾸고 무엇이 달라지는지 보세요. 같은 베이스 모델에 새
# > 어댑터 두 개를 붙여 같은 배치로 8 스텝씩 학습합니다(빨리 끝나도록 배치는 프로필의 절반).
# > 하나는 프로필의 학습률로, 하나는 그 10분의 1로 합니다(`peft_model.add_adapter`, `set_adapter`,
# > 인자는 `dataclasses.replace(args, ...)`). 두 손실 곡선을 그려 보세요. 짧은 예산에서 어느 쪽이
# > 더 많이 배우나요? 학습해 둔 어댑터는 그대로 남아야 합니다.

# %% tags=["solution"] jupyter={"outputs_hidden": true, "source_hidden": true}
import dataclasses
import tempfile

from qdlib.figures import both, subplots
from qdlib.model import fingerprint


# 모델의 모든 LoRA 텐서, 순서대로
def adapter_weights():  # every LoRA tensor of the model, in order
    return (w for name, w in peft_model.state_dict().items() if "lora_" in name)


# 학습해 둔 어댑터의 지문: 끝에 그대로인지 확인합니다
kept = fingerprint(adapter_weights())  # the trained adapter's: checked at the end
steps = min(8, t.max_steps) if t.max_steps > 0 else 8
curves = {}
for name, lr in {"as_profiled": t.learning_rate, "a_tenth": t.learning_rate / 10}.items():
    # 같은 시작값, 같은 배치: 학습률만 다릅니다
    set_seed(cfg.seed)  # the same start and the same batches: only the rate differs
    # 같은 베이스에 새 어댑터: 모델을 한 번 더 불러오지 않습니다
    peft_model.add_adapter(name, peft_model.peft_config["default"])  # same base, no 2nd copy
    # 이제 이 어댑터만 계산하고 학습합니다
    peft_model.set_adapter(name)  # only this adapter computes and trains now
    # Half the batch (quick), no checkpoints, the loss at every step, outside the run directory
    # 배치는 절반(빨리), 체크포인트 없이, 스텝마다 손실을 기록하고, 실행 디렉터리 밖에 씁니다
    half = max(1, args.per_device_train_batch_size // 2)
    short = dataclasses.replace(args, learning_rate=lr, max_steps=steps, logging_steps=1,
                                per_device_train_batch_size=half, save_strategy="no",
                                eval_strategy="no",
                                output_dir=tempfile.mkdtemp())
    short_trainer = Trainer(model=peft_model, args=short, train_dataset=tokenized.train,
                            data_collator=AnswerLogitsOnly(collator),
                            compute_loss_func=answer_loss, processing_class=tokenizer)
    short_trainer.train()
    curves[lr] = [h["loss"] for h in short_trainer.state.log_history if "loss" in h]
# 학습해 둔 어댑터로 돌아가고, 새 어댑터 둘은 지웁니다
peft_model.set_adapter("default")  # back to the trained adapter, and the two new ones go
for name in ("as_profiled", "a_tenth"):
    peft_model.delete_adapter(name)
print("the trained adapter untouched:", fingerprint(adapter_weights()) == kept)

fig, ax = subplots(figsize=(6, 3))
for lr, losses in curves.items():
    ax.plot(range(1, len(losses) + 1), losses, marker=".", label=f"learning rate {lr:g}")
ax.set(xlabel=both("step", "스텝", " · "), ylabel=both("loss", "손실", " · "),
       title=both(f"{steps} steps from the same start", f"같은 시작에서 {steps} 스텝"))
ax.legend()
display(fig)
for lr, losses in curves.items():
    print(f"learning rate {lr:g}: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
# The first step is the same (the same start, the same batch); after it the higher rate moves
# further each step. In a budget of a few hundred steps that is what you want (the profile's
# comment: at batch 8, 1e-3 learned less than 2e-3); with a long budget a rate this high can
# overshoot.
# 첫 스텝은 같습니다(같은 시작값, 같은 배치). 그 뒤로 높은 학습률이 스텝마다 더 멀리 갑니다. 수백
# 스텝의 예산에서는 그게 바람직합니다(프로필 주석: 배치 8에서 1e-3은 2e-3보다 덜 배웠습니다). 예산이
# 길면 이만큼 높은 학습률은 지나칠 수 있습니다.

# %% [markdown] tags=["exercise"]
# 🦁 **Stretch.** Stop this notebook's kernel during training, then run it again with
# `resume = True`: from which step does it continue, and does the loss curve join up? (Text
# answer: it needs a run.)
#
# > **[한국어]** 🦁 **도전.** 학습 중에 커널을 멈춘 뒤 `resume = True`로 다시 실행하세요. 몇 번째
# > step부터 이어 가고, 손실 곡선은 이어지나요? (글로 답합니다: 실제 실행이 필요합니다.)

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution.** It continues from the newest *complete* checkpoint (one every
# `training.save_steps` steps), not from the step where you stopped: the steps after that
# checkpoint are trained again. The curve joins up exactly, because the examples come in the same
# order (`data_seed`) and the optimizer, scheduler and random state are restored from the
# checkpoint.
#
# > **[한국어]** **풀이.** 멈춘 step이 아니라 가장 최근의 *완전한* 체크포인트(`save_steps` 간격,
# > `training.save_steps` 스텝마다)부터 이어 가므로, 그 뒤의 스텝은 다시 학습합니다. 예제
# > 순서(`data_seed`)가
# > 같고 옵티마이저, 스케줄러, 난수 상태를 체크포인트에서 되살리므로 곡선은 정확히 이어집니다.

# %% [markdown] tags=["questionnaire"]
# ## Questionnaire
# Answer in your own words, then open the answers below.
#
# 1. What does the collator pad to, and with which label?
# 2. Why does the Trainer compute logits only at the answer's positions?
# 3. The logged loss jumps up and down. Is training unstable?
# 4. Where does a resumed run continue from?
#
# > **[한국어]** **확인 문제.** 먼저 스스로 답해 본 뒤, 아래의 답을 펼쳐 보세요.
# > 1. 콜레이터는 어디까지, 어떤 레이블로 패딩할까요?
# > 2. Trainer는 왜 답의 위치에서만 로짓을 계산할까요?
# > 3. 기록된 손실이 오르내립니다. 학습이 불안정한 걸까요?
# > 4. 이어 학습하면 어디서부터 이어 갈까요?

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers.**
#
# 1. To the longest example of each batch (not to `max_seq_length`), with label `-100`; packing
#    removes the padding altogether.
# 2. The loss needs no other; the output layer costs hidden size x vocabulary per position, most of
#    a step for Gemma 3's 262,144 words.
# 3. Not by itself: each batch holds a few examples of different kinds. Read the trend over many
#    steps; a held-out loss that turns back up is the warning sign.
# 4. From the newest complete checkpoint, not from the step where it stopped; the examples come in
#    the same order, so the curve joins up.
#
# > **[한국어]** **답.**
# > 1. `max_seq_length`가 아니라 배치에서 가장 긴 예제까지, 레이블 `-100`으로 패딩합니다. 패킹은
# >    패딩을 아예 없앱니다.
# > 2. 손실에 다른 위치는 필요 없기 때문입니다. 출력층은 위치마다 은닉 크기 x 어휘만큼 들고, Gemma
# >    3의 262,144 낱말에서는 스텝의 대부분입니다.
# > 3. 그것만으로는 아닙니다. 배치마다 종류가 다른 예제 몇 개가 들어 있을 뿐입니다. 여러 스텝의
# >    흐름을 읽으세요. 경고 신호는 떼어 둔 데이터의 손실이 다시 오르는
# >    것입니다.
# > 4. 멈춘 스텝이 아니라 가장 최근의 완전한 체크포인트부터입니다. 예제 순서가 같으므로 곡선이
# >    그대로 이어집니다.
