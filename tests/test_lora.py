"""Lesson 03: the LoraConfig qdlib builds is the one a learner writes by hand with peft."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, TaskType
from peft.tuners.lora import LoraLayer

from qdlib.config import ConfigError, load_config
from qdlib.lora import attach_lora, lora_config, save_lora_config
from qdlib.model import load_model


@pytest.fixture(scope="module")
def tiny_model(tiny_cfg):
    return load_model(tiny_cfg)


def test_the_hand_written_lora_config_equals_qdlibs(tiny_cfg, tiny_model):
    """Notebook 03 writes this one argument by argument: it must be the same object."""
    by_hand = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=64,
        lora_alpha=128,
        lora_dropout=0.0,
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
            "lm_head",
        ],
        bias="none",
    )
    assert lora_config(tiny_cfg, tiny_model) == by_hand


def adapted_layers(tmp_path, **lora):
    """The LoRA layers lessons 03 and 04 build: the profile's config goes through lora/
    (saved in 03, read back in 04) and attach_lora wraps a fresh tiny model with it."""
    cfg = load_config("cpu_tiny", lora={"target_modules": ["q_proj", "down_proj"], **lora})
    model = load_model(cfg)
    save_lora_config(lora_config(cfg, model), tmp_path / "lora")
    peft_model = attach_lora(model, LoraConfig.from_pretrained(tmp_path / "lora"), seed=cfg.seed)
    layers = [m for m in peft_model.modules() if isinstance(m, LoraLayer)]
    assert len(layers) == 2 * cfg.model.tiny.num_layers
    return layers


def test_rslora_scales_every_adapted_layer_by_alpha_over_sqrt_r(tmp_path):
    """alpha=128, r=64: rsLoRA's alpha/sqrt(r) = 16, where plain LoRA's alpha/r = 2."""
    plain, rs = adapted_layers(tmp_path), adapted_layers(tmp_path, use_rslora=True)
    assert [m.scaling["default"] for m in plain] == [pytest.approx(128 / 64)] * len(plain)
    assert [m.scaling["default"] for m in rs] == [pytest.approx(128 / 64**0.5)] * len(rs)


def test_dora_gives_every_adapted_layer_a_trainable_magnitude_per_output(tmp_path):
    """DoRA starts each output's magnitude at the norm of its weight row, and trains it."""
    assert not any(m.lora_magnitude_vector for m in adapted_layers(tmp_path))
    for layer in adapted_layers(tmp_path, use_dora=True):
        magnitude = layer.lora_magnitude_vector["default"].weight
        assert magnitude.requires_grad
        row_norms = layer.get_base_layer().weight.norm(dim=1)
        assert torch.allclose(magnitude.detach(), row_norms, rtol=1e-5)


def test_a_target_the_model_does_not_have_names_the_layers_it_has(tiny_model):
    cfg = load_config("cpu_tiny", lora={"target_modules": ["c_attn"]})
    with pytest.raises(ConfigError, match=r"\['c_attn'\].*Its linear layers are: \['down_proj'"):
        lora_config(cfg, tiny_model)
