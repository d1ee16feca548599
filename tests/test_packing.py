"""Padding-free packing: packed examples never see each other, and the loss is the same loss.

Also the gradient-accumulation pitfall: micro-batches of different token counts must add up to
exactly the gradient of the one large batch (the loss is a mean over *all* answer tokens).
"""

from __future__ import annotations

import pytest
import torch

from qdlib.config import load_config
from qdlib.lora import attach_lora, lora_config
from qdlib.memory import ARCHITECTURES, hf_config
from qdlib.model import load_model
from qdlib.prompts import IGNORE_INDEX, TokenizedSplits, tokenize_splits
from qdlib.splits import prepare_splits
from qdlib.train import AnswerLogitsOnly, answer_loss, build_trainer, check_packing, data_collator

ATOL = 1e-4


@pytest.fixture(scope="module")
def examples(tiny_cfg, tiny_tokenizer):
    """Eight real training examples of different lengths (tokenized, completion-only labels)."""
    splits = prepare_splits(tiny_cfg)
    tokenized = tokenize_splits(splits.train[:8], splits.eval[:2], tiny_tokenizer, 192)
    rows = [tokenized.train[i] for i in range(8)]
    assert len({len(r["input_ids"]) for r in rows}) > 3
    return rows


def real_architecture(name: str, layers: int):
    """A random-weight model with a real architecture (a layer count cut to fit the CPU)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(hf_config(ARCHITECTURES[name], layers)).eval()


def packed_vs_alone(model, batch, lengths) -> float:
    """Max logit difference between each example in a collated packed batch and itself alone."""
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "logits_to_keep")}
        together = model(**inputs).logits[0]
        start, worst = 0, 0.0
        for n in lengths:
            ids = batch["input_ids"][:, start : start + n]
            alone = model(input_ids=ids).logits[0]
            worst = max(worst, (together[start : start + n] - alone).abs().max().item())
            start += n
    return worst


def test_packed_batch_is_one_row_with_restarting_positions(examples, tiny_tokenizer):
    batch = data_collator(tiny_tokenizer, packing=True)(examples[:4])
    lengths = [len(e["input_ids"]) for e in examples[:4]]
    assert batch["input_ids"].shape == (1, sum(lengths))  # no padding at all
    assert "attention_mask" not in batch  # a mask would switch packed-sequence detection off
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert starts == [sum(lengths[:i]) for i in range(4)]
    assert all(batch["labels"][0, s].item() == IGNORE_INDEX for s in starts)


def test_tiny_lora_model_packed_logits_equal_alone(tiny_cfg, examples, tiny_tokenizer, tmp_path):
    from datasets import Dataset

    model = load_model(tiny_cfg)
    model = attach_lora(model, lora_config(tiny_cfg, model), False, tiny_cfg.seed)
    for p in model.parameters():  # LoRA B starts at zero; make the adapters do something
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    cfg = load_config("cpu_tiny", training={"packing": True, "eval_steps": None})
    splits = TokenizedSplits(Dataset.from_list(examples), None, {})
    trainer = build_trainer(model, tiny_tokenizer, splits, cfg, tmp_path)
    batch = trainer.data_collator(examples)
    model.eval()
    lengths = [len(e["input_ids"]) for e in examples]
    assert packed_vs_alone(model, batch, lengths) < ATOL


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,layers", [("Qwen/Qwen2.5-0.5B-Instruct", 2), ("meta-llama/Llama-3.2-1B-Instruct", 1)]
)
def test_real_architecture_packed_logits_equal_alone(name, layers):
    model = real_architecture(name, layers)
    torch.manual_seed(1)
    seqs = [torch.randint(10, 5000, (n,)).tolist() for n in (23, 7, 41, 12)]
    model.config.use_cache = False  # what build_trainer does
    assert check_packing(model, seqs, torch.float32) < ATOL
    model.config.use_cache = True  # the pitfall: a KV cache silently turns packing detection off
    with pytest.raises(ValueError, match="packed examples see each other"):
        check_packing(model, seqs, torch.float32)


def test_check_packing_refuses_a_model_that_leaks(tiny_cfg, examples):
    model = load_model(tiny_cfg)
    seqs = [e["input_ids"] for e in examples[:3]]
    model.config.use_cache = True
    with pytest.raises(ValueError, match="packed examples see each other"):
        check_packing(model, seqs)
    model.config.use_cache = False
    assert check_packing(model, seqs) < ATOL


def test_packed_loss_equals_padded_loss(tiny_cfg, examples, tiny_tokenizer):
    model = load_model(tiny_cfg).eval()
    model.config.use_cache = False
    with torch.no_grad():
        padded = model(**data_collator(tiny_tokenizer, packing=False)(examples)).loss
        packed = model(**data_collator(tiny_tokenizer, packing=True)(examples)).loss
    assert packed.item() == pytest.approx(padded.item(), abs=1e-5)


@pytest.mark.parametrize("packing", [False, True])
def test_logits_at_the_answer_only_give_the_models_own_loss_and_gradients(
    tiny_cfg, examples, tiny_tokenizer, packing
):
    """The output layer runs only where an answer token is predicted; loss and gradients are the
    ones the model's own loss (every position's logits) gives."""
    model = load_model(tiny_cfg)
    model = attach_lora(model, lora_config(tiny_cfg, model), False, tiny_cfg.seed)
    for p in model.parameters():  # LoRA B starts at zero; make the adapters do something
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    model.config.use_cache = False
    plain = data_collator(tiny_tokenizer, packing)(examples)
    kept = AnswerLogitsOnly(data_collator(tiny_tokenizer, packing))(examples)
    labels = kept.pop("labels")
    grads = []
    for run in ("own", "answer only"):
        model.zero_grad()
        if run == "own":
            out = model(**plain)
            loss = out.loss
        else:
            out = model(**kept)
            loss = answer_loss(out, labels)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
        if run == "own":
            own, width = loss.item(), out.logits.shape[1]
    assert loss.item() == pytest.approx(own, rel=1e-5)
    assert out.logits.shape[1] < width * 0.8  # the prompt's positions were never scored
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-6, rtol=1e-4, msg=name)
    n = int((labels != IGNORE_INDEX).sum())  # the trained tokens, as the Trainer counts them
    assert answer_loss(out, labels, torch.tensor(2 * n)).item() == pytest.approx(own / 2, rel=1e-5)


class GradientsAtStep:
    """Keeps a copy of every trainable gradient just before the first optimizer step."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
                outer.grads = {
                    n: p.grad.detach().clone()
                    for n, p in model.named_parameters()
                    if p.requires_grad
                }

        self.callback = Callback()


def one_step_gradients(examples, tokenizer, tmp_path, batch, accumulation, packing):
    from datasets import Dataset

    cfg = load_config(
        "cpu_tiny",
        training={
            "batch_size": batch, "gradient_accumulation_steps": accumulation,
            "packing": packing, "max_steps": 1, "max_grad_norm": 0.0, "eval_steps": None,
            "logging_steps": 1,
        },
        evaluation={"generate_every": None},
    )  # fmt: skip
    model = load_model(cfg)
    model = attach_lora(model, lora_config(cfg, model), False, cfg.seed)
    splits = TokenizedSplits(Dataset.from_list(examples), None, {})
    trainer = build_trainer(model, tokenizer, splits, cfg, tmp_path)
    probe = GradientsAtStep()
    trainer.add_callback(probe.callback)
    trainer.train()
    loss = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    return probe.grads, loss


@pytest.mark.slow
def test_gradient_accumulation_equals_the_large_batch(examples, tiny_tokenizer, tmp_path):
    """8 examples of different lengths: one batch of 8 vs 4 micro-batches of 2 (padded, packed)."""
    big, big_loss = one_step_gradients(examples, tiny_tokenizer, tmp_path / "a", 8, 1, False)
    for packing in (False, True):
        small, loss = one_step_gradients(examples, tiny_tokenizer, tmp_path / "b", 2, 4, packing)
        assert loss == pytest.approx(big_loss, rel=1e-4)
        for name, g in big.items():
            torch.testing.assert_close(small[name], g, atol=1e-6, rtol=1e-4, msg=name)
