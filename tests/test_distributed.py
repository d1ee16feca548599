"""`qd train` under torchrun and accelerate launch: two CPU processes (gloo) train one adapter.

Both processes must train together (each reports 2 processes and the same weights, and an epoch
takes half the steps one process needs), only the first may write the run directory, and the
adapter it writes must load and generate.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from qdlib.config import PROJECT_ROOT, load_config
from qdlib.train import checkpoint_problem

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
BATCH = 8
SMALL = {
    "training.max_steps": "6",
    "training.save_steps": "3",
    "training.batch_size": str(BATCH),
    "training.eval_steps": "null",
    "evaluation.generate_every": "null",
    "data.max_samples": "200",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHERS = {
    "torchrun": ["torchrun", "--nproc_per_node", "2", "--master_port"],
    # the RunPod config, on CPU: no bf16 there
    "accelerate": [
        "accelerate",
        "launch",
        "--config_file",
        str(PROJECT_ROOT / "configs/accelerate/ddp.yaml"),
        "--mixed_precision",
        "no",
        "--main_process_port",
    ],
}


@pytest.fixture(scope="module", params=list(LAUNCHERS))
def launched(request, tmp_path_factory):
    """A finished two-process run: its directory and everything it printed."""
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    launcher = LAUNCHERS[request.param]
    params = [a for k, v in SMALL.items() for a in ("-p", k, v)]
    cmd = [str(BIN / launcher[0]), *launcher[1:], str(free_port()), "-m", "qdlib.cli", "train"]
    cmd += ["--profile", "cpu_tiny"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [*cmd, "--run-dir", str(run_dir), *params],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return run_dir, proc.stdout


def test_two_processes_share_each_epoch(launched):
    run_dir, _ = launched
    summary = json.loads((run_dir / "train/summary.json").read_text(encoding="utf-8"))
    assert summary["world_size"] == 2
    # each process got half of every epoch's examples, so an epoch took half the steps
    n_train = len((run_dir / "data/train.jsonl").read_text(encoding="utf-8").splitlines())
    assert summary["epoch"] == pytest.approx(6 / math.ceil(n_train / (BATCH * 2)))


def test_only_the_first_process_wrote_the_run_directory(launched):
    run_dir, out = launched
    assert re.findall(r"\[rank (\d)/2\] (?:run directory|wrote)", out) == ["0", "0"]
    # temporary files and folders of the writers (the run's own status file is meant to stay)
    leftovers = [p for p in run_dir.rglob(".*") if p.name != ".qdlib-run.json"]
    assert leftovers == []
    assert sorted(p.name for p in run_dir.glob("*adapter*")) == ["adapter"]
    for checkpoint in sorted((run_dir / "checkpoints").iterdir()):
        # one optimizer state written by the first process, an RNG state from each process
        assert checkpoint_problem(checkpoint, world_size=2) is None
        assert sorted(p.name for p in checkpoint.glob("rng_state*")) == [
            "rng_state_0.pth",
            "rng_state_1.pth",
        ]


def test_the_adapter_loads_and_generates(launched):
    from qdlib.inference import generate
    from qdlib.model import load_tokenizer, load_with_adapter

    run_dir, _ = launched
    weights = load_file(run_dir / "adapter/adapter_model.safetensors")
    assert any(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k)  # B starts at 0
    cfg = load_config(run_dir / "config.yaml")
    tokenizer = load_tokenizer(cfg)
    model = load_with_adapter(cfg, run_dir / "adapter")
    out = generate(model, tokenizer, ["서울과 부산 중 인구가 더 많은 도시는?"], max_new_tokens=8)
    assert len(out[0].ids) > 0
