"""Hostile and broken inputs, one case each: the exit code, the words of the message, and that
nothing on disk changed that should not have. The classes come from two robustness probes of
`qd`: numbers, YAML, text in data, messages, model folders, run directories, corrupted files.
The cases registered with :func:`case` carry their class (``KIND``, set above each section).

Each case builds what it needs under ``tmp`` and returns the ``qd`` arguments; the test takes a
snapshot of ``tmp`` (every file's bytes, links as links), runs ``qd`` in this process and
compares. Cases that must write (a retry, a valid file) say what they may change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from conftest import set_offline
from safetensors.torch import save_file
from test_resume import cut, fake_checkpoint, flip_a_byte

from qdlib.cli import main
from qdlib.config import PROJECT_ROOT, ConfigError, ProfileLoader, load_config, read_yaml
from qdlib.runs import RunDirError, lock_path, run_lock

GOOD = {"question": "Which is older, A or B?", "sub_questions": ["How old is A?", "How old is B?"]}
TINY = ["--profile", "cpu_tiny"]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every entry under ``root``: a file's bytes, a link's target, a folder's mark. A run's
    empty lock file beside it (``.<run>.lock``, kept after use as filelock keeps it) is not
    counted: it holds nothing, and every later command on that run uses it again."""
    out = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            run = path.with_name(name.removeprefix(".").removesuffix(".lock"))
            if path.is_file() and not path.stat().st_size and path.resolve() == lock_path(run):
                continue
            if path.is_symlink():
                out[rel] = b"-> " + os.readlink(path).encode()
            elif path.is_dir():
                out[rel] = b"<dir>"
            else:
                out[rel] = path.read_bytes()
    return out


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def jsonl(*records: object) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def profile(tmp: Path, text: str, name: str = "mine.yaml") -> str:
    """A profile: cpu_tiny's, with ``text`` appended (later keys win in PyYAML? no: we write
    whole sections, so the case's section replaces the shipped one)."""
    return str(write(tmp, name, text))


def a_run(tmp: Path, changes: dict | None = None, checkpoints: tuple[int, ...] = (4, 8)) -> Path:
    """A run directory as qd train leaves it (cpu_tiny settings), with small but whole
    checkpoints and an adapter."""
    run = tmp / "run"
    for step in checkpoints:
        fake_checkpoint(run / "checkpoints", step)
    write(run, "config.yaml", load_config("cpu_tiny", **(changes or {})).to_yaml())
    write(run, "adapter/adapter_config.json", json.dumps({"peft_type": "LORA", "r": 64}))
    save_file({"lora_A": torch.zeros(2, 2)}, run / "adapter/adapter_model.safetensors")
    write(run, ".qdlib-run.json", json.dumps({"status": "finished", "pid": 1}))
    return run


@dataclass
class Case:
    build: Callable[[Path], list[str]]
    code: int
    says: tuple[str, ...]
    kind: str  # the class of input it probes
    may_change: tuple[str, ...] = field(default=())  # paths (relative to tmp) it may write


CASES: dict[str, Case] = {}
KIND = ""  # the class of input the cases registered next probe; each section sets it


def case(name: str, code: int, *says: str, may_change: tuple[str, ...] = ()):
    """Register the case ``name``, of the class ``KIND`` names where it is written."""

    def register(build: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        assert name not in CASES, f"two cases named {name!r}: the second would hide the first"
        CASES[name] = Case(build, code, says, KIND, may_change)
        return build

    return register


def data_check(tmp: Path, name: str, text: str | bytes, *more: str) -> list[str]:
    """`qd data check` on a file this case writes (no tokenizer: fast)."""
    return ["data", "check", *more, str(write(tmp, name, text)), "--no-tokenizer"]


def check(tmp: Path, p: str) -> list[str]:
    """Validate a profile through `qd data check` (cheap: no model, no tokenizer)."""
    return ["data", "check", str(PROJECT_ROOT / "data/examples/sample_train.jsonl"),
            "--no-tokenizer", "--profile", p]  # fmt: skip


# ---------------------------------------------------------------- numbers in profiles

NUMBERS = {
    "lr-nan": ("training:\n  learning_rate: .nan\n", "training.learning_rate", "from 0.0 to 1.0"),
    "epochs-inf": ("training:\n  epochs: .inf\n", "training.epochs", "got inf"),
    "seed-400-digits": (f"seed: {'9' * 400}\n", "seed must be an integer from 0", "..."),
    "seed-negative": ("seed: -1\n", "seed must be an integer from 0", "got -1"),
    "lora-r-huge": ("lora:\n  r: 1000000\n", "lora.r", "from 1 to 1024"),
    "warmup-negative": ("training:\n  warmup_ratio: -0.1\n", "training.warmup_ratio", "-0.1"),
    "max-steps-zero": ("training:\n  max_steps: 0\n", "training.max_steps", "got 0"),
    "batch-text": ("training:\n  batch_size: eight\n", "training.batch_size", "'eight'"),
    "targets-empty": ("lora:\n  target_modules: []\n", "lora.target_modules", "all-linear"),
    "eval-fraction-big": ("data:\n  eval_fraction: 5\n", "data.eval_fraction", "0.9"),
}


@pytest.mark.parametrize("name", NUMBERS)
def test_a_bad_number_in_a_profile_names_the_file_and_key(tmp_path, capsys, name):
    text, *says = NUMBERS[name]
    p = profile(tmp_path, text)
    before = snapshot(tmp_path)
    assert main(check(tmp_path, p)) == 2
    err = capsys.readouterr().err
    assert p in err and all(s in err for s in says), err
    assert len(err) < 600 and snapshot(tmp_path) == before


# ---------------------------------------------------------------- YAML hazards

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
YAML_CASES = {
    "alias-bomb": (ALIAS_BOMB.encode(), "more than 20 aliases"),
    "number-key": (b"1: one\n", "keys must be text"),
    "latin-1": ("profile: caf\u00e9\n".encode("latin-1"), "not UTF-8", "line 1"),
    "trust-on": (b"model:\n  trust_remote_code: on\n", "model.trust_remote_code", "'on'"),
    "trust-yes": (b"model:\n  trust_remote_code: yes\n", "true or false", "'yes'"),
    "unknown-key": (b"lora:\n  rank: 8\n", "unknown key lora.rank", "Allowed keys in lora"),
    "list-for-section": (b"training: [1, 2]\n", "training must be a mapping"),
    "empty-file": (b"", "must be a mapping"),
    "syntax-error": (b"data: [unclosed\n", "not valid YAML"),
    "nested-key-number": (b"training:\n  7: 1\n", "keys in training must be text"),
}


@pytest.mark.parametrize("name", YAML_CASES)
def test_yaml_hazards_are_clear_errors(tmp_path, capsys, name):
    text, *says = YAML_CASES[name]
    p = str(write(tmp_path, "mine.yaml", text))
    before = snapshot(tmp_path)
    assert main(check(tmp_path, p)) == 2
    err = capsys.readouterr().err
    assert all(s in err for s in says), err
    assert len(err) < 1200 and "Traceback" not in err and snapshot(tmp_path) == before


def expanded_size(node: yaml.Node, sizes: dict[int, int] | None = None) -> int:
    """How many scalars a composed YAML node stands for once every alias is expanded. An alias
    is the anchored node itself, met again: each node is counted once and its size reused."""
    sizes = {} if sizes is None else sizes
    if id(node) not in sizes:
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
        elif isinstance(node, yaml.SequenceNode):
            sizes[id(node)] = sum(expanded_size(item, sizes) for item in node.value)
        else:  # a mapping: (key, value) pairs
            sizes[id(node)] = sum(expanded_size(n, sizes) for pair in node.value for n in pair)
    return sizes[id(node)]


def test_the_alias_bomb_would_be_387_million_items_without_the_alias_limit():
    """The control for the alias-bomb case: under 600 bytes, and with the limit lifted the
    profile reader composes it into a last list of 9 levels of 9: 9**9 items once expanded."""
    unlimited = type("Unlimited", (ProfileLoader,), {"max_aliases": 10**9})
    bomb = yaml.compose(ALIAS_BOMB, Loader=unlimited)
    assert len(ALIAS_BOMB) < 600 and expanded_size(bomb.value[-1][1]) == 9**9
    with pytest.raises(ConfigError, match=r"mine\.yaml: not valid YAML: more than 20 aliases"):
        read_yaml(ALIAS_BOMB, "mine.yaml")


def test_a_profile_may_use_20_aliases_and_not_21():
    """The limit refuses bombs, not anchors: a profile can still reuse a value a few times."""

    def aliases(n: int) -> str:
        return "x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(n))

    assert read_yaml(aliases(20), "mine.yaml")["k19"] == 1
    with pytest.raises(ConfigError, match="more than 20 aliases"):
        read_yaml(aliases(21), "mine.yaml")


# ---------------------------------------------------------------- -p overrides

OVERRIDES = {
    "lr-nan": (["training.learning_rate", "nan"], "-p: training.learning_rate"),
    "bad-yaml": (["training.learning_rate", "[1"], "-p training.learning_rate: not valid YAML"),
    "unknown-key": (["training.foo", "1"], "-p: unknown key training.foo"),
    "odd-key": (["bad key!", "1"], "a key is dotted names"),
    "r-zero": (["lora.r", "0"], "-p: lora.r must be an integer from 1 to 1024"),
    "seed-negative": (["seed", "-1"], "-p: seed"),
    "trust-on": (["model.trust_remote_code", "on"], "-p: model.trust_remote_code", "'on'"),
    "targets-empty": (["lora.target_modules", "[]"], "lora.target_modules"),
    "epochs-huge": (["training.epochs", "1e9"], "-p: training.epochs"),
    "missing-data": (["data.train_file", "no_such.jsonl"], "no_such.jsonl: no such file"),
    "broken-data": (
        ["data.train_file", str(PROJECT_ROOT / "data/examples/broken.jsonl")],
        "broken.jsonl, line 3",
    ),
    "no-model-folder": (["model.name", "./no/such/model"], "no such model folder"),
    "hub-model-offline": (["model.name", "nobody/not-cached-model"], "not in the hub's cache"),
    "section-as-value": (["training", "7"], "training must be a mapping"),
}


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("name", OVERRIDES)
def test_a_bad_override_fails_before_the_run_directory_exists(
    tmp_path, capsys, monkeypatch, command, name
):
    set_offline(monkeypatch, True)
    monkeypatch.chdir(tmp_path)
    pair, *says = OVERRIDES[name]
    run = tmp_path / "run"
    assert main([command, *TINY, "--run-dir", str(run), "-p", *pair]) == 2
    err = capsys.readouterr().err
    assert all(s in err for s in says), err
    assert not run.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- CLI flags

FLAGS = {
    "decompose-batch-zero": (
        ["decompose", "--model", "m", "--batch-size", "0", "q?"],
        "--batch-size: must be an integer from 1",
    ),
    "decompose-tokens-negative": (
        ["decompose", "--model", "m", "--max-new-tokens", "-1", "q?"],
        "--max-new-tokens: must be an integer from 1",
    ),
    "decompose-tokens-text": (
        ["decompose", "--model", "m", "--max-new-tokens", "1e9", "q?"],
        "got '1e9'",
    ),
    "estimate-seq-len-zero": (["estimate", "--seq-len", "0"], "--seq-len: must be an integer"),
    "estimate-batch-negative": (["estimate", "--batch", "-4"], "--batch: must be an integer"),
    "estimate-card-zero": (["estimate", "--card-gib", "0"], "--card-gib: must be a number"),
    "estimate-card-inf": (["estimate", "--card-gib", "inf"], "--card-gib: must be a number"),
    "estimate-card-nan": (["estimate", "--card-gib", "nan"], "--card-gib: must be a number"),
}


@pytest.mark.parametrize("name", FLAGS)
def test_a_flag_out_of_range_is_refused_by_name(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    argv, says = FLAGS[name]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and says in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- text in data
KIND = "text in data"


@case("u2028-inside-json-string", 0, "1 valid records")
def _(tmp):
    return data_check(tmp, "d.jsonl", jsonl(dict(GOOD, question="A\u2028B?")))


@case("zero-width-only-question", 1, "no visible text")
def _(tmp):
    return data_check(tmp, "d.jsonl", jsonl(GOOD, dict(GOOD, question="\u200b\u200c\u2060")))


@case("control-character", 1, "control character (U+0007)")
def _(tmp):
    return data_check(tmp, "d.jsonl", jsonl(GOOD, dict(GOOD, question="A\x07?")))


@case("deep-nesting", 1, "nested too deeply")
def _(tmp):
    deep = "[" * 100_000 + "]" * 100_000
    return data_check(tmp, "d.jsonl", jsonl(GOOD) + deep + "\n")


@case("deep-nesting-json", 2, "nested too deeply")
def _(tmp):
    return data_check(tmp, "d.json", "[" * 100_000 + "]" * 100_000)


@case("csv-field-over-128k", 2, "not readable as CSV", "line")
def _(tmp):
    big = "x" * 200_000
    text = f"question_id,question_text,decomposition\nq1,{big}?,return a\n"
    return ["data", "check", f"break:{write(tmp, 'b.csv', text)}", "--no-tokenizer"]


@case("fifty-megabyte-question", 1, "characters long", "at most 2,000")
def _(tmp):
    return data_check(tmp, "d.jsonl", jsonl(GOOD, dict(GOOD, question="Q" * 50_000_000)))


@case("too-many-steps", 1, "33 steps; at most 32")
def _(tmp):
    return data_check(tmp, "d.jsonl", jsonl(GOOD, dict(GOOD, sub_questions=["a?"] * 33)))


@case("all-invalid-shows-reasons", 2, "no valid records (2 skipped)", 'field "question" is missing')
def _(tmp):
    return [
        "data",
        "check",
        str(write(tmp, "d.jsonl", jsonl({"q": 1}, {"q": 2}))),
        "--no-tokenizer",
    ]


@case("strategyqa-without-prefix", 2, "looks like StrategyQA", "strategyqa:PATH")
def _(tmp):
    item = {"qid": "1", "question": "Q?", "decomposition": ["A?"], "answer": True}
    return data_check(tmp, "s.json", json.dumps([item]))


@case("musique-without-prefix", 2, "looks like MuSiQue", "musique:PATH")
def _(tmp):
    item = {"id": "1", "question": "Q?", "question_decomposition": [{"question": "A?"}]}
    return data_check(tmp, "m.jsonl", jsonl(item))


@case("csv-without-prefix", 2, "break:")
def _(tmp):
    text = "question_id,question_text,decomposition\nq1,Q?,return a\n"
    return data_check(tmp, "b.csv", text)


@case("symlink-loop", 2, "symbolic link loop")
def _(tmp):
    (tmp / "loop.jsonl").symlink_to(tmp / "loop.jsonl")
    return ["data", "check", str(tmp / "loop.jsonl"), "--no-tokenizer"]


@case("dangling-symlink", 2, "symbolic link to nothing")
def _(tmp):
    (tmp / "gone.jsonl").symlink_to(tmp / "never-there.jsonl")
    return ["data", "check", str(tmp / "gone.jsonl"), "--no-tokenizer"]


@case("a-folder", 2, "a folder")
def _(tmp):
    (tmp / "d.jsonl").mkdir()
    return ["data", "check", str(tmp / "d.jsonl"), "--no-tokenizer"]


@case("latin-1-data", 2, "not UTF-8", "line 2")
def _(tmp):
    text = jsonl(GOOD).encode() + json.dumps(
        dict(GOOD, question="caf\u00e9?"), ensure_ascii=False
    ).encode("latin-1")
    return data_check(tmp, "d.jsonl", text)


@case("empty-data", 2, "the file is empty")
def _(tmp):
    return data_check(tmp, "d.jsonl", "")


@case("json-object-not-list", 2, "must hold a list of records")
def _(tmp):
    return data_check(tmp, "d.json", json.dumps(GOOD))


@case("sub-question-too-long", 1, "item 1 is 2,001 characters long")
def _(tmp):
    long = dict(GOOD, sub_questions=["a?", "b" * 2001])
    return data_check(tmp, "d.jsonl", jsonl(GOOD, long))


@case("missing-file", 2, "no such file", "looked in")
def _(tmp):
    return ["data", "check", str(tmp / "nothing.jsonl"), "--no-tokenizer"]


@case("eval-file-missing", 2, "no such file")
def _(tmp):
    good = write(tmp, "d.jsonl", jsonl(GOOD))
    return ["data", "check", str(good), "--eval", str(tmp / "no.jsonl"), "--no-tokenizer"]


@case("decompose-empty-question", 2, "question 1 must be a non-empty string")
def _(tmp):
    return ["decompose", "--model", str(tmp / "m"), ""]


@case("decompose-blank-question", 2, "question 2 must be a non-empty string")
def _(tmp):
    return ["decompose", "--model", str(tmp / "m"), "Q?", "   "]


@case("decompose-control-question", 2, "control character (U+001B)")
def _(tmp):
    return ["decompose", "--model", str(tmp / "m"), "\x1b[31mred?"]


def decompose_file(tmp: Path, name: str, content: str | bytes) -> list[str]:
    """`qd decompose --file` on a file of questions written for the case."""
    return ["decompose", "--model", str(tmp / "m"), "--file", str(write(tmp, name, content))]


@case("decompose-file-json-object", 2, "must hold a list")
def _(tmp):
    return decompose_file(tmp, "q.json", json.dumps(GOOD))


@case("decompose-file-bad-line", 2, "q.jsonl, line 2", "not valid JSON")
def _(tmp):
    return decompose_file(tmp, "q.jsonl", '"A?"\n{oops\n')


@case("decompose-file-csv", 2, "use .txt")
def _(tmp):
    return decompose_file(tmp, "q.csv", "A?\n")


@case("decompose-file-latin-1", 2, "not UTF-8")
def _(tmp):
    return decompose_file(tmp, "q.txt", "caf\u00e9?\n".encode("latin-1"))


@case("decompose-model-missing", 2, "neither a model")
def _(tmp):
    return ["decompose", "--model", str(tmp / "nothing"), "Q?"]


# ---------------------------------------------------------------- model folders
KIND = "model folders"


@case("model-folder-without-config", 2, "has no config.json")
def _(tmp):
    write(tmp, "model/tokenizer.json", "{}")
    return ["train", *TINY, "--run-dir", str(tmp / "run"), "-p", "model.name", str(tmp / "model")]


@case("model-folder-without-tokenizer", 2, "no a tokenizer")
def _(tmp):
    write(tmp, "model/config.json", "{}")
    return ["train", *TINY, "--run-dir", str(tmp / "run"), "-p", "model.name", str(tmp / "model")]


@case("model-name-is-a-file", 2, "no such model folder")
def _(tmp):
    write(tmp, "model.bin", b"\0")
    return [
        "train",
        *TINY,
        "--run-dir",
        str(tmp / "run"),
        "-p",
        "model.name",
        str(tmp / "model.bin"),
    ]


# ---------------------------------------------------------------- run directories
KIND = "run directories"


@case("eval-missing-run", 2, "no such run directory")
def _(tmp):
    return ["eval", "--run-dir", str(tmp / "nothing")]


@case("eval-not-a-run", 2, "not a run directory (no config.yaml)")
def _(tmp):
    (tmp / "empty").mkdir()
    return ["eval", "--run-dir", str(tmp / "empty")]


@case("eval-cut-adapter", 2, "adapter_model.safetensors is cut", "train the adapter again")
def _(tmp):
    run = a_run(tmp)
    cut(run / "adapter/adapter_model.safetensors")
    write(run, "data/eval.jsonl", jsonl(GOOD))
    return ["eval", "--run-dir", str(run)]


@case("eval-missing-adapter", 2, "no adapter here")
def _(tmp):
    run = a_run(tmp)
    for f in (run / "adapter").iterdir():
        f.unlink()
    write(run, "data/eval.jsonl", jsonl(GOOD))
    return ["eval", "--run-dir", str(run)]


def adapter_of_another_model(run: Path) -> None:
    """Put into ``run/adapter`` a real LoRA adapter, trained (well, made) on a model twice as
    narrow as cpu_tiny's: the same layer names, other sizes."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from qdlib.notices import quiet_hf

    spec = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    with quiet_hf():  # peft 0.21 notice inside get_peft_model, see qdlib.notices
        other = get_peft_model(LlamaForCausalLM(spec), LoraConfig(r=4, target_modules=["q_proj"]))
    for f in (run / "adapter").iterdir():
        f.unlink()
    other.save_pretrained(run / "adapter")


@case("eval-adapter-of-another-model", 2, "trained on another base model",
      "q_proj has in_features=64, this model's has 128", "set model.name")  # fmt: skip
def _(tmp):
    run = a_run(tmp)
    adapter_of_another_model(run)
    write(run, "data/eval.jsonl", jsonl(GOOD))
    return ["eval", "--run-dir", str(run)]


def exported_adapter(tmp: Path, base: str | None) -> Path:
    """An export/adapter folder as qd decompose reads it: a narrower model's adapter, the tiny
    tokenizer, and ``base`` as the base model adapter_config.json names."""
    from qdlib.model import build_tiny_model

    run = a_run(tmp)
    adapter_of_another_model(run)
    tiny = build_tiny_model(load_config("cpu_tiny"))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        write(run, f"adapter/{name}", (tiny / name).read_bytes())
    config = json.loads((run / "adapter/adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    write(run, "adapter/adapter_config.json", json.dumps(config))
    return run / "adapter"


@case("decompose-adapter-of-another-model", 2, "does not fit the base model",
      "in_features=64, this model's has 128")  # fmt: skip
def _(tmp):
    from qdlib.model import build_tiny_model

    tiny = build_tiny_model(load_config("cpu_tiny"))
    return ["decompose", "--model", str(exported_adapter(tmp, str(tiny))), "Q?"]


@case("decompose-cut-adapter", 2, "adapter_model.safetensors is cut")
def _(tmp):
    adapter = exported_adapter(tmp, None)
    cut(adapter / "adapter_model.safetensors")
    return ["decompose", "--model", str(adapter), "Q?"]


@case("decompose-adapter-names-no-base", 2, "names no base model")
def _(tmp):
    return ["decompose", "--model", str(exported_adapter(tmp, None)), "Q?"]


@case("train-run-dir-is-a-file", 2, "is a file, not a run directory")
def _(tmp):
    return ["train", *TINY, "--run-dir", str(write(tmp, "run", "x"))]


@case("train-run-dir-dangling-link", 2, "symbolic link to nothing")
def _(tmp):
    (tmp / "run").symlink_to(tmp / "gone")
    return ["train", *TINY, "--run-dir", str(tmp / "run")]


@case("train-finished-run-without-flags", 2, "already holds a run", "--overwrite")
def _(tmp):
    return ["train", *TINY, "--run-dir", str(a_run(tmp))]


@case("resume-nothing-there", 2, "no run to resume there")
def _(tmp):
    (tmp / "run").mkdir()
    return ["train", *TINY, "--run-dir", str(tmp / "run"), "--resume"]


@case("resume-every-checkpoint-cut", 2, "no complete checkpoint", "Nothing was changed")
def _(tmp):
    run = a_run(tmp)
    for step in (4, 8):
        cut(run / f"checkpoints/checkpoint-{step}/optimizer.pt")
    return ["train", *TINY, "--run-dir", str(run), "--resume"]


@case("resume-bit-flipped-optimizer", 2, "optimizer.pt is damaged")
def _(tmp):
    run = a_run(tmp, checkpoints=(4,))
    flip_a_byte(run / "checkpoints/checkpoint-4/optimizer.pt")
    return ["train", *TINY, "--run-dir", str(run), "--resume"]


@case("resume-changed-lora-rank", 2, "lora.r=8 (was 64)", "Nothing was changed")
def _(tmp):
    return ["train", *TINY, "--run-dir", str(a_run(tmp)), "--resume", "-p", "lora.r", "8"]


@case("resume-hand-edited-lora-rank", 2, "lora.r=8 (trained with 64)", "Nothing was changed")
def _(tmp):
    """config.yaml edited by hand: compared with itself it would pass; the adapters the run
    trained (its lora/) say otherwise."""
    run = a_run(tmp, {"lora": {"r": 8}})
    write(run, "lora/adapter_config.json", json.dumps({"peft_type": "LORA", "r": 64}))
    return ["train", *TINY, "--run-dir", str(run), "--resume"]


@case("resume-changed-learning-rate", 2, "training.learning_rate=0.0001")
def _(tmp):
    run = a_run(tmp)
    return [
        "train",
        *TINY,
        "--run-dir",
        str(run),
        "--resume",
        "-p",
        "training.learning_rate",
        "1e-4",
    ]


@case("resume-changed-data", 2, "data.max_samples=10")
def _(tmp):
    return [
        "train",
        *TINY,
        "--run-dir",
        str(a_run(tmp)),
        "--resume",
        "-p",
        "data.max_samples",
        "10",
    ]


@case("resume-unreadable-config", 2, "config.yaml, line 1: the file is not UTF-8")
def _(tmp):
    run = a_run(tmp)
    write(run, "config.yaml", b"\xff\xfe not yaml")
    return ["train", *TINY, "--run-dir", str(run), "--resume"]


@case("run-resume-without-run-dir", 2, "name it with --run-dir")
def _(tmp):
    return ["run", *TINY, "--resume"]


@case("run-resume-every-checkpoint-cut", 2, "no complete checkpoint")
def _(tmp):
    run = a_run(tmp)
    for step in (4, 8):
        (run / f"checkpoints/checkpoint-{step}/trainer_state.json").unlink()
    return ["run", *TINY, "--run-dir", str(run), "--resume"]


@case("run-finished-run-without-flags", 2, "already holds a run")
def _(tmp):
    return ["run", *TINY, "--run-dir", str(a_run(tmp))]


@case("overwrite-with-broken-data", 2, "broken.jsonl, line 3")
def _(tmp):
    broken = str(PROJECT_ROOT / "data/examples/broken.jsonl")
    return [
        "train",
        *TINY,
        "--run-dir",
        str(a_run(tmp)),
        "--overwrite",
        "-p",
        "data.train_file",
        broken,
    ]


@case("overwrite-with-missing-model", 2, "no such model folder")
def _(tmp):
    return [
        "run",
        *TINY,
        "--run-dir",
        str(a_run(tmp)),
        "--overwrite",
        "-p",
        "model.name",
        "./gone/model",
    ]


@pytest.mark.parametrize("name", CASES)
def test_bad_input(tmp_path, capsys, monkeypatch, name):
    set_offline(monkeypatch, True)
    monkeypatch.chdir(tmp_path)
    c = CASES[name]
    argv = c.build(tmp_path)
    before = snapshot(tmp_path)
    assert main(argv) == c.code
    out = capsys.readouterr()
    shown = out.out + out.err
    for words in c.says:
        assert words in shown, f"{words!r} not in:\n{shown[-2000:]}"
    assert "Traceback" not in shown and len(out.err) < 3000
    assert "\x1b" not in shown and "\x07" not in shown  # escaped, never sent to the terminal
    assert snapshot(tmp_path) == before


def test_every_class_of_input_the_probes_found_has_its_cases():
    """The classes, named: a count of cases would still pass with a class gone and another
    grown (and a case reusing a name would hide the first one: case() refuses that)."""
    assert NUMBERS and YAML_CASES and OVERRIDES and FLAGS
    assert {c.kind for c in CASES.values()} == {"text in data", "model folders", "run directories"}


# ---------------------------------------------------------------- two writers, interrupts


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    with run_lock(run):
        assert main(["train", *TINY, "--run-dir", str(run)]) == 2
    assert "is being written by another qd command" in capsys.readouterr().err
    assert not run.exists()


def test_every_spelling_of_a_run_directory_finds_the_same_lock(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "run", target_is_directory=True)
    with run_lock(tmp_path / "x" / ".." / "run"):
        for spelling in (tmp_path / "run", tmp_path / "link"):
            assert main(["train", *TINY, "--run-dir", str(spelling), "--overwrite"]) == 2
            assert "is being written by another qd command" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_symlink_planted_at_the_lock_is_refused_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep", encoding="utf-8")
    lock_path(tmp_path / "run").symlink_to(victim)
    with pytest.raises(RunDirError, match="cannot take its lock"), run_lock(tmp_path / "run"):
        pass
    assert victim.read_text(encoding="utf-8") == "keep"


def test_an_interrupt_says_what_was_kept_and_how_to_resume(tmp_path, capsys, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("qdlib.course.run_trainer", ctrl_c)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--run-dir", str(run), "-p", "data.max_samples", "40"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err
    assert f"qd train --resume --run-dir {run}" in err
    assert json.loads((run / ".qdlib-run.json").read_text())["status"] == "interrupted"


def test_a_failed_run_keeps_its_evidence_and_the_same_command_can_run_again(
    tmp_path, capsys, monkeypatch
):
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("the first attempt breaks")

    monkeypatch.setattr("qdlib.course.run_trainer", fails_once)
    run = tmp_path / "run"
    argv = ["train", *TINY, "--run-dir", str(run), "-p", "data.max_samples", "40"]
    with pytest.raises(RuntimeError):
        main(argv)
    status = json.loads((run / ".qdlib-run.json").read_text())
    assert status["status"] == "failed" and "first attempt breaks" in status["error"]
    evidence = snapshot(run)
    with pytest.raises(RuntimeError):
        main(argv)  # retried: not refused as "already holds a run"
    assert len(calls) == 2
    assert snapshot(tmp_path / "run.failed-1") == evidence  # the first attempt, byte for byte
    assert "kept at" in capsys.readouterr().out


def test_a_run_folder_named_with_a_control_character_is_printed_escaped(
    tmp_path, capsys, monkeypatch
):
    """The run directory's messages print its path: a name with an escape sequence in it shows
    as text, and never reaches the terminal as a command."""
    monkeypatch.setattr("qdlib.course.run_trainer", lambda *a, **k: 1 / 0)
    run = tmp_path / "run\x1b[2J"
    argv = ["train", *TINY, "--run-dir", str(run), "-p", "data.max_samples", "40"]
    for _ in range(2):  # the second attempt sets the failed first one aside, and says where
        with pytest.raises(ZeroDivisionError):
            main(argv)
    out = capsys.readouterr().out
    assert "kept at" in out and "\x1b" not in out and "run\\x1b[2J" in out


def test_a_failed_overwrite_puts_the_old_run_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("qdlib.course.run_trainer", lambda *a, **k: 1 / 0)
    run = a_run(tmp_path)
    before = snapshot(run)
    with pytest.raises(ZeroDivisionError):
        main(["train", *TINY, "--run-dir", str(run), "--overwrite", "-p", "data.max_samples", "40"])
    assert snapshot(run) == before
    failed = tmp_path / "run.failed-1"
    assert json.loads((failed / ".qdlib-run.json").read_text())["status"] == "failed"
    assert "the old run is back in place" in capsys.readouterr().out


def test_a_report_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from qdlib.evaluate import write_report
    from qdlib.inference import Generation
    from qdlib.metrics import score

    rows = {"tuned": score([GOOD], [Generation("1. How old is A?", True, [1])])}
    write_report(tmp_path / "eval", rows)
    before = snapshot(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("qdlib.evaluate.save_figure", full_disk)  # the last of the four files
    with pytest.raises(OSError):
        write_report(tmp_path / "eval", {"tuned": score([GOOD], [Generation("x", True, [])])})
    assert snapshot(tmp_path) == before


def test_a_file_split_report_never_lands_on_the_runs_own_report(tmp_path):
    from qdlib.evaluate import split_report_dir

    for name in ("..jsonl", "eval.jsonl", ".jsonl", "a/../../b.jsonl"):
        out = split_report_dir(tmp_path, Path(name))
        assert out.parent == tmp_path / "eval-splits" and out.name not in ("", ".", "..")


def test_data_check_shows_data_escaped(tmp_path, capsys):
    """A question with a terminal escape sequence, twice (a duplicate group is printed)."""
    q = dict(GOOD, question="Ok\u200b\x1b]0;pwned\x07?")
    path = write(tmp_path, "d.jsonl", jsonl(GOOD, GOOD))
    assert main(["data", "check", str(path), "--no-tokenizer"]) == 0
    path = write(tmp_path, "e.jsonl", jsonl(q, q))
    main(["data", "check", str(path), "--no-tokenizer"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out


def test_relative_paths_are_taken_from_the_working_directory(tmp_path, capsys, monkeypatch):
    """A same-named file in the project is not checked instead of the one here."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "data/examples/sample_train.jsonl", jsonl(GOOD))
    assert main(["data", "check", "data/examples/sample_train.jsonl", "--no-tokenizer"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "1 valid records" in out


def test_a_relative_path_that_is_not_here_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", "mine.jsonl", "--no-tokenizer"]) == 2
    assert re.search(rf"{tmp_path}/mine\.jsonl: no such file", capsys.readouterr().err)


# ---------------------------------------------------------------- the four worst, on a real run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real `qd train` run of the tiny model: 4 steps, a checkpoint at 2 and 4, an adapter."""
    run = tmp_path_factory.mktemp("real") / "run"
    small = {"training.max_steps": "4", "training.save_steps": "2", "data.max_samples": "60",
             "training.eval_steps": "null", "evaluation.generate_every": "null"}  # fmt: skip
    argv = [
        "train",
        *TINY,
        "--run-dir",
        str(run),
        *(a for kv in small.items() for a in ("-p", *kv)),
    ]
    assert main(argv) == 0
    return run


def copy_of(run: Path, tmp: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp / "run", symlinks=True))


WORST = {
    "overwrite-with-bad-data": (
        ["--overwrite", "-p", "data.train_file", str(PROJECT_ROOT / "data/examples/broken.jsonl")],
        "broken.jsonl, line 3",
    ),
    "resume-of-cut-checkpoints": (["--resume"], "no complete checkpoint"),
    "resume-with-another-lora-rank": (["--resume", "-p", "lora.r", "8"], "lora.r=8 (was 64)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", WORST)
def test_the_worst_cases_leave_a_real_run_byte_identical(
    finished_run, tmp_path, capsys, monkeypatch, name
):
    monkeypatch.chdir(tmp_path)
    run = copy_of(finished_run, tmp_path)
    if name == "resume-of-cut-checkpoints":
        for checkpoint in (run / "checkpoints").iterdir():
            cut(checkpoint / "optimizer.pt")
    flags, says = WORST[name]
    before = snapshot(tmp_path)
    assert main(["train", *TINY, "--run-dir", str(run), *flags]) == 2
    assert says in capsys.readouterr().err
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_a_real_failed_run_is_kept_byte_identical_when_retried(tmp_path, capsys, monkeypatch):
    """It fails inside the run (every prompt longer than max_seq_length); the same command,
    retried, is not refused, and the failed attempt is kept beside it, byte for byte."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    argv = ["train", *TINY, "--run-dir", str(run), "-p", "data.max_seq_length", "16",
            "-p", "data.max_samples", "40"]  # fmt: skip
    assert main(argv) == 2
    assert "the prompt alone fills max_seq_length=16" in capsys.readouterr().err
    evidence = snapshot(run)
    assert json.loads(evidence[".qdlib-run.json"])["status"] == "failed"
    assert main(argv) == 2  # retried, and failed the same way
    assert snapshot(tmp_path / "run.failed-1") == evidence


@case("resume-checkpoints-is-a-file", 2, "checkpoints is a file where the run keeps a folder")
def _(tmp):
    run = a_run(tmp, checkpoints=())
    write(run, "checkpoints", "not a folder")
    return ["train", *TINY, "--run-dir", str(run), "--resume"]


def test_a_file_where_the_report_folder_goes_is_named_and_kept(tmp_path):
    from qdlib.evaluate import write_report
    from qdlib.inference import Generation
    from qdlib.metrics import score

    write(tmp_path, "eval", "my notes")
    with pytest.raises(NotADirectoryError, match="eval is a file where a folder is written"):
        write_report(tmp_path / "eval", {"tuned": score([GOOD], [Generation("x", True, [])])})
    assert (tmp_path / "eval").read_text() == "my notes"


def test_a_run_another_process_is_writing_is_never_moved_aside(tmp_path, capsys):
    """A lock in another place (another machine on a shared disk, an older qdlib) is not seen;
    the run's own status says who writes it, and --overwrite refuses while that process lives."""
    import json
    import socket

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("profile: cpu_tiny\n", encoding="utf-8")
    status = {"status": "running", "command": "qd train", "pid": os.getpid(), "time": "now"}
    (run / ".qdlib-run.json").write_text(json.dumps(status), encoding="utf-8")
    assert main(["train", *TINY, "--run-dir", str(run), "--overwrite"]) == 2
    assert f"is being written by qd train (pid {os.getpid()}" in capsys.readouterr().err
    elsewhere = status | {"host": f"not-{socket.gethostname()}", "pid": 1}
    (run / ".qdlib-run.json").write_text(json.dumps(elsewhere), encoding="utf-8")
    assert main(["train", *TINY, "--run-dir", str(run), "--overwrite"]) == 2
    assert "on not-" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name != ".run.lock"] == ["run"]  # kept


def test_qd_eval_waits_its_turn_on_a_run_being_written(tmp_path, capsys):
    from qdlib.config import load_config

    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "config.yaml").write_text(load_config("cpu_tiny").to_yaml(), encoding="utf-8")
    record = '{"question": "Which is older, A or B?", "sub_questions": ["How old is A?"]}\n'
    (run / "data/eval.jsonl").write_text(record, encoding="utf-8")
    with run_lock(run):
        assert main(["eval", "--run-dir", str(run)]) == 2
    assert "is being written by another qd command" in capsys.readouterr().err
    assert not (run / "eval").exists()


@pytest.mark.parametrize("command", ["data-check", "decompose"])
def test_a_device_or_a_pipe_is_refused_before_it_is_read(tmp_path, capsys, command):
    """/dev/zero and a FIFO never end: read whole, they filled memory. A regular file is checked
    for first."""
    fifo = tmp_path / "questions.txt"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        argv = (["data", "check", path, "--no-tokenizer"] if command == "data-check"
                else ["decompose", "--model", str(tmp_path), "--file", path])  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "not a regular file" in err or "use .txt" in err, err


def test_a_path_with_terminal_control_bytes_is_shown_escaped(tmp_path, capsys):
    run = tmp_path / "run\x1b]0;owned\x07"
    run.write_text("a file, not a run", encoding="utf-8")
    assert main(["train", *TINY, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\\x1b]0;owned\\x07" in err


def test_korean_on_a_console_that_cannot_show_it_is_escaped_not_a_traceback(tmp_path):
    missing = tmp_path / "질문.jsonl"
    env = os.environ | {"PYTHONIOENCODING": "cp1252", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "qdlib.cli", "data", "check", str(missing), "--no-tokenizer"]
    done = subprocess.run(cmd, capture_output=True, env=env, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert b"Traceback" not in done.stderr and b"\\uc9c8\\ubb38.jsonl" in done.stderr


# ---------------------------------------------------------------- artifacts, checked before use


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory):
    """A whole adapter export and a whole merged export of the tiny model."""
    import shutil

    from qdlib.lora import attach_lora, lora_config
    from qdlib.model import load_model, load_tokenizer
    from qdlib.train import save_adapter

    cfg, root = load_config("cpu_tiny"), tmp_path_factory.mktemp("exports")
    tok, base = load_tokenizer(cfg), load_model(cfg)
    save_adapter(attach_lora(base, lora_config(cfg, base), seed=cfg.seed), tok, root / "adapter")
    merged = load_model(cfg)
    merged.save_pretrained(root / "merged")
    tok.save_pretrained(root / "merged")
    yield root
    shutil.rmtree(root)


def damaged(exports: Path, tmp: Path, kind: str, change: Callable[[Path], None]) -> Path:
    import shutil

    folder = tmp / kind
    shutil.copytree(exports / kind, folder)
    change(folder)
    return folder


def edit_json(name: str, **values):
    def change(folder: Path) -> None:
        settings = json.loads((folder / name).read_text(encoding="utf-8"))
        (folder / name).write_text(json.dumps(settings | values), encoding="utf-8")

    return change


def header_of(text: bytes, name: str = "model.safetensors"):
    def change(folder: Path) -> None:
        (folder / name).write_bytes(len(text).to_bytes(8, "little") + text)

    return change


ARTIFACTS = {
    "adapter-rank-as-text": ("adapter", edit_json("adapter_config.json", r="64"), "r='64'"),
    "adapter-alpha-as-text": (
        "adapter", edit_json("adapter_config.json", lora_alpha="128"), "lora_alpha='128'"
    ),
    "adapter-rank-not-the-weights": (
        "adapter", edit_json("adapter_config.json", r=8), "the weights' rank is 64"
    ),
    "adapter-targets-a-missing-layer": (
        "adapter", edit_json("adapter_config.json", target_modules=["q_proj", "no_such"]),
        "it targets 'no_such', a layer this model does not have",
    ),
    "adapter-header-entry-not-a-tensor": (
        "adapter", header_of(b'{"x": 5}', "adapter_model.safetensors"),
        "header entry 'x' is not a tensor's",
    ),
    "merged-without-tokenizer": (
        "merged", lambda f: [p.unlink() for p in f.glob("tokenizer*")], "no tokenizer files"
    ),
    "merged-absurd-config": (
        "merged", edit_json("config.json", hidden_size=10**12), "hidden_size=1000000000000"
    ),
    "merged-header-of-2-to-the-40": (
        "merged", lambda f: (f / "model.safetensors").write_bytes((2**40).to_bytes(8, "little")),
        "model.safetensors is cut",
    ),
    "adapter-config-key-twice": (
        "adapter", lambda f: (f / "adapter_config.json").write_text('{"r": 8, "r": 64}'),
        "the key 'r' is given twice",
    ),
    "merged-header-a-list": ("merged", header_of(b"[1, 2]"), "'the header' is not a tensor's"),
    "merged-header-offsets-backwards": (
        "merged", header_of(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}'),
        "header entry 'w' is not a tensor's",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_a_damaged_export_is_refused_before_it_is_used(tiny_exports, tmp_path, capsys, name):
    kind, change, says = ARTIFACTS[name]
    folder = damaged(tiny_exports, tmp_path, kind, change)
    assert main(["decompose", "--model", str(folder), "--profile", "cpu_tiny", "Q?"]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err


@pytest.mark.parametrize("linked", ["eval", "eval-splits"])
def test_a_linked_report_folder_inside_a_run_is_refused_before_generating(
    trained, tmp_path, capsys, linked
):
    """Both report folders alike: never written through a link (outside the run), never the
    link silently replaced. Refused before the model loads."""
    import shutil

    _, _, _, run_dir = trained
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("eval", "eval-splits"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / linked).symlink_to(outside, target_is_directory=True)
    split = ["--split", str(run / "data/eval.jsonl")] if linked == "eval-splits" else []
    assert main(["eval", "--run-dir", str(run), *split]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "argv, says",
    [
        (["decompose", "--model", "nowhere", "Is A\ud800 older?"], "lone surrogate (U+D800)"),
        (["run", *TINY, "-p", "profile", "rtx4060"], "choose the profile with --profile"),
        (["train", *TINY, "-p", "training.max_steps", "1" * 400], "training.max_steps"),
        (["train", *TINY, "-p", "training", "{max_steps: 5, max_steps: 50}"], "given twice"),
    ],
    ids=["surrogate-question", "profile-as-p", "400-digit-steps", "p-key-twice"],
)
def test_more_inputs_get_a_message_not_a_traceback(tmp_path, capsys, argv, says):
    argv = [a.replace("nowhere", str(tmp_path / "nowhere")) for a in argv]
    if argv[0] != "decompose":
        argv += ["--run-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
