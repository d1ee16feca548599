"""Lesson 03: the LoraConfig qdlib builds is the one a learner writes by hand with peft."""

from __future__ import annotations

import pytest
from peft import LoraConfig, TaskType

from qdlib.config import ConfigError, load_config
from qdlib.lora import lora_config
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


@pytest.mark.parametrize(("switch", "attribute"), [("use_dora", "use_dora"),
                                                   ("use_rslora", "use_rslora")])  # fmt: skip
def test_dora_and_rslora_switches_reach_peft(tiny_model, switch, attribute):
    cfg = load_config("cpu_tiny", lora={switch: True})
    assert getattr(lora_config(cfg, tiny_model), attribute) is True


def test_the_switches_change_the_adapted_layers(tiny_cfg):
    """rsLoRA scales by alpha/sqrt(r) instead of alpha/r; DoRA adds a magnitude per output."""
    from peft import get_peft_model

    def first_layer(**lora):
        cfg = load_config("cpu_tiny", lora={"target_modules": ["q_proj"], **lora})
        model = load_model(cfg)
        peft_model = get_peft_model(model, lora_config(cfg, model))
        return next(m for m in peft_model.modules() if hasattr(m, "lora_A") and m.lora_A)

    plain, rs, dora = first_layer(), first_layer(use_rslora=True), first_layer(use_dora=True)
    assert plain.scaling["default"] == pytest.approx(128 / 64)
    assert rs.scaling["default"] == pytest.approx(128 / 64**0.5)
    assert not plain.lora_magnitude_vector and "default" in dora.lora_magnitude_vector


def test_a_target_the_model_does_not_have_names_the_layers_it_has(tiny_model):
    cfg = load_config("cpu_tiny", lora={"target_modules": ["c_attn"]})
    with pytest.raises(ConfigError, match=r"\['c_attn'\].*Its linear layers are: \['down_proj'"):
        lora_config(cfg, tiny_model)
