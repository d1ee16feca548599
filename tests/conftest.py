"""Shared fixtures: offline mode, the cpu_tiny profile and tokenizer, a short trained run, and one
whole course run (`qd run`) as a user on the hardest machine we can emulate would run it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from qdlib.config import PROJECT_ROOT, Config, load_config
from qdlib.files import write_jsonl
from qdlib.model import load_tokenizer
from qdlib.prompts import tokenize_splits
from qdlib.runs import open_run
from qdlib.splits import prepare_splits
from qdlib.train import save_adapter, setup


def set_offline(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    """HF_HUB_OFFLINE for one test: in the environment (child processes read it) and in
    huggingface_hub's constant, which the hub reads once, when it is imported."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture(scope="session")
def tiny_cfg() -> Config:
    return load_config("cpu_tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_cfg):
    return load_tokenizer(tiny_cfg)


def short_run(tmp_path, **overrides):
    cfg = load_config("cpu_tiny", **overrides)
    splits = prepare_splits(cfg)
    tok = load_tokenizer(cfg)
    tokenized = tokenize_splits(splits.train[:400], splits.eval[:40], tok, cfg.data.max_seq_length)
    trainer = setup(cfg, tok, tokenized, tmp_path / "checkpoints", splits.eval)
    trainer.train()
    return cfg, tok, trainer, splits


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A run directory after 30 steps: config, eval split, adapter."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg, tok, trainer, splits = short_run(
        run_dir,
        training={"max_steps": 30, "eval_steps": None, "logging_steps": 5},
        evaluation={
            "generate_every": 15,
            "generate_samples": 4,
            "max_new_tokens": 16,
            "max_samples": 8,
        },
    )
    open_run(run_dir, cfg)
    write_jsonl(run_dir / "data/train.jsonl", splits.train[:400])
    write_jsonl(run_dir / "data/eval.jsonl", splits.eval)
    save_adapter(trainer.model, tok, run_dir / "adapter")
    return cfg, tok, trainer, run_dir


# ---------------------------------------------------------------- one whole course run

SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")
# On PYTHONPATH, this folder makes bitsandbytes take its AVX-512 BF16 import branch on any CPU.
FORCE_AVX512BF16 = Path(__file__).parent / "avx512bf16"


def planted_tokens(where: str) -> dict[str, str]:
    """Fresh random values shaped like real ones (hf_... tokens, a 40-hex W&B key)."""
    return {
        f"HF_TOKEN ({where})": f"hf_{secrets.token_hex(16)}",
        f"HUGGING_FACE_HUB_TOKEN ({where})": f"hf_{secrets.token_hex(16)}",
        f"WANDB_API_KEY ({where})": secrets.token_hex(20),
    }


@dataclass
class PlantedRun:
    root: Path  # everything the run could write to: project copy, caches, home, temp
    project: Path
    run_dir: Path
    dotenv: Path
    tokens: dict[str, str]
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def course_run(tmp_path_factory) -> PlantedRun:
    """`qd run --profile cpu_tiny` (10 steps, a few eval questions), push_to_hub set, offline.

    The project is copied so that its ``.env`` (read from the project root) can hold planted
    tokens without touching yours; caches, home and temp files go under the same root. Every
    process of the run, the notebook kernels included, takes bitsandbytes' AVX-512 BF16 import
    branch (:data:`FORCE_AVX512BF16`), as on a recent Intel or AMD CPU, whatever this CPU is.
    """
    root = tmp_path_factory.mktemp("planted")
    project = root / "project"
    junk = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for name in ("qdlib", "notebooks", "configs", "data", "benchmarks/results", "docs/runs"):
        shutil.copytree(PROJECT_ROOT / name, project / name, ignore=junk)
    in_env, in_dotenv = planted_tokens("environment"), planted_tokens(".env")
    dotenv = project / ".env"
    dotenv.write_text(
        "".join(f"{n.split()[0]}={v}\n" for n, v in in_dotenv.items()), encoding="utf-8"
    )
    for sub in ("home", "tmp", "cache", "hf_home"):
        (root / sub).mkdir()
    drop = {"PYTHONPATH", "QDLIB_RUNS", "IPYTHONDIR", "MPLCONFIGDIR", *SECRET_VARS}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("XDG_", "JUPYTER_"))
    }
    env |= {n.split()[0]: v for n, v in in_env.items()}
    env |= {
        "HF_HUB_OFFLINE": "1",
        # the copy's qdlib, in `qd` and in every notebook kernel; the AVX-512 BF16 branch
        "PYTHONPATH": os.pathsep.join((str(project), str(FORCE_AVX512BF16))),
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "QDLIB_CACHE": str(root / "cache"),
        "HF_HOME": str(root / "hf_home"),
    }

    # The kernels import the copy, so its .env is the one qdlib reads.
    probe = (
        "import sys\nfrom qdlib.config import PROJECT_ROOT\nfrom qdlib.hub import hub_token\n"
        "print(str(PROJECT_ROOT) == sys.argv[1], hub_token() in sys.argv[2:])"
    )
    without_env_tokens = {k: v for k, v in env.items() if k not in SECRET_VARS}
    hf_in_dotenv = [v for n, v in in_dotenv.items() if n.startswith("H")]
    done = subprocess.run(
        [sys.executable, "-c", probe, str(project), *hf_in_dotenv],
        cwd=project / "notebooks",
        env=without_env_tokens,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == ["True", "True"], done.stderr[-2000:]

    run_dir = project / "runs" / "planted"
    overrides = {
        "training.max_steps": 10,
        "training.save_steps": 5,
        "training.logging_steps": 5,
        "evaluation.max_samples": 8,
        "evaluation.generate_every": "null",
        "export.parity_samples": 4,
        "export.push_to_hub": "someone/planted-token-test",
    }
    cmd = [sys.executable, "-m", "qdlib.cli", "run", "--profile", "cpu_tiny"]
    cmd += ["--run-dir", str(run_dir)]
    for key, value in overrides.items():
        cmd += ["-p", key, str(value)]
    done = subprocess.run(
        cmd, cwd=project, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    tokens = in_env | in_dotenv
    return PlantedRun(
        root, project, run_dir, dotenv, tokens, done.returncode, done.stdout, done.stderr
    )


def finished(run: PlantedRun) -> PlantedRun:
    assert run.returncode == 0, f"the run failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def benchmark_script(name: str):
    """A script of ``benchmarks/`` imported as a module (the folder is not a package)."""
    import importlib.util

    path = PROJECT_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
