"""Typed configuration: one YAML per hardware profile, validated on load.

A profile YAML (``configs/cpu_tiny.yaml`` ...) is read into a :class:`Config`. The same file is
papermill's parameter file: its top-level keys (``profile``, ``seed``, ``data``, ``model``,
``lora``, ``training``, ``evaluation``, ``export``) are the notebooks' parameters.

Every problem is reported with the file, the key and what is allowed, e.g.::

    configs/my.yaml: lora.r must be an integer >= 1; got 0.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"
SECTIONS = ("data", "model", "lora", "training", "evaluation", "export")


class ConfigError(ValueError):
    """A profile or override that cannot be used; the message says where and why."""


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"range": (lo, hi)}


@dataclass
class SourceSection:
    """One data source in a mix: ``FILE``, ``HUB_ID`` or ``FORMAT:FILE`` (see DATA_FORMAT.md)."""

    spec: str = ""
    weight: float = field(default=1.0, metadata=_range(0.0, 100.0))
    max_samples: int | None = field(default=None, metadata=_range(1))


@dataclass
class DataSection:
    """Where the records come from and how they are split and tokenized."""

    train_file: str | None = "data/teaching/decompose_teach.jsonl"
    sources: list[SourceSection] = field(default_factory=list)
    refs: Literal["keep", "words"] = "keep"
    eval_file: str | None = None
    eval_fraction: float = field(default=0.1, metadata=_range(0.0, 0.9))
    max_samples: int | None = field(default=None, metadata=_range(1))
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
    alpha: float = field(default=32.0, metadata=_range(0.0))
    dropout: float = field(default=0.05, metadata=_range(0.0, 0.9))
    target_modules: str | list[str] = "all-linear"


@dataclass
class TrainingSection:
    """Optimisation settings handed to ``transformers.TrainingArguments``."""

    epochs: float = field(default=1.0, metadata=_range(0.0))
    max_steps: int = field(default=-1, metadata=_range(-1))
    batch_size: int = field(default=8, metadata=_range(1, 4096))
    gradient_accumulation_steps: int = field(default=1, metadata=_range(1, 4096))
    learning_rate: float = field(default=2.0e-4, metadata=_range(0.0, 1.0))
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = field(default=0.03, metadata=_range(0.0, 0.5))
    weight_decay: float = field(default=0.0, metadata=_range(0.0, 1.0))
    max_grad_norm: float = field(default=1.0, metadata=_range(0.0))
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"] = (
        "adamw_torch"
    )
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    packing: bool = False  # true: each batch is one padding-free row (position_ids restart)
    logging_steps: int = field(default=10, metadata=_range(1))
    eval_steps: int | None = field(default=None, metadata=_range(1))
    save_steps: int = field(default=200, metadata=_range(1))
    save_total_limit: int = field(default=2, metadata=_range(1))
    report_to: Literal["none", "tensorboard", "wandb"] = "none"


@dataclass
class EvaluationSection:
    """How the held-out split is decoded and scored."""

    max_samples: int | None = field(default=200, metadata=_range(1))
    batch_size: int = field(default=16, metadata=_range(1, 4096))
    max_new_tokens: int = field(default=96, metadata=_range(1, 8192))
    generate_every: int | None = field(default=None, metadata=_range(1))
    generate_samples: int = field(default=32, metadata=_range(1, 100000))


@dataclass
class ExportSection:
    """What notebook 06 writes."""

    parity_samples: int | None = field(default=None, metadata=_range(1))
    push_to_hub: str | None = None  # "user/repo": upload export/ (token from HF_TOKEN or .env)
    gguf: bool = False  # convert the merged model with llama.cpp (see llama_cpp_dir)
    gguf_outtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    llama_cpp_dir: str | None = None  # a llama.cpp checkout (or LLAMA_CPP_DIR)


@dataclass
class Config:
    """A whole profile: which machine, which model, which data, how to train."""

    profile: str = "cpu_tiny"
    seed: int = 42
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

    def resolve_path(self, path: str) -> Path:
        """A path from the config: absolute, or relative to the project root."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else PROJECT_ROOT / p


def profile_path(profile: str | Path) -> Path:
    """``cpu_tiny`` -> ``configs/cpu_tiny.yaml``; a path to a YAML file is used as it is."""
    p = Path(profile)
    if p.suffix in {".yaml", ".yml"}:
        return p if p.is_absolute() or p.exists() else PROJECT_ROOT / p
    return CONFIG_DIR / f"{profile}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(profile: str | Path = "cpu_tiny", **overrides: Any) -> Config:
    """Read a profile YAML, apply overrides, validate, and return a :class:`Config`.

    ``overrides`` are top-level keys; a section may be given partly
    (``training={"max_steps": 10}`` changes one value). ``None`` means "keep the profile's value",
    which is how the notebooks' ``parameters`` cell passes what papermill did not set.
    """
    path = profile_path(profile)
    if not path.exists():
        raise ConfigError(
            f"{path}: no such profile. Available profiles: {', '.join(available_profiles())}; "
            "or pass the path to your own YAML file."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of keys to values.")
    for key, value in overrides.items():
        if value is None:
            continue
        if key in SECTIONS and isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = _deep_merge(raw[key], value)
        else:
            raw[key] = value
    cfg = _build(Config, raw, str(path), prefix="")
    cfg.source = str(path)
    _check_consistency(cfg)
    return cfg


def parse_override(key: str, value: str) -> dict[str, Any]:
    """``("training.max_steps", "20")`` -> ``{"training": {"max_steps": 20}}`` (YAML value)."""
    parsed = yaml.safe_load(value) if value != "" else ""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = parsed
    return out


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


def _build(cls: type, raw: dict[str, Any], source: str, prefix: str) -> Any:
    """Turn a mapping into dataclass ``cls``, checking keys, types and ranges."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: {prefix.rstrip('.') or 'the file'} must be a mapping of settings; "
            f"got {type(raw).__name__} {raw!r:.60}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]!s}. "
            f"Allowed keys{' in ' + prefix.rstrip('.') if prefix else ''}: {', '.join(fields)}."
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        values[name] = _check_value(hints[name], value, fields[name], source, prefix + name)
    return cls(**values)


def _check_value(tp: Any, value: Any, fld: dataclasses.Field, source: str, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, source, key + ".")
    item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
    if item is not None and dataclasses.is_dataclass(item):
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list of mappings; got {value!r:.60}.")
        return [_build(item, v, source, f"{key}[{i}].") for i, v in enumerate(value)]
    value = _coerce(tp, value)
    if not _matches(tp, value):
        raise ConfigError(f"{source}: {key} must be {_describe(tp)}; got {value!r}.")
    lo, hi = fld.metadata.get("range", (None, None))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = " and ".join(
                s for s in (lo is not None and f">= {lo}", hi is not None and f"<= {hi}") if s
            )
            raise ConfigError(f"{source}: {key} must be {_describe(tp)} {bounds}; got {value!r}.")
    return value


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce(tp: Any, value: Any) -> Any:
    """Accept what YAML users write: ``2e-4`` (a string to PyYAML) and ``1`` for a float."""
    args = _union_args(tp)
    if float in args and not isinstance(value, bool):
        if isinstance(value, int):
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
    for lang in cfg.data.languages or []:
        if lang not in ("ko", "en"):
            raise ConfigError(f"{src}: data.languages items must be 'ko' or 'en'; got {lang!r}.")
    if cfg.data.languages == []:
        raise ConfigError(f"{src}: data.languages must name a language (ko, en), or be null.")
    for i, s in enumerate(cfg.data.sources):
        if not s.spec:
            raise ConfigError(f"{src}: data.sources[{i}].spec must name a file or dataset.")
    if cfg.training.max_steps == 0:
        raise ConfigError(f"{src}: training.max_steps must be -1 (use epochs) or >= 1; got 0.")
    if cfg.model.quantization != "none" and cfg.model.name == "tiny":
        warnings.warn(
            f"{src}: the tiny model is quantized to {cfg.model.quantization}; this works on CPU "
            "with bitsandbytes but is slower than float32 for so small a model.",
            stacklevel=3,
        )
