"""Security: secrets never reach a run's files, weights are never pickles, remote code is opt-in.

The planted-token test runs the whole course (`qd run`, shortened) in a copy of the project, with
random tokens in the environment and in the copy's ``.env``, then reads every file the run wrote.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import finished, planted_tokens  # the course run and its tokens: see conftest.py

from qdlib.config import CONFIG_DIR, PROJECT_ROOT, ConfigError, ModelSection, load_config
from qdlib.runs import LESSONS

SOURCE_DIRS = ("qdlib", "scripts", "benchmarks", "notebooks/src")
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
PICKLED_WEIGHTS = re.compile(r"model[\w.-]*\.(bin|pt|pth)$")  # pytorch_model.bin, adapter_model.bin


# ---------------------------------------------------------------- finding a token, in any form


def _base64_forms(secret: bytes) -> list[bytes]:
    """The base64 text of ``secret`` wherever it starts in an encoded blob (3 byte alignments).

    Only the characters that depend on ``secret`` alone are kept, so the form is found whatever
    bytes surround the secret.
    """
    forms = []
    for k in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * k + secret)
            start, end = -(-8 * k // 6), 8 * (k + len(secret)) // 6
            forms.append(encoded[start:end])
    return forms


def leak_forms(token: str) -> dict[str, bytes]:
    """Ways a token can leak: whole, its first or last 12 characters, base64, hex."""
    raw = token.encode()
    forms = {"the token": raw, "its first 12 chars": raw[:12], "its last 12 chars": raw[-12:]}
    forms |= {f"base64 #{i}": form for i, form in enumerate(_base64_forms(raw))}
    forms["hex"] = raw.hex().encode()
    return forms


def leaks_in(data: bytes, tokens: dict[str, str]) -> list[str]:
    """Which planted tokens (by name) ``data`` holds, and in which form."""
    return [
        f"{name} ({how})"
        for name, token in tokens.items()
        for how, form in leak_forms(token).items()
        if form in data
    ]


def scan(roots: list[Path], tokens: dict[str, str], skip: set[Path]) -> tuple[list[str], set[Path]]:
    """Read every regular file under ``roots`` (hidden ones too); return the leaks and the files."""
    found, scanned = [], set()
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path in skip or path.is_symlink() or not path.is_file():
                    continue
                scanned.add(path)
                found += [f"{path}: {leak}" for leak in leaks_in(path.read_bytes(), tokens)]
    return found, scanned


def test_leak_finder_sees_whole_partial_and_encoded_tokens(tmp_path):
    tokens = planted_tokens("test")
    hf, hub, wandb = tokens.values()
    (tmp_path / "deep/er").mkdir(parents=True)
    (tmp_path / "clean.json").write_text('{"token": "***"}', encoding="utf-8")
    (tmp_path / "deep/er/weights.bin").write_bytes(os.urandom(999) + hf.encode() + os.urandom(9))
    blob = base64.b64encode(b"Authorization: Bearer " + hub.encode())
    (tmp_path / "deep/.hidden.txt").write_bytes(b"x" + blob)
    (tmp_path / "log.txt").write_text(f"key {wandb[:12]}... (truncated)", encoding="utf-8")
    found, scanned = scan([tmp_path], tokens, skip=set())
    assert len(scanned) == 4
    assert any("weights.bin: HF_TOKEN (test) (the token)" in f for f in found)
    assert any(".hidden.txt: HUGGING_FACE_HUB_TOKEN (test) (base64" in f for f in found)
    assert any("log.txt: WANDB_API_KEY (test) (its first 12 chars)" in f for f in found)
    assert not any("clean.json" in f for f in found)


# ---------------------------------------------------------------- a whole run with planted tokens


# What users' runs write, one per lesson and kind: the walk must have read these.
RUN_FILES = (
    "config.yaml",
    "data/train.jsonl",
    "data/report.json",
    "model.json",
    "lora/adapter_config.json",
    "checkpoints/checkpoint-10/trainer_state.json",
    "checkpoints/checkpoint-10/training_args.bin",
    "checkpoints/checkpoint-10/optimizer.pt",
    "adapter/adapter_config.json",
    "adapter/adapter_model.safetensors",
    "train/log_history.json",
    "eval/metrics.json",
    "eval/predictions.jsonl",
    "eval/report.md",
    "export/README.md",
    "export/parity.json",
    "export/adapter/adapter_config.json",
    "export/merged/config.json",
    "export/merged/model.safetensors",
    *(f"notebooks/{lesson}.ipynb" for lesson in LESSONS),
)


@pytest.mark.slow
def test_planted_tokens_are_in_no_file_the_run_writes(course_run):
    run = finished(course_run)
    found, scanned = scan([run.root], run.tokens, skip={run.dotenv})
    missing = [rel for rel in RUN_FILES if run.run_dir / rel not in scanned]
    assert not missing, f"the walk did not read {missing}"
    assert not found, "planted tokens leaked:\n" + "\n".join(found)


@pytest.mark.slow
def test_planted_tokens_are_not_in_the_run_output(course_run):
    run = finished(course_run)
    assert "run finished" in run.stdout
    assert not leaks_in(run.stdout.encode(), run.tokens)
    assert not leaks_in(run.stderr.encode(), run.tokens)


@pytest.mark.slow
def test_push_to_hub_ran_and_skipped_offline_with_a_message(course_run):
    run = finished(course_run)
    nb = json.loads((run.run_dir / "notebooks/06_export.ipynb").read_text(encoding="utf-8"))
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "push to someone/planted-token-test skipped: offline" in outputs


@pytest.mark.slow
def test_the_walk_finds_a_token_written_into_the_run(course_run):
    """The leak test can fail: a token written into a checkpoint of the run is found."""
    run = finished(course_run)
    name, token = next(iter(run.tokens.items()))
    canary = next(run.run_dir.glob("checkpoints/checkpoint-*")) / "planted.bin"
    canary.write_bytes(os.urandom(64) + token.encode() + os.urandom(64))
    try:
        found, _ = scan([run.root], run.tokens, skip={run.dotenv})
    finally:
        canary.unlink()
    assert f"{canary}: {name} (the token)" in found


@pytest.mark.slow
def test_what_qdlib_writes_holds_no_pickles(course_run):
    """Adapters and exports are safetensors and JSON. (checkpoints/ is the Trainer's own resume
    state: optimizer.pt, scheduler.pt, rng_state.pth and training_args.bin are torch pickles.)"""
    run = finished(course_run)
    for folder in ("adapter", "export"):
        for path in (run.run_dir / folder).rglob("*"):
            if path.is_file():
                assert path.suffix not in PICKLE_SUFFIXES, path
                head = path.read_bytes()[:4]
                assert head != b"PK\x03\x04" and not head.startswith(b"\x80"), path


# ---------------------------------------------------------------- pickles in the source


def python_sources() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (PROJECT_ROOT / d).rglob("*.py"))


def unsafe_torch_loads(source: str, filename: str) -> list[str]:
    """``torch.load`` calls (also ``import torch as t``, ``from torch import load``) that do not
    pass ``weights_only=True``: those unpickle arbitrary objects, so a file can run code."""
    tree = ast.parse(source, filename)
    torch_names, load_names = {"torch"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names |= {a.asname or a.name for a in node.names if a.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        is_load = (
            isinstance(f, ast.Attribute)
            and f.attr == "load"
            and isinstance(f.value, ast.Name)
            and f.value.id in torch_names
        ) or (isinstance(f, ast.Name) and f.id in load_names)
        safe = any(
            k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
        if is_load and not safe:
            bad.append(f"{filename}:{node.lineno}")
    return bad


def pickle_uses(source: str, filename: str) -> list[str]:
    """Pickle modules, ``torch.save``, pickled weight files by name, safetensors turned off.

    (Names of the Trainer's own checkpoint files, e.g. ``optimizer.pt``, are allowed: code may
    check or delete them without unpickling.)
    """
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [
                f"{where} imports {m}"
                for m in mods
                if m and m.split(".")[0] in {"pickle", "cPickle", "dill", "cloudpickle", "joblib"}
            ]
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and ast.unparse(f) == "torch.save":
                found.append(f"{where} calls torch.save")
            for k in node.keywords:
                off = isinstance(k.value, ast.Constant) and k.value.value is False
                if k.arg in ("safe_serialization", "use_safetensors") and off:
                    found.append(f"{where} passes {k.arg}=False")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if PICKLED_WEIGHTS.search(node.value):
                found.append(f"{where} names pickled weights {node.value!r}")
    return found


def test_the_source_checks_can_fail():
    risky = (
        "import pickle\nimport torch as t\nfrom torch import load as tl\n"
        "t.load('a.pt')\ntl('b')\ntorch.load('c', weights_only=False)\n"
        "torch.load('d', weights_only=True)\ntorch.save({}, 'e')\n"
        "m.save_pretrained('f', safe_serialization=False)\nopen('pytorch_model.bin', 'wb')\n"
    )
    assert sorted(unsafe_torch_loads(risky, "x.py")) == ["x.py:4", "x.py:5", "x.py:6"]
    found = pickle_uses(risky, "x.py")
    for what in ("imports pickle", "torch.save", "safe_serialization=False", "pytorch_model.bin"):
        assert any(what in f for f in found), what


def test_torch_load_is_only_called_with_weights_only():
    sources = python_sources()
    assert PROJECT_ROOT / "qdlib/model.py" in sources
    bad = [b for p in sources for b in unsafe_torch_loads(p.read_text("utf-8"), str(p))]
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_qdlib_neither_writes_nor_reads_pickles():
    found = [f for p in python_sources() for f in pickle_uses(p.read_text("utf-8"), str(p))]
    assert not found, found


# ---------------------------------------------------------------- trust_remote_code


def test_remote_code_is_off_in_every_shipped_profile_and_by_default():
    profiles = sorted(CONFIG_DIR.glob("*.yaml"))
    assert profiles
    for path in profiles:
        assert load_config(path).model.trust_remote_code is False, path
    assert ModelSection().trust_remote_code is False


def test_a_profile_without_the_key_gets_remote_code_off(tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / "cpu_tiny.yaml").read_text(encoding="utf-8"))
    raw["model"].pop("trust_remote_code", None)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_config(path).model.trust_remote_code is False


class Recorder:
    """Stands in for ``from_pretrained``: records the keyword arguments, downloads nothing."""

    def __init__(self):
        self.kwargs: list[dict] = []

    def __call__(self, path, **kwargs):
        self.kwargs.append(kwargs)

        class Loaded:
            pad_token = "<pad>"

        return Loaded()


@pytest.mark.parametrize("remote", [False, True])
def test_the_loaders_pass_the_profiles_trust_remote_code(monkeypatch, remote):
    import transformers

    from qdlib.model import load_model, load_tokenizer

    recorder = Recorder()
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", recorder)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", recorder)
    cfg = load_config(
        "cpu_tiny",
        model={"name": "someone/remote-model", "trust_remote_code": remote},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_tokenizer(cfg)
        load_model(cfg, quantized=False)
    assert [k["trust_remote_code"] for k in recorder.kwargs] == [remote, remote]


def test_remote_code_on_warns_naming_the_model_and_the_risk(monkeypatch):
    import transformers

    from qdlib.model import load_tokenizer

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", Recorder())
    cfg = load_config("cpu_tiny", model={"name": "someone/remote-model", "trust_remote_code": True})
    with pytest.warns(UserWarning, match=r"someone/remote-model runs Python code .*permissions"):
        load_tokenizer(cfg)


def test_remote_code_off_loads_without_a_warning(monkeypatch):
    import transformers

    from qdlib.model import load_tokenizer

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", Recorder())
    cfg = load_config("cpu_tiny", model={"name": "someone/remote-model"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_tokenizer(cfg)
    assert not [w for w in caught if "trust_remote_code" in str(w.message)]


# ---------------------------------------------------------------- tokens in configs


def test_a_profile_cannot_hold_a_token():
    """No setting takes a token, so none can be copied into a run's config.yaml."""
    for section in ("model", "training", "export"):
        with pytest.raises(ConfigError, match="unknown key"):
            load_config("cpu_tiny", **{section: {"hub_token": "hf_planted"}})


# ---------------------------------------------------------------- code planted in a model folder

PLANTED_CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("planted code ran")
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
class PlantedConfig(LlamaConfig):
    model_type = "planted_qd"
class PlantedModel(LlamaForCausalLM):
    config_class = PlantedConfig
class PlantedTokenizer(PreTrainedTokenizerFast):
    pass
"""


def planted_model_folder(root: Path) -> tuple[Path, Path]:
    """A model folder whose config and tokenizer name Python code of its own (``auto_map``);
    that code writes a marker file when it is imported. Returns (folder, marker)."""
    folder, marker = root / "planted-model", root / "planted-code-ran"
    folder.mkdir()
    (folder / "planted.py").write_text(PLANTED_CODE.format(marker=str(marker)), encoding="utf-8")
    auto_map = {
        "AutoConfig": "planted.PlantedConfig",
        "AutoModelForCausalLM": "planted.PlantedModel",
        "AutoTokenizer": ["planted.PlantedTokenizer", None],
    }
    config = {"model_type": "planted_qd", "auto_map": auto_map, "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 300}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer_config = {"auto_map": {"AutoTokenizer": auto_map["AutoTokenizer"]}}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return folder, marker


def qd(args: list[str], stdin: str | None, cwd: Path) -> subprocess.CompletedProcess:
    """`qd ARGS` in a fresh process, ``stdin`` typed in (None: stdin closed)."""
    return subprocess.run(
        [sys.executable, "-m", "qdlib.cli", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        cwd=cwd,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


LOADING_COMMANDS = {
    "decompose": lambda folder: ["decompose", "--model", str(folder), "What is 1 + 1?"],
    "decompose with a profile": lambda folder: [
        "decompose",
        "--profile",
        "cpu_tiny",
        "--model",
        str(folder),
        "What is 1 + 1?",
    ],
    "estimate": lambda folder: ["estimate", "--model", str(folder)],
}


@pytest.mark.parametrize("stdin", ["y\n", "yes\n" * 20, ""], ids=["y", "yes-pipe", "closed"])
@pytest.mark.parametrize("command", LOADING_COMMANDS)
def test_no_command_runs_code_planted_in_a_model_folder(tmp_path, monkeypatch, capsys, command,
                                                          stdin):  # fmt: skip
    """Whatever is typed on stdin: refused with the setting named, nothing run, no prompt."""
    from qdlib.cli import main

    folder, marker = planted_model_folder(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))  # "": closed, reading it hits the end
    assert main(LOADING_COMMANDS[command](folder)) == 2
    out = capsys.readouterr()
    assert not marker.exists(), "the folder's own code ran"
    assert "model.trust_remote_code" in out.err and str(folder) in out.err
    assert "[y/N]" not in out.out + out.err


def from_pretrained_calls_without_the_setting(source: str, filename: str) -> list[str]:
    """``X.from_pretrained(...)`` calls that leave ``trust_remote_code`` unset (so transformers
    may ask on stdin), except ``PeftModel``'s: an adapter folder holds JSON and tensors only."""
    bad = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = getattr(node.func.value, "id", "")
        if node.func.attr != "from_pretrained" or receiver == "PeftModel":
            continue
        if not any(k.arg == "trust_remote_code" for k in node.keywords):
            bad.append(f"{filename}:{node.lineno}")
    return bad


def test_every_from_pretrained_in_qdlib_passes_trust_remote_code():
    bad = [
        line
        for path in sorted((PROJECT_ROOT / "qdlib").rglob("*.py"))
        for line in from_pretrained_calls_without_the_setting(path.read_text("utf-8"), str(path))
    ]
    assert bad == [], "load through qdlib.remote_code.pretrained"
    assert from_pretrained_calls_without_the_setting("AutoConfig.from_pretrained(p)", "x") == [
        "x:1"
    ]


def test_the_planted_folder_does_run_its_code_when_the_profile_allows_it(tmp_path):
    """The control: the folder really carries code that transformers would run."""
    folder, marker = planted_model_folder(tmp_path)
    profile = tmp_path / "trusting.yaml"
    raw = yaml.safe_load((CONFIG_DIR / "rtx4060.yaml").read_text(encoding="utf-8"))
    raw["model"]["trust_remote_code"] = True
    profile.write_text(yaml.safe_dump(raw), encoding="utf-8")
    qd(["estimate", "--profile", str(profile), "--model", str(folder)], None, tmp_path)
    assert marker.read_text(encoding="utf-8") == "planted code ran"
