"""Lesson 02: load a base model and its tokenizer (a hub id, a local folder, or the tiny model).

``model.name: tiny`` builds, from a seed, a small Llama-architecture model with random weights and
a byte-level BPE tokenizer trained on the bundled data, saves it as an ordinary Hugging Face folder,
and loads it with ``from_pretrained`` like any hub model. Nothing here downloads for the tiny model.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors import safe_open
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from qdlib.config import PROJECT_ROOT, Config, ConfigError
from qdlib.data import load_records
from qdlib.files import atomic_dir, read_json, safetensors_problem
from qdlib.notices import quiet_hf
from qdlib.prompts import prompt_messages, render_answer
from qdlib.remote_code import allow_remote_code, pretrained
from qdlib.runs import RunDirError
from qdlib.weights import WeightsSource, cache_dir, weights_for

TINY_FORMAT_VERSION = "3"  # 3: no token holds part of two characters; system-turn prompts
TINY_CORPUS = ("data/teaching/decompose_teach.jsonl", "data/examples/sample_train.jsonl")
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------- precision and quantization


def resolve_dtype(requested: str, on: str | None = None) -> torch.dtype:
    """The dtype to load in. ``auto``: bf16 on a GPU that has it, else fp16; fp32 on CPU.

    bf16 asked on a GPU without bf16 falls back to fp16 with a warning; fp16 asked on a CPU
    falls back to fp32 (CPU kernels for fp16 training are slow or missing).
    """
    on = on or device()
    if on == "cuda":
        # Native bf16 only: RTX 20xx / T4 emulate it, slowly (torch counts emulation by default).
        bf16_ok = torch.cuda.is_bf16_supported(including_emulation=False)
        if requested == "auto":
            return torch.bfloat16 if bf16_ok else torch.float16
        if requested == "bfloat16" and not bf16_ok:
            warnings.warn("this GPU has no bfloat16: falling back to float16.", stacklevel=2)
            return torch.float16
    elif requested in ("auto", "float16"):
        if requested == "float16":
            warnings.warn("float16 on CPU is slow and unstable: using float32.", stacklevel=2)
        return torch.float32
    return getattr(torch, requested)


def check_quantization(kind: str, on: str | None = None) -> None:
    """Fail early, with what to do, when bitsandbytes cannot quantize on this device."""
    if kind == "none":
        return
    on = on or device()
    try:  # the import itself can fail on a machine without a bitsandbytes backend
        import bitsandbytes.functional as bnbf

        x = torch.randn(64, 64, device=on)
        if kind == "4bit":
            bnbf.quantize_4bit(x, quant_type="nf4")
        else:
            bnbf.int8_vectorwise_quant(x.half() if on == "cuda" else x)
    except Exception as exc:
        raise ConfigError(
            f"model.quantization={kind!r} needs a bitsandbytes backend for {on}, and none works "
            f"here ({type(exc).__name__}: {exc}). Install bitsandbytes>=0.46 (CUDA or CPU "
            "build), or set model.quantization: none."
        ) from exc


def quantization_config(cfg: Config, dtype: torch.dtype) -> Any:
    """A ``BitsAndBytesConfig`` for QLoRA (NF4 + double quantization) or 8-bit, or ``None``."""
    if cfg.model.quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    if cfg.model.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


# ---------------------------------------------------------------- the offline tiny model


def _corpus_texts() -> list[str]:
    """Text the tiny tokenizer is trained on: each bundled record as the model will see it.

    Prompts include the instruction wording, so frequent words become single tokens and the
    tiny model spends its few steps on the answer, not on spelling out the instruction.
    """
    texts = []
    for rel in TINY_CORPUS:
        for rec in load_records(PROJECT_ROOT / rel).records:
            system, user = prompt_messages(rec["question"])
            texts.append(f"system\n{system['content']}\nuser\n{user['content']}\nassistant\n")
            texts.append(render_answer(rec["sub_questions"]))
    return texts


def tiny_model_dir(cfg: Config) -> Path:
    """The cache folder for this tiny spec, seed and corpus (built by :func:`build_tiny_model`)."""
    h = hashlib.sha256()
    h.update(json.dumps([TINY_FORMAT_VERSION, cfg.seed, vars(cfg.model.tiny)]).encode())
    for rel in TINY_CORPUS:
        h.update((PROJECT_ROOT / rel).read_bytes())
    return cache_dir() / f"tiny-{h.hexdigest()[:12]}"


def train_tiny_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (any text, Korean included, round-trips) with a chat template.

    Each non-ASCII character (a Hangul syllable is 3 bytes in UTF-8) is its own piece before BPE
    merges bytes, so a token holds whole characters or part of one, never the end of one and the
    start of the next. Merged across characters, a token like the last byte of 서 plus the first
    two of 울 leaves the model to finish a character with the next token, and when it picks wrong
    the decoded text gets U+FFFD in place of a syllable.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[^\x00-\x7F]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(cfg: Config) -> Path:
    """Build (once) and cache the tiny model; return its folder.

    The same seed, spec and bundled data always give the same weights and tokenizer. The folder is
    written under a temporary name and renamed when complete, so a crash leaves no half model.
    """
    target = tiny_model_dir(cfg)
    if (target / "config.json").exists():
        return target
    spec = cfg.model.tiny
    tokenizer = train_tiny_tokenizer(_corpus_texts(), spec.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    def write(tmp: Path) -> None:
        with quiet_hf():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return atomic_dir(target, write)


# ---------------------------------------------------------------- loading


def weights_source(cfg: Config) -> WeightsSource:
    """Where the base model loads from: the tiny model's folder, a local folder, the hub or its
    cache, or a GGUF shipped in a Python package (see :mod:`qdlib.weights`)."""
    if cfg.model.name == "tiny":
        detail = f"built from seed {cfg.seed}: random weights, tokenizer trained on bundled data"
        return WeightsSource(str(build_tiny_model(cfg)), "tiny", detail)
    return weights_for(cfg.model.name, cfg.model.revision, cfg.resolve_path(cfg.model.name))


def load_tokenizer(cfg: Config) -> Any:
    """The base model's tokenizer, with a pad token (the EOS when the model has none).

    A pad token equal to EOS is safe here: labels are built explicitly and the collator pads them
    with -100, so the EOS that ends each answer keeps its label.
    """
    tok = pretrained(
        AutoTokenizer, weights_source(cfg).path, allow_remote_code(cfg), revision=cfg.model.revision
    )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: Config, quantized: bool = True) -> Any:
    """Load the base model in the profile's dtype (and 4/8-bit when asked and ``quantized``)."""
    on = device()
    dtype = resolve_dtype(cfg.model.dtype, on)
    qcfg = None
    if quantized and cfg.model.quantization != "none":
        check_quantization(cfg.model.quantization, on)
        qcfg = quantization_config(cfg, dtype)
    path = weights_source(cfg).path
    with quiet_hf():
        return pretrained(
            AutoModelForCausalLM,
            path,
            allow_remote_code(cfg),
            revision=cfg.model.revision,
            dtype=dtype,
            quantization_config=qcfg,
            device_map={"": on} if qcfg is not None or on == "cuda" else None,
            attn_implementation=cfg.model.attn_implementation,
            use_safetensors=True,
        )


def fingerprint(tensors: Any) -> str:
    """One sha256 of the tensors' bytes, in order: equal only for the very same values. Lessons
    02 and 06 compare two models by it with one model in memory at a time (two copies of a 7B
    model do not fit a 24 GB card)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy())
    return digest.hexdigest()


@dataclass
class ModelSummary:
    """What a learner wants to know about a loaded model."""

    name: str
    architecture: str
    parameters: int
    dtype: str
    quantization: str
    memory_mb: float
    vocab_size: int
    chat_template: bool
    source: str = ""  # where the weights came from: tiny, local folder, hub, hub cache, package
    source_detail: str = ""  # what they are: for a package, the GGUF file, its package, float32
    source_sha256: str = ""  # the GGUF file's sha256, when they were converted from one
    source_caution: str = ""  # what to know before loading an adapter trained on them elsewhere

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.architecture}, {self.parameters:,} parameters, "
            f"dtype {self.dtype}, quantization {self.quantization}, "
            f"{self.memory_mb:,.1f} MB of weights, vocabulary {self.vocab_size:,}, "
            f"chat template: {'yes' if self.chat_template else 'no'}"
        )


def summarize_model(model: Any, tokenizer: Any, cfg: Config) -> ModelSummary:
    """Size, precision and origin of a loaded model (lesson 02 writes it to ``model.json``, the
    record the model card reads to say what the adapter was trained on)."""
    source = weights_source(cfg)
    return ModelSummary(
        name=cfg.model.name,
        architecture=type(model).__name__,
        parameters=sum(p.numel() for p in model.parameters()),
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        quantization=cfg.model.quantization,
        memory_mb=model.get_memory_footprint() / 2**20,
        vocab_size=len(tokenizer),
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
        source=source.kind,
        source_detail=source.detail,
        source_sha256=source.sha256,
        source_caution=source.caution,
    )


def check_adapter(adapter_dir: Path) -> None:
    """A :class:`~qdlib.runs.RunDirError` when an adapter folder is missing, or its config or its
    weights are not whole (a cut file is found here, not after an hour of generating)."""
    adapter_dir = Path(adapter_dir)
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        raise RunDirError(f"{adapter_dir}: no adapter here; run notebooks/04_train first.")
    try:
        settings = read_json(config)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{config}: unreadable ({exc}); train the adapter again.") from None
    problem = safetensors_problem(adapter_dir / "adapter_model.safetensors")
    if problem:
        raise RunDirError(f"{adapter_dir}: {problem}; train the adapter again (or --resume).")
    problem = adapter_config_problem(settings, adapter_dir / "adapter_model.safetensors")
    if problem:
        raise RunDirError(f"{config}: {problem}; it is not what training wrote.")


def adapter_config_problem(settings: Any, weights: Path) -> str | None:
    """What in an ``adapter_config.json`` peft would trip over: ``r``, ``lora_alpha`` and
    ``target_modules`` of the wrong type or range, or an ``r`` other than the weights' rank."""
    if not isinstance(settings, dict):
        return "not a JSON object"
    r, alpha, targets = (settings.get(k) for k in ("r", "lora_alpha", "target_modules"))
    number = lambda v: isinstance(v, int | float) and not isinstance(v, bool)  # noqa: E731
    if not (isinstance(r, int) and number(r) and 1 <= r <= 4096):
        return f"r={r!r:.40}: the rank is a whole number from 1 to 4096"
    if not (number(alpha) and 0 < alpha <= 1e6):
        return f"lora_alpha={alpha!r:.40}: a positive number"
    if not (isinstance(targets, str) or (isinstance(targets, list) and targets
            and all(isinstance(t, str) for t in targets))):  # fmt: skip
        return f"target_modules={targets!r:.60}: a list of layer names (or one pattern)"
    with safe_open(weights, framework="pt") as f:
        ranks = {f.get_slice(k).get_shape()[0] for k in f.keys() if k.endswith("lora_A.weight")}
    if ranks - {r}:
        return f"r={r}, and the weights' rank is {min(ranks - {r})}"
    return None


def adapter_mismatch(base: Any, adapter_dir: Path) -> str | None:
    """Why a LoRA adapter cannot sit on ``base`` (it adapts a layer the model lacks, or a layer of
    other sizes: it was trained on another model), or None. Reads only the weights' header.

    Each adapted layer W (``out x in``) has ``lora_A`` of shape ``r x in`` and ``lora_B`` of shape
    ``out x r``; the sides that touch W must match W's.
    """
    layers = dict(base.named_modules())
    targets = read_json(Path(adapter_dir) / "adapter_config.json").get("target_modules")
    for target in targets if isinstance(targets, list) else []:
        if not any(n == target or n.endswith("." + target) for n in layers):
            return f"it targets {target!r:.60}, a layer this model does not have"
    with safe_open(Path(adapter_dir) / "adapter_model.safetensors", framework="pt") as f:
        for key in f.keys():
            found = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", key)
            if found is None:
                continue
            name, side = found.groups()
            if name not in layers:
                return f"it adapts {name}, a layer this model does not have"
            shape = f.get_slice(key).get_shape()
            size, what = (shape[1], "in_features") if side == "A" else (shape[0], "out_features")
            want = getattr(layers[name], what, size)  # a layer without the attribute: not checked
            if size != want:
                return f"its {name} has {what}={size}, this model's has {want}"
    return None


class AdapterMismatch(ConfigError):
    """An adapter trained on another base model than the one it is put on (the profile's
    ``model.name``, or the base an export names): a setting to fix, as a :class:`ConfigError`."""


def attach_adapter(base: Any, adapter_dir: Path, base_name: str, hint: str = "") -> Any:
    """``PeftModel.from_pretrained(base, adapter_dir)``, after :func:`adapter_mismatch`: an
    adapter trained on another base model is an :class:`AdapterMismatch` naming the layer and
    sizes (peft would fail on the first layer of the wrong size), ``hint`` saying what to do."""
    if (why := adapter_mismatch(base, adapter_dir)) is not None:
        raise AdapterMismatch(
            f"{adapter_dir}: this adapter does not fit the base model {base_name}; it was trained "
            f"on another base model: {why}.{hint}"
        )
    with quiet_hf():
        return PeftModel.from_pretrained(base, str(adapter_dir))


def load_with_adapter(cfg: Config, adapter_dir: Path, quantized: bool = True) -> Any:
    """The base model with a trained LoRA adapter on top (``peft.PeftModel``), ready to generate.

    A cut adapter is refused before the base is loaded (:func:`check_adapter`), one trained on
    another base model before peft touches it (:func:`attach_adapter`).
    """
    check_adapter(adapter_dir)
    base = load_model(cfg, quantized=quantized)
    hint = " Use the run's own config.yaml, or set model.name to the model it was trained on."
    return attach_adapter(base, adapter_dir, cfg.model.name, hint)
