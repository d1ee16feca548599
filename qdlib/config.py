"""Typed configuration: one YAML per hardware profile, validated on load.

A profile YAML (``configs/cpu_tiny.yaml`` ...) is read into a :class:`Config`. The same file is
papermill's parameter file: its top-level keys (``profile``, ``seed``, ``data``, ``model``,
``lora``, ``training``, ``evaluation``, ``export``) are the notebooks' parameters.

Every problem is reported with the file, the key and what is allowed, e.g.::

    configs/my.yaml: lora.r must be an integer >= 1; got 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import types
import typing
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from qdlib.files import TextInputError, read_utf8

PACKAGE_DIR = Path(__file__).resolve().parent


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is this project's source tree (a clone, an editable install of one, or
    a copy of its folders): its profiles are there. A wheel's site-packages is not one."""
    return (folder / "configs" / "cpu_small.yaml").is_file() and (folder / "data").is_dir()


# The checkout qdlib runs from, or None when it is installed from a wheel.
CHECKOUT = PACKAGE_DIR.parent if is_checkout(PACKAGE_DIR.parent) else None
# Where the project's own files are read: the profiles (configs/) and the teaching data (data/).
# A wheel carries both in qdlib/bundled/, laid out as in the checkout (pyproject.toml's
# [tool.setuptools]), so a profile's relative paths mean the same installed. Nothing is written
# here: runs and caches go under qdlib_home().
PROJECT_ROOT = CHECKOUT or PACKAGE_DIR / "bundled"
CONFIG_DIR = PROJECT_ROOT / "configs"


def qdlib_home() -> Path:
    """The one place that decides where qdlib writes: ``runs/`` and ``.cache/qdlib/`` go under it.

    ``QDLIB_HOME`` when it is set; else the checkout (``make run``, and notebooks whose working
    directory is ``notebooks/``, write into the project as always); else, for a qdlib installed
    from a wheel, the current working directory. Never site-packages. ``QDLIB_RUNS`` and
    ``QDLIB_CACHE`` move one of the two (:func:`qdlib.runs.runs_root`,
    :func:`qdlib.weights.cache_dir`).
    """
    home = os.environ.get("QDLIB_HOME")
    if home:
        return Path(home).expanduser().absolute()
    return CHECKOUT or Path.cwd()


SECTIONS = ("data", "model", "lora", "training", "evaluation", "export")


class ConfigError(ValueError):
    """A profile or override that cannot be used; the message says where and why."""


MAX_COUNT = 10**9  # the bound of counts (steps, samples) that have no natural one


def _range(lo: float, hi: float) -> dict[str, Any]:
    """Field metadata: every number in a profile has a finite range, checked on load."""
    return {"range": (lo, hi)}


@dataclass
class SourceSection:
    """One data source in a mix: ``FILE``, ``HUB_ID`` or ``FORMAT:FILE`` (see DATA_FORMAT.md)."""

    spec: str = ""
    weight: float = field(default=1.0, metadata=_range(0.0, 100.0))
    max_samples: int | None = field(default=None, metadata=_range(1, MAX_COUNT))
    eval_fraction: float | None = field(default=None, metadata=_range(0.0, 0.9))  # null: data's
    # The run's last steps, this share of training.max_steps, train on this source alone, after
    # the mix: what the model learns last is its form (qdlib.train.finishing_order). 0: mixed.
    finish_fraction: float = field(default=0.0, metadata=_range(0.0, 0.9))


@dataclass
class DataSection:
    """Where the records come from and how they are split and tokenized."""

    train_file: str | None = "data/teaching/decompose_teach.jsonl"
    sources: list[SourceSection] = field(default_factory=list)
    refs: Literal["keep", "words"] = "keep"
    eval_file: str | None = None
    eval_fraction: float = field(default=0.1, metadata=_range(0.0, 0.9))
    # What eval holds out: single records (none), whole templates, or every question naming an
    # eval question's entities (records without the field are split per record; qdlib.splits)
    holdout_by: Literal["none", "template", "entity"] = "none"
    # With template or entity: the share of groups held out whole. null: eval_fraction of the
    # groups and nothing else; a number: these groups, and eval_fraction of the other records at
    # random (so eval has both: unseen-template and in-template questions; qdlib.splits)
    holdout_fraction: float | None = field(default=None, metadata=_range(0.0, 0.9))
    max_samples: int | None = field(default=None, metadata=_range(1, MAX_COUNT))
    language: Literal["auto", "ko", "en"] = "auto"
    languages: list[str] | None = None  # keep questions in these languages only (ko, en); null: all
    max_seq_length: int = field(default=256, metadata=_range(16, 131072))
    strict: bool = True


@dataclass
class TinyModelSection:
    """Shape of the offline tiny model (used when ``model.name`` is ``tiny``)."""

    vocab_size: int = field(default=1900, metadata=_range(300, 65536))
    hidden_size: int = field(default=128, metadata=_range(16, 4096))
    num_layers: int = field(default=4, metadata=_range(1, 64))
    num_heads: int = field(default=4, metadata=_range(1, 64))
    num_kv_heads: int = field(default=2, metadata=_range(1, 64))
    intermediate_size: int = field(default=384, metadata=_range(16, 16384))


@dataclass
class ModelSection:
    """Which base model to load and how."""

    name: str = "tiny"
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    quantization: Literal["none", "4bit", "8bit"] = "none"
    trust_remote_code: bool = False
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    tiny: TinyModelSection = field(default_factory=TinyModelSection)


@dataclass
class LoraSection:
    """Where the adapters go and how big they are."""

    r: int = field(default=16, metadata=_range(1, 1024))
    alpha: float = field(default=32.0, metadata=_range(0.0, 4096.0))
    dropout: float = field(default=0.05, metadata=_range(0.0, 0.9))
    target_modules: str | list[str] = "all-linear"
    use_rslora: bool = False  # scale by alpha / sqrt(r) instead of alpha / r (Kalajdzievski, 2023)
    use_dora: bool = False  # DoRA: learn each weight's magnitude apart from its direction


@dataclass
class TrainingSection:
    """Optimisation settings handed to ``transformers.TrainingArguments``."""

    epochs: float = field(default=1.0, metadata=_range(0.0, 1000.0))
    max_steps: int = field(default=-1, metadata=_range(-1, MAX_COUNT))
    batch_size: int = field(default=8, metadata=_range(1, 4096))
    gradient_accumulation_steps: int = field(default=1, metadata=_range(1, 4096))
    learning_rate: float = field(default=2.0e-4, metadata=_range(0.0, 1.0))
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = field(default=0.03, metadata=_range(0.0, 0.5))
    weight_decay: float = field(default=0.0, metadata=_range(0.0, 1.0))
    max_grad_norm: float = field(default=1.0, metadata=_range(0.0, 1e6))
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"] = (
        "adamw_torch"
    )
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    packing: bool = False  # true: each batch is one padding-free row (position_ids restart)
    logging_steps: int = field(default=10, metadata=_range(1, MAX_COUNT))
    eval_steps: int | None = field(default=None, metadata=_range(1, MAX_COUNT))
    save_steps: int = field(default=200, metadata=_range(1, MAX_COUNT))
    save_total_limit: int = field(default=2, metadata=_range(1, 1000))
    report_to: Literal["none", "tensorboard", "wandb"] = "none"


@dataclass
class EvaluationSection:
    """How the held-out split is decoded and scored."""

    max_samples: int | None = field(default=200, metadata=_range(1, MAX_COUNT))
    batch_size: int = field(default=16, metadata=_range(1, 4096))
    max_new_tokens: int = field(default=96, metadata=_range(1, 8192))
    generate_every: int | None = field(default=None, metadata=_range(1, MAX_COUNT))
    generate_samples: int = field(default=32, metadata=_range(1, 100000))
    # Lesson 05's real section: a records file never trained on (StrategyQA dev), and another
    # system's published predictions for it, joined by id (null: none)
    test_file: str | None = None
    test_predictions: str | None = None
    # The untuned model and its few-shot prompt answer this many questions per section (null: all)
    baseline_samples: int | None = field(default=None, metadata=_range(1, MAX_COUNT))


@dataclass
class ExportSection:
    """What notebook 06 writes."""

    parity_samples: int | None = field(default=None, metadata=_range(1, MAX_COUNT))
    push_to_hub: str | None = None  # "user/repo": upload export/ (token from HF_TOKEN or .env)
    gguf: bool = False  # convert the merged model with llama.cpp (see llama_cpp_dir)
    gguf_outtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    llama_cpp_dir: str | None = None  # a llama.cpp checkout (or LLAMA_CPP_DIR)


@dataclass
class Config:
    """A whole profile: which machine, which model, which data, how to train."""

    profile: str = "cpu_tiny"
    seed: int = field(default=42, metadata=_range(0, 2**32 - 1))
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    export: ExportSection = field(default_factory=ExportSection)
    source: str = field(default="<defaults>", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, in the shape of a profile YAML."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def finish_steps(self) -> int:
        """How many of the run's last steps train on one source alone: its ``finish_fraction``
        of ``training.max_steps``, at least one and never all (0: the mix throughout)."""
        share = max((src.finish_fraction for src in self.data.sources), default=0.0)
        budget = self.training.max_steps
        if not share or budget < 2:
            return 0
        return min(budget - 1, max(1, round(share * budget)))

    def examples_per_step(self) -> int:
        """Examples in one optimizer step: batch x accumulation x processes (``WORLD_SIZE``)."""
        t = self.training
        return t.batch_size * t.gradient_accumulation_steps * int(os.environ.get("WORLD_SIZE", "1"))

    def resolve_path(self, path: str) -> Path:
        """A path from the config: absolute, or relative to the project root (installed: the
        packaged file when there is one, else relative to the working directory)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        return PROJECT_ROOT / p if CHECKOUT or (PROJECT_ROOT / p).exists() else p.absolute()


def profile_path(profile: str | Path) -> Path:
    """``cpu_tiny`` -> ``configs/cpu_tiny.yaml``; a path to a YAML file is used as it is."""
    p = Path(profile)
    if p.suffix in {".yaml", ".yml"}:
        return p if p.is_absolute() or p.exists() else PROJECT_ROOT / p
    return CONFIG_DIR / f"{profile}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


class ProfileLoader(yaml.SafeLoader):
    """YAML as profiles need it: ``true``/``false`` are the only booleans (YAML 1.2; ``on``,
    ``yes``, ``no`` stay text, so a boolean key refuses them), and few aliases (a short file
    cannot expand into a huge one)."""

    max_aliases = 20

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A key given twice in one mapping (two ``training:`` sections, two ``lr:`` in one) is an
        error naming both lines, never the silent last-one-wins of plain YAML."""
        first: dict[Any, int] = {}
        for key_node, _ in node.value:  # the keys written here (a merged ``<<: *base`` may be
            if key_node.tag == "tag:yaml.org,2002:merge":  # overridden: that is what it is for)
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # PyYAML's own error follows: a key must be hashable
            if key in first:
                raise yaml.YAMLError(f"line {line}: {key!r} is given twice (first on line "
                                     f"{first[key]}); keep one")  # fmt: skip
            first[key] = line
        return super().construct_mapping(node, deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen = getattr(self, "aliases_seen", 0) + 1
            if self.aliases_seen > self.max_aliases:
                raise yaml.YAMLError(
                    f"more than {self.max_aliases} aliases (*name): a profile does not need them"
                )
        return super().compose_node(parent, index)


ProfileLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ProfileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str, where: str) -> Any:
    """Parse profile YAML (see :class:`ProfileLoader`); errors name ``where``, briefly."""
    try:
        return yaml.load(text, Loader=ProfileLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {str(exc)[:500]}") from None


def load_config(
    profile: str | Path = "cpu_tiny", overrides_from: str = "override", **overrides: Any
) -> Config:
    """Read a profile YAML, apply overrides, validate, and return a :class:`Config`.

    ``overrides`` are top-level keys; a section may be given partly
    (``training={"max_steps": 10}`` changes one value). ``None`` means "keep the profile's value",
    which is how the notebooks' ``parameters`` cell passes what papermill did not set. A bad
    value is reported as coming from the profile file or from ``overrides_from`` (``-p``).
    """
    path = profile_path(profile)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such profile. Available profiles: {', '.join(available_profiles())}; "
            "or pass the path to your own YAML file."
        )
    try:
        text = read_utf8(path)
    except TextInputError as exc:
        raise ConfigError(str(exc)) from None
    raw = read_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of keys to values.")
    given = {k: v for k, v in overrides.items() if v is not None}
    changed = set(_dotted_keys(given))

    def where(key: str) -> str:
        return overrides_from if any(_within(key, k) for k in changed) else str(path)

    for key, value in given.items():
        if key in SECTIONS and isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = _deep_merge(raw[key], value)
        else:
            raw[key] = value
    cfg = _build(Config, raw, where, prefix="")
    cfg.source = str(path)
    _check_consistency(cfg)
    return cfg


def _dotted_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += _dotted_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else []
        out.append(f"{prefix}{key}")
    return out


def _within(key: str, changed: str) -> bool:
    """Whether setting ``key`` was given (or is inside/around) the overridden ``changed``."""
    key, changed = key.split("[")[0], str(changed)
    return key == changed or key.startswith(changed + ".") or changed.startswith(key + ".")


def parse_override(key: str, value: str) -> dict[str, Any]:
    """``("training.max_steps", "20")`` -> ``{"training": {"max_steps": 20}}`` (the value is
    YAML, read as profiles are). Errors name the ``-p`` they came from."""
    if not key or not all(part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"-p {key!r:.80}: a key is dotted names, e.g. training.max_steps.")
    if key == "profile":
        raise ConfigError("-p profile: choose the profile with --profile NAME (or a YAML path).")
    parsed = read_yaml(value, f"-p {key}") if value != "" else ""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = parsed
    return out


def _finite(value: float) -> bool:
    """Not NaN or infinity (an int always is, however long: it must not become a float)."""
    return isinstance(value, int) or math.isfinite(value)


def bounded(kind: type, lo: float, hi: float) -> Callable[[str], Any]:
    """A command-line ``type=``: the text as ``kind`` (int or float), finite, from lo to hi."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or not _finite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {noun} from {lo} to {hi}; got {text!r:.40}")
        return value

    return parse


def setting_type(key: str) -> Callable[[str], Any]:
    """A command-line ``type=`` for a flag that stands for a profile setting (``"training.
    batch_size"``): the setting's own type and range, so each is written once."""
    cls, fld = Config, None
    for part in key.split("."):
        fld = next(f for f in dataclasses.fields(cls) if f.name == part)
        cls = typing.get_type_hints(cls)[part]
    kind = int if int in _union_args(cls) else float
    return bounded(kind, *fld.metadata["range"])


def merge_overrides(*parts: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge several override mappings (later ones win)."""
    out: dict[str, Any] = {}
    for part in parts:
        out = _deep_merge(out, part)
    return out


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


Where = Callable[[str], str]  # a setting's dotted key -> where its value came from


def _build(cls: type, raw: Any, where: Where, prefix: str) -> Any:
    """Turn a mapping into dataclass ``cls``, checking keys, types and ranges."""
    section = prefix.rstrip(".")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where(section)}: {section or 'the file'} must be a mapping of settings; "
            f"got {type(raw).__name__} {_short(raw)}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(
                f"{where(section)}: the keys{' in ' + section if section else ''} must be text; "
                f"got {_short(key)} ({type(key).__name__})."
            )
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where(prefix + unknown[0])}: unknown key {prefix}{_key_text(unknown[0])}. "
            f"Allowed keys{' in ' + section if section else ''}: {', '.join(fields)}."
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        values[name] = _check_value(hints[name], value, fields[name], where, prefix + name)
    return cls(**values)


def _key_text(key: str) -> str:
    """A key as written when it is a plain name; escaped and cut otherwise."""
    return key if key.isprintable() and len(key) <= 60 else _short(key)


def _short(value: Any) -> str:
    """A value as an error shows it: escaped, and cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_value(tp: Any, value: Any, fld: dataclasses.Field, where: Where, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, where, key + ".")
    item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
    if item is not None and dataclasses.is_dataclass(item):
        if not isinstance(value, list):
            raise ConfigError(
                f"{where(key)}: {key} must be a list of mappings; got {_short(value)}."
            )
        return [_build(item, v, where, f"{key}[{i}].") for i, v in enumerate(value)]
    value = _coerce(tp, value)
    if not _matches(tp, value):
        raise ConfigError(f"{where(key)}: {key} must be {_describe(tp)}; got {_short(value)}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = fld.metadata["range"]
        if not (_finite(value) and lo <= value <= hi):
            raise ConfigError(
                f"{where(key)}: {key} must be {_describe(tp)} from {lo} to {hi}; "
                f"got {_short(value)}."
            )
    return value


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce(tp: Any, value: Any) -> Any:
    """Accept what YAML users write: ``2e-4`` (a string to PyYAML) and ``1`` for a float."""
    args = _union_args(tp)
    if float in args and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) < 2**1023:  # beyond: no float; its check says so
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            return float(value)
    return value


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _matches(tp: Any, value: Any) -> bool:
    for arg in _union_args(tp):
        origin = typing.get_origin(arg)
        if arg is type(None) and value is None:
            return True
        if origin is Literal and value in typing.get_args(arg):
            return True
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(arg)
            if all(isinstance(v, item) for v in value):
                return True
        if arg is bool and isinstance(value, bool):
            return True
        if arg in (int, float, str) and isinstance(value, arg) and not isinstance(value, bool):
            return True
    return False


def _describe(tp: Any) -> str:
    names = []
    for arg in _union_args(tp):
        origin = typing.get_origin(arg)
        if origin is Literal:
            names.append("one of " + ", ".join(repr(a) for a in typing.get_args(arg)))
        elif origin is list:
            names.append(f"a list of {typing.get_args(arg)[0].__name__}")
        elif arg is type(None):
            names.append("null")
        else:
            names.append(
                {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
                    arg, str(arg)
                )
            )
    return " or ".join(names)


def _check_sources(cfg: Config) -> None:
    """Each source names its data; at most one finishes the run, and only within a step budget."""
    src = cfg.source
    for i, s in enumerate(cfg.data.sources):
        if not s.spec:
            raise ConfigError(f"{src}: data.sources[{i}].spec must name a file or dataset.")
    finishing = [i for i, s in enumerate(cfg.data.sources) if s.finish_fraction]
    if len(finishing) > 1:
        raise ConfigError(
            f"{src}: data.sources{finishing} all set finish_fraction; one source can finish a run."
        )
    if finishing and cfg.training.max_steps < 0:
        raise ConfigError(
            f"{src}: data.sources[{finishing[0]}].finish_fraction is a share of a step budget: "
            "set training.max_steps, or finish_fraction to 0."
        )


def _check_consistency(cfg: Config) -> None:
    """Rules that involve more than one key."""
    src = cfg.source
    tiny = cfg.model.tiny
    if tiny.hidden_size % tiny.num_heads:
        raise ConfigError(
            f"{src}: model.tiny.hidden_size ({tiny.hidden_size}) must be divisible by "
            f"model.tiny.num_heads ({tiny.num_heads})."
        )
    if tiny.num_heads % tiny.num_kv_heads:
        raise ConfigError(
            f"{src}: model.tiny.num_heads ({tiny.num_heads}) must be a multiple of "
            f"model.tiny.num_kv_heads ({tiny.num_kv_heads})."
        )
    if bool(cfg.data.train_file) == bool(cfg.data.sources):
        raise ConfigError(
            f"{src}: give either data.train_file (one source) or data.sources (a mix), "
            "not both and not neither; set the other to null / [] ."
        )
    if cfg.data.sources and cfg.data.max_samples is not None:
        raise ConfigError(
            f"{src}: data.max_samples applies to data.train_file; with data.sources give "
            "max_samples per source instead."
        )
    if cfg.data.holdout_fraction is not None and cfg.data.holdout_by == "none":
        raise ConfigError(
            f"{src}: data.holdout_fraction is the share of templates (or entities) held out "
            "whole; set data.holdout_by to template or entity, or holdout_fraction to null."
        )
    if cfg.evaluation.test_predictions and not cfg.evaluation.test_file:
        raise ConfigError(
            f"{src}: evaluation.test_predictions are predictions for evaluation.test_file; "
            "name the test file too, or set test_predictions to null."
        )
    for lang in cfg.data.languages or []:
        if lang not in ("ko", "en"):
            raise ConfigError(f"{src}: data.languages items must be 'ko' or 'en'; got {lang!r}.")
    if cfg.data.languages == []:
        raise ConfigError(f"{src}: data.languages must name a language (ko, en), or be null.")
    _check_sources(cfg)
    targets = cfg.lora.target_modules
    if not targets or (isinstance(targets, list) and not all(t.strip() for t in targets)):
        raise ConfigError(
            f"{src}: lora.target_modules must name layers (e.g. [q_proj, v_proj]) or be "
            f"'all-linear'; got {targets!r}."
        )
    if cfg.training.max_steps == 0:
        raise ConfigError(f"{src}: training.max_steps must be -1 (use epochs) or >= 1; got 0.")
    if cfg.model.quantization != "none" and cfg.model.name == "tiny":
        warnings.warn(
            f"{src}: the tiny model is quantized to {cfg.model.quantization}; this works on CPU "
            "with bitsandbytes but is slower than float32 for so small a model.",
            stacklevel=3,
        )
