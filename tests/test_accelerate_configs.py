"""configs/accelerate/*.yaml: each loads with accelerate's own config classes and launcher checks,
and builds its FSDP or DeepSpeed plugin, so a misspelled key or value fails here, not on a pod."""

from __future__ import annotations

import os

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from qdlib.config import PROJECT_ROOT

CONFIGS = {
    "ddp": "MULTI_GPU",
    "fsdp": "FSDP",
    "deepspeed_zero2": "DEEPSPEED",
    "deepspeed_zero3": "DEEPSPEED",
}


def path(name):
    return PROJECT_ROOT / "configs/accelerate" / f"{name}.yaml"


def test_every_config_file_is_tested():
    assert sorted(p.stem for p in path("x").parent.glob("*.yaml")) == sorted(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_yamllint(name):
    """A key written twice would silently keep the last value; yamllint says so."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    rules = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
    problems = list(linter.run(path(name).read_text(encoding="utf-8"), YamlLintConfig(rules)))
    assert not problems, "\n".join(f"{name}.yaml:{p.line}:{p.column} {p.message}" for p in problems)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_with_accelerates_classes(name):
    cfg = load_config_from_file(str(path(name)))  # an unknown top-level key raises here
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type.value == CONFIGS[name]
    assert (cfg.num_processes, cfg.num_machines, cfg.mixed_precision) == (2, 1, "bf16")
    assert not cfg.use_cpu


def launch_args(name):
    """What `accelerate launch --config_file ... -m qdlib.cli train` makes of the file."""
    argv = ["--config_file", str(path(name)), "-m", "qdlib.cli", "train", "--profile", "runpod"]
    parser = launch_command_parser()
    args, defaults, mixed_precision_from_config = _validate_launch_command(parser.parse_args(argv))
    known = {a.dest for a in parser._actions}
    nested = {**defaults.fsdp_config, **defaults.deepspeed_config}
    unknown = [k for k in nested if k not in known]  # accelerate would ignore these silently
    assert unknown == [], f"{path(name)}: unknown keys {unknown}"
    return args, defaults, mixed_precision_from_config


@pytest.mark.parametrize("name", CONFIGS)
def test_launcher_accepts_the_config_and_runs_qd_as_a_module(name):
    args, _, _ = launch_args(name)
    assert args.module and args.training_script == "qdlib.cli"
    assert args.training_script_args == ["train", "--profile", "runpod"]
    assert args.num_processes == 2


def test_fsdp_plugin_builds_from_the_config(monkeypatch):
    args, _, _ = launch_args("fsdp")
    for key, value in prepare_multi_gpu_env(args).items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()  # a misspelled value (policy, state dict) fails
    assert plugin.fsdp_version == 2
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    assert plugin.reshard_after_forward is True


@pytest.mark.parametrize("name, stage", [("deepspeed_zero2", 2), ("deepspeed_zero3", 3)])
def test_deepspeed_plugin_builds_from_the_config(name, stage, monkeypatch):
    args, defaults, mp_from_config = launch_args(name)
    # as accelerate's own launch_command does before it starts DeepSpeed
    fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
    args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    _, env = prepare_deepspeed_cmd_env(args)
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    zero = DeepSpeedPlugin().deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage
    for part in ("offload_optimizer", "offload_param"):  # DeepSpeed itself would check on the pod
        assert zero[part]["device"] in ("none", "cpu", "nvme")
    assert zero["stage3_gather_16bit_weights_on_model_save"] is (stage == 3)
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"
