"""Memory estimator: the exact parts equal what torch, peft and bitsandbytes allocate."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from qdlib.config import load_config
from qdlib.memory import (
    ARCHITECTURES,
    HEADROOM,
    MiB,
    architecture,
    estimate,
    linear_shapes,
    lora_parameters,
    lora_tensor_sizes,
    optimizer_bytes,
    parameter_counts,
    weight_bytes,
)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_parameter_and_lora_counts_match_the_real_architecture(name):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    a = ARCHITECTURES[name]
    config_class = Gemma3TextConfig if "gemma-3" in name else Qwen2Config if a.qkv_bias else \
        LlamaConfig  # fmt: skip
    config = config_class(
        hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads, intermediate_size=a.intermediate,
        vocab_size=a.vocab, tie_word_embeddings=a.tied, head_dim=a.head_size,
    )  # fmt: skip
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == sum(parameter_counts(a).values())
    targets = list(linear_shapes(a))
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=targets))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == lora_parameters(a, targets, 16)


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def stored_weight_bytes(model) -> int:
    """Bytes of a model's base weights as torch and bitsandbytes hold them: packed 4-bit weights
    and their absmax (both levels), int8 weights and their scale per row, and every other frozen
    parameter at its own dtype's size (LoRA adapters, which train, are not base weights)."""
    import bitsandbytes as bnb

    total = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            qs = module.weight.quant_state
            total += nbytes(module.weight) + nbytes(qs.absmax) + nbytes(qs.state2.absmax)
        elif isinstance(module, bnb.nn.Linear8bitLt):
            total += nbytes(module.weight) + nbytes(module.weight.SCB)
    rest = [p for p in model.parameters() if p.is_floating_point() and not p.requires_grad]
    return total + sum(nbytes(p) for p in rest)


def test_fp32_and_4bit_weight_bytes_match_loaded_tiny_model():
    from qdlib.model import load_model

    cfg = load_config("cpu_tiny")
    a = architecture(cfg)
    fp32 = load_model(cfg).requires_grad_(False)
    assert stored_weight_bytes(fp32) == weight_bytes(a, "none", 4)
    q = load_model(load_config("cpu_tiny", model={"quantization": "4bit"}))
    assert stored_weight_bytes(q.requires_grad_(False)) == weight_bytes(a, "4bit", 4)


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_kbit_weights_count_what_peft_upcasts_to_float32(quantization):
    """Loaded in bf16, a 4/8-bit model's embeddings, head and norms are bf16 until
    ``prepare_model_for_kbit_training`` (in ``attach_lora``) casts them to float32 for training."""
    from qdlib.lora import attach_lora, lora_config
    from qdlib.model import load_model

    cfg = load_config("cpu_tiny", model={"quantization": quantization, "dtype": "bfloat16"})
    model = load_model(cfg)
    loaded = stored_weight_bytes(model.requires_grad_(False))
    peft_model = attach_lora(model, lora_config(cfg, model), seed=cfg.seed)
    training = stored_weight_bytes(peft_model)
    assert loaded < training  # the upcast happened: these bytes are what training holds
    assert estimate(cfg).weights * MiB == training


def one_step(optimizer: str):
    from qdlib.lora import attach_lora, lora_config
    from qdlib.model import load_model

    cfg = load_config("cpu_tiny", lora={"r": 8}, training={"optimizer": optimizer})
    model = load_model(cfg)
    peft_model = attach_lora(model, lora_config(cfg, model), seed=cfg.seed)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    if optimizer == "adamw_torch":
        opt = torch.optim.AdamW(params, lr=1e-3)
    else:
        import bitsandbytes as bnb

        opt = bnb.optim.AdamW8bit(params, lr=1e-3)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    peft_model(input_ids=ids, labels=ids).loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params)
    opt.step()
    names = ("exp_avg", "exp_avg_sq", "state1", "state2", "absmax1", "absmax2")
    states = sum(
        t.numel() * t.element_size()
        for st in opt.state.values()
        for k, t in st.items()
        if k in names
    )
    return cfg, grads, states


@pytest.mark.parametrize("optimizer", ["adamw_torch", "adamw_8bit"])
def test_gradient_and_optimizer_state_bytes_match_torch(optimizer):
    cfg, grads, states = one_step(optimizer)
    a = architecture(cfg)
    targets = list(cfg.lora.target_modules)
    assert grads == 4 * lora_parameters(a, targets, cfg.lora.r)
    assert states == optimizer_bytes(lora_tensor_sizes(a, cfg.lora.r, targets), optimizer)


@pytest.mark.parametrize("room", [1.001, 0.999])
def test_the_verdict_is_the_estimate_against_the_card_less_headroom(room):
    cfg = load_config("rtx4060")
    total = estimate(cfg).total
    card = room * total / (1 - HEADROOM)  # just more (1.001) or just less than the estimate needs
    e = estimate(cfg, card_mib=card)
    assert e.total == total  # the card changes the verdict, not the estimate
    assert e.fits == (room > 1)
    word = "fits" if room > 1 else "does NOT fit"
    assert f"{word} a {card / 1024:.0f} GiB card" in e.table()


def test_longer_sequences_need_more_memory():
    cfg = load_config("rtx4060")
    assert estimate(cfg, seq_len=1024).total > estimate(cfg, seq_len=512).total
    assert estimate(cfg, batch=1).activations < estimate(cfg, batch=4).activations


def test_qd_estimate_prints_the_table(capsys):
    from qdlib.cli import main

    assert main(["estimate", "--profile", "rtx4060"]) == 0
    out = capsys.readouterr().out
    assert "| weights |" in out and estimate(load_config("rtx4060")).verdict in out


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True])
def test_activation_model_matches_what_autograd_keeps(checkpointing):
    """Measured on a random-weight Qwen2.5-0.5B architecture (2 layers) with rtx4060's LoRA."""
    from transformers import AutoModelForCausalLM

    from qdlib.lora import attach_lora, lora_config
    from qdlib.memory import hf_config, saved_activation_bytes, training_bytes

    a = replace(ARCHITECTURES["Qwen/Qwen2.5-0.5B-Instruct"], layers=2)
    config = hf_config(a)
    cfg = load_config(
        "rtx4060",
        model={"dtype": "float32", "quantization": "none"},
        training={"gradient_checkpointing": checkpointing},
    )
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config)
    model = attach_lora(base, lora_config(cfg, base), checkpointing, cfg.seed).train()
    b, s = 2, 96
    measured = saved_activation_bytes(model, torch.randint(0, 1000, (b, s)))
    parts = training_bytes(cfg, a, s, b, 4)
    log_softmax = b * s * a.vocab * 4  # the one logits-sized tensor autograd keeps
    if checkpointing:  # the recomputed layer is alive during backward only: not saved here
        per_layer = parts["activations"] - 2 * b * s * a.hidden * 4
        estimated = 2 * b * s * a.hidden * 4 + log_softmax
        assert per_layer > 0
    else:
        estimated = parts["activations"] + log_softmax
    assert 0.9 < estimated / measured < 1.15


def test_gpu_check_says_so_without_a_gpu():
    import subprocess
    import sys

    from qdlib.config import PROJECT_ROOT

    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts/gpu_check.py")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr
