"""Profiles load, and every bad value is an error naming the file, the key and what is allowed."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml

from qdlib import config
from qdlib import model as qd_model
from qdlib.config import (
    ConfigError,
    available_profiles,
    load_config,
    merge_overrides,
    parse_override,
)


def write_profile(tmp_path, **changes):
    base = yaml.safe_load(open(load_config("cpu_tiny").source, encoding="utf-8"))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            base[section][name] = value
        else:
            base[section] = value
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    return path


def test_every_shipped_profile_loads():
    assert {"cpu_tiny", "rtx4060", "runpod"} <= set(available_profiles())
    for name in available_profiles():
        assert load_config(name).profile == name


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path):
    path = write_profile(tmp_path, lora__rank=8)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "lora.rank" in msg and "Allowed keys in lora: r, alpha" in msg


def test_unknown_top_level_key(tmp_path):
    path = write_profile(tmp_path, trainig={"epochs": 1})
    with pytest.raises(ConfigError, match="unknown key trainig"):
        load_config(path)


def test_wrong_type_is_named(tmp_path):
    path = write_profile(tmp_path, training__batch_size="eight")
    with pytest.raises(ConfigError, match=r"training.batch_size must be an integer; got 'eight'"):
        load_config(path)


def test_out_of_range_value_says_the_bounds(tmp_path):
    path = write_profile(tmp_path, lora__r=0)
    with pytest.raises(ConfigError, match=r"lora.r must be an integer from 1 to 1024; got 0"):
        load_config(path)


def test_choice_lists_allowed_values(tmp_path):
    path = write_profile(tmp_path, model__quantization="3bit")
    with pytest.raises(ConfigError, match=r"one of 'none', '4bit', '8bit'"):
        load_config(path)


def test_holdout_by_names_its_key_and_the_groupings(tmp_path):
    path = write_profile(tmp_path, data__holdout_by="templates")
    allowed = r"data.holdout_by must be one of 'none', 'template', 'entity'; got 'templates'"
    with pytest.raises(ConfigError, match=allowed) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert load_config("cpu_tiny", data={"holdout_by": "entity"}).data.holdout_by == "entity"


def test_scientific_notation_string_is_a_float(tmp_path):
    # PyYAML reads 2e-4 (no dot) as a string; users write it anyway.
    path = write_profile(tmp_path, training__learning_rate="2e-4")
    assert load_config(path).training.learning_rate == pytest.approx(2e-4)


def test_missing_profile_lists_available():
    names = "cpu_ko, cpu_small, cpu_tiny, rtx4060, runpod"
    with pytest.raises(ConfigError, match=f"Available profiles: {names}"):
        load_config("no_such_profile")


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_partial_section_override_keeps_the_rest():
    cfg = load_config("cpu_tiny", training={"max_steps": 7})
    base = load_config("cpu_tiny")
    assert cfg.training.max_steps == 7
    assert cfg.training.learning_rate == base.training.learning_rate


def test_none_override_keeps_profile_value():
    assert load_config("cpu_tiny", seed=None).seed == load_config("cpu_tiny").seed


def test_cli_overrides_are_typed_and_merged():
    ov = merge_overrides(
        parse_override("training.max_steps", "20"),
        parse_override("training.optimizer", "adamw_8bit"),
    )
    assert ov == {"training": {"max_steps": 20, "optimizer": "adamw_8bit"}}
    assert load_config("cpu_tiny", **ov).training.max_steps == 20


def test_inconsistent_heads_are_rejected():
    with pytest.raises(ConfigError, match=r"divisible by model\.tiny\.num_heads"):
        load_config("cpu_tiny", model={"tiny": {"hidden_size": 130}})


def test_bf16_without_support_falls_back_to_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.warns(UserWarning, match="falling back to float16"):
        assert qd_model.resolve_dtype("bfloat16", on="cuda") == torch.float16


def test_emulated_bf16_counts_as_no_bf16(monkeypatch):
    """An RTX 20xx / T4 emulates bf16 slowly: ``auto`` must pick float16 there."""
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert qd_model.resolve_dtype("auto", on="cuda") == torch.float16


def test_auto_dtype_on_cpu_is_float32():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert qd_model.resolve_dtype("auto", on="cpu") == torch.float32


def test_4bit_without_backend_is_a_clear_error(monkeypatch):
    import bitsandbytes.functional as bnbf

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(bnbf, "quantize_4bit", broken)
    with pytest.raises(
        ConfigError, match=r"model.quantization='4bit' needs a bitsandbytes backend"
    ):
        qd_model.check_quantization("4bit", on="cpu")


def test_4bit_backend_works_on_this_cpu():
    qd_model.check_quantization("4bit", on="cpu")


# ---------------------------------------------------------------- where qdlib reads and writes


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """qdlib as a wheel installs it: no checkout, the profiles and data in qdlib/bundled/."""
    bundled = tmp_path / "site-packages/qdlib/bundled"
    (bundled / "data/teaching").mkdir(parents=True)
    (bundled / "data/teaching/set.jsonl").write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(config, "CHECKOUT", None)
    monkeypatch.setattr(config, "PROJECT_ROOT", bundled)
    monkeypatch.delenv("QDLIB_HOME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return bundled


def test_this_checkout_is_home_and_holds_the_profiles(monkeypatch):
    monkeypatch.delenv("QDLIB_HOME", raising=False)
    assert config.CHECKOUT == config.PROJECT_ROOT == config.PACKAGE_DIR.parent
    assert config.qdlib_home() == config.CHECKOUT


def test_qdlib_home_wins_over_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("QDLIB_HOME", str(tmp_path))
    assert config.qdlib_home() == tmp_path


def test_installed_home_is_the_working_directory(installed):
    assert config.qdlib_home() == installed.parents[2] / "work"


def test_installed_profile_paths_are_the_packaged_files_else_the_working_directory(installed):
    cfg = load_config("cpu_tiny")
    assert cfg.resolve_path("data/teaching/set.jsonl") == installed / "data/teaching/set.jsonl"
    assert cfg.resolve_path("mine.jsonl") == installed.parents[2] / "work/mine.jsonl"


# ---------------------------------------------------------------- keys given twice, huge numbers


def test_a_section_given_twice_is_an_error_naming_both_lines(tmp_path):
    """Plain YAML lets a second ``training:`` replace the first whole (lr, batch, saving: all
    changed, silently)."""
    path = write_profile(tmp_path)
    text = path.read_text(encoding="utf-8")
    first = 1 + text.splitlines().index("training:")
    path.write_text(text + "training:\n  batch_size: 1\n", encoding="utf-8")
    last = len(text.splitlines()) + 1
    with pytest.raises(ConfigError, match=rf"line {last}: 'training' is given twice \(first on "
                                          rf"line {first}\)"):  # fmt: skip
        load_config(path)


def test_a_key_given_twice_in_a_section_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("profile: twice\ntraining:\n  max_steps: 5\n  max_steps: 50\n", "utf-8")
    with pytest.raises(ConfigError, match=r"line 4: 'max_steps' is given twice"):
        load_config(path)


def test_yaml_merge_keys_may_still_be_overridden():
    text = "base: &b {max_steps: 5, batch_size: 2}\ntraining:\n  <<: *b\n  max_steps: 50\n"
    assert config.read_yaml(text, "x")["training"] == {"max_steps": 50, "batch_size": 2}


def test_a_400_digit_number_is_refused_not_a_traceback(tmp_path):
    path = write_profile(tmp_path, training__learning_rate=10**400)
    with pytest.raises(ConfigError, match=r"training\.learning_rate"):
        load_config(path)


def test_the_profile_is_chosen_with_its_flag_not_with_p():
    with pytest.raises(ConfigError, match="--profile"):
        parse_override("profile", "rtx4060")
