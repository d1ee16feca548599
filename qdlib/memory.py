"""Will it fit? GPU memory for LoRA/QLoRA training, estimated from the architecture and profile.

Exact parts (checked against torch in the tests): parameter bytes by dtype and quantization,
LoRA parameters, their gradients and the optimizer states. Modelled parts: activations, the
logits buffer, the CUDA context and allocator overhead (documented in :func:`estimate`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
from transformers import AutoConfig

from qdlib.config import Config
from qdlib.figures import both, subplots
from qdlib.remote_code import pretrained

MiB = 2**20


@dataclass(frozen=True)
class Architecture:
    """The numbers of a decoder-only transformer that decide its memory (from its config.json)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool  # the output layer shares the embedding's weights
    qkv_bias: bool  # Qwen2 has biases on q, k and v
    head_dim: int = 0  # 0: hidden // heads (Gemma 3 sets its own: 256 with hidden 640)
    norms: int = 0  # norm weights per block; 0: two of ``hidden`` (Gemma 3 has four, and q/k's)

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden // self.heads


# The models the profiles and docs name, so that estimates need no download.
ARCHITECTURES: dict[str, Architecture] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": Architecture(576, 30, 9, 3, 1536, 49152, True, False),
    "Qwen/Qwen2.5-0.5B-Instruct": Architecture(896, 24, 14, 2, 4864, 151936, True, True),
    "Qwen/Qwen2.5-1.5B-Instruct": Architecture(1536, 28, 12, 2, 8960, 151936, True, True),
    "Qwen/Qwen2.5-3B-Instruct": Architecture(2048, 36, 16, 2, 11008, 151936, True, True),
    "Qwen/Qwen2.5-7B-Instruct": Architecture(3584, 28, 28, 4, 18944, 152064, False, True),
    "meta-llama/Llama-3.2-1B-Instruct": Architecture(2048, 16, 32, 8, 8192, 128256, True, False),
    "meta-llama/Llama-3.2-3B-Instruct": Architecture(3072, 28, 24, 8, 8192, 128256, True, False),
    "google/gemma-3-270m": Architecture(
        640, 18, 4, 1, 2048, 262144, True, False, head_dim=256, norms=4 * 640 + 2 * 256
    ),
}
CARDS_MIB = {"rtx4060": 8 * 1024, "runpod": 24 * 1024}  # a CPU profile: 8 GiB, a laptop's share
BLOCK_4BIT, BLOCK_8BIT_OPT, MIN_8BIT_SIZE = 64, 256, 4096
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}


def architecture(cfg: Config, name: str | None = None) -> Architecture:
    """Architecture numbers: shipped for known models, the tiny spec, or ``AutoConfig`` online."""
    name = name or cfg.model.name
    if name == "tiny":
        t = cfg.model.tiny
        return Architecture(hidden=t.hidden_size, layers=t.num_layers, heads=t.num_heads,
                            kv_heads=t.num_kv_heads, intermediate=t.intermediate_size,
                            vocab=t.vocab_size, tied=False, qkv_bias=False)  # fmt: skip
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    c = pretrained(AutoConfig, name, cfg.model.trust_remote_code)
    return Architecture(
        hidden=c.hidden_size, layers=c.num_hidden_layers, heads=c.num_attention_heads,
        kv_heads=getattr(c, "num_key_value_heads", c.num_attention_heads),
        intermediate=c.intermediate_size, vocab=c.vocab_size,
        tied=bool(getattr(c, "tie_word_embeddings", False)),
        qkv_bias=bool(getattr(c, "attention_bias", c.model_type == "qwen2")),
        head_dim=getattr(c, "head_dim", None) or 0,
    )  # fmt: skip


def hf_config(a: Architecture, layers: int | None = None) -> Any:
    """A transformers config with these architecture numbers (Qwen2 with qkv bias, else Llama),
    to build a random-weight model of the real shape; ``layers`` cuts the depth."""
    return AutoConfig.for_model(
        "qwen2" if a.qkv_bias else "llama", hidden_size=a.hidden,
        num_hidden_layers=layers or a.layers, num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads, intermediate_size=a.intermediate,
        vocab_size=a.vocab, tie_word_embeddings=a.tied, use_cache=False, head_dim=a.head_size,
    )  # fmt: skip


def linear_shapes(a: Architecture) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer kind in one transformer block."""
    h, i = a.hidden, a.intermediate
    q, kv = a.heads * a.head_size, a.kv_heads * a.head_size
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}  # fmt: skip


def parameter_counts(a: Architecture) -> dict[str, int]:
    """Parameters by kind: block linears, biases and norms, embeddings, output head."""
    shapes = linear_shapes(a)
    linear = a.layers * sum(i * o for i, o in shapes.values())
    bias = a.layers * sum(shapes[k][1] for k in ("q_proj", "k_proj", "v_proj")) * a.qkv_bias
    norms = a.layers * (a.norms or 2 * a.hidden) + a.hidden
    embed = a.vocab * a.hidden
    head = 0 if a.tied else embed
    return {"linear": linear, "other": bias + norms, "embed": embed, "head": head}


def lora_parameters(a: Architecture, targets: list[str], r: int) -> int:
    """``r * (in + out)`` for every targeted linear layer (``lm_head`` included if named)."""
    shapes = linear_shapes(a)
    n = a.layers * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets if t in shapes)
    if "lm_head" in targets:
        n += r * (a.hidden + a.vocab)
    return n


def weight_bytes(a: Architecture, quantization: str, dtype_bytes: int) -> int:
    """Bytes of the base weights while training. 4-bit: NF4 block linears (half a byte each, one
    8-bit absmax per 64 weights with double quantization, plus a float32 per 256 absmax, per
    layer); 8-bit: int8 linears and a float32 scale per output row. Embeddings, head, norms and
    biases are in the compute dtype, except in a 4/8-bit model: peft's
    ``prepare_model_for_kbit_training`` casts every parameter that is not quantized to float32,
    4 bytes each. (Each 4-bit layer's constant 256-entry code table is not counted.)"""
    p = parameter_counts(a)
    rest_bytes = dtype_bytes if quantization == "none" else 4  # peft's float32 upcast
    rest = (p["other"] + p["embed"] + p["head"]) * rest_bytes
    if quantization == "4bit":
        total = 0
        for i, o in linear_shapes(a).values():
            blocks = -(-i * o // BLOCK_4BIT)
            total += i * o // 2 + blocks + 4 * (-(-blocks // 256))
        return a.layers * total + rest
    if quantization == "8bit":
        rows = a.layers * sum(o for _, o in linear_shapes(a).values())
        return p["linear"] + 4 * rows + rest
    return p["linear"] * dtype_bytes + rest


def optimizer_bytes(tensor_sizes: list[int], optimizer: str) -> int:
    """AdamW keeps two states per trainable value: 4 bytes each (32-bit) or 1 byte each (8-bit,
    plus a float32 absmax per 256 values; tensors under 4096 values stay 32-bit in bitsandbytes)."""
    total = 0
    for n in tensor_sizes:
        if "8bit" in optimizer and n >= MIN_8BIT_SIZE:
            total += 2 * (n + 4 * (-(-n // BLOCK_8BIT_OPT)))
        else:
            total += 2 * 4 * n
    return total


def lora_tensor_sizes(a: Architecture, r: int, targets: list[str]) -> list[int]:
    """Sizes of each LoRA A and B matrix (the optimizer keeps state per tensor)."""
    shapes = dict(linear_shapes(a), lm_head=(a.hidden, a.vocab))
    per_layer = [(k, shapes[k]) for k in targets if k in shapes and k != "lm_head"]
    sizes = [n for _ in range(a.layers) for _, (i, o) in per_layer for n in (r * i, o * r)]
    if "lm_head" in targets:
        sizes += [r * a.hidden, a.vocab * r]
    return sizes


# Activation values autograd keeps per token and layer (sdpa attention, LoRA on all linears),
# measured with :func:`saved_activation_bytes` on the Qwen2.5-0.5B and Llama-3.2-1B architectures
# and solved for the hidden (h) and intermediate (i) sizes: 7h + 4i without LoRA dropout; each
# adapter's dropout keeps its own copy of the input, 17h + 5i with it.
ACTS_PER_TOKEN = {"no_dropout": (7, 4), "dropout": (17, 5)}
CUDA_CONTEXT_MIB, ALLOCATOR_SHARE, HEADROOM = 500.0, 0.10, 0.10


@dataclass
class Estimate:
    """Estimated peak GPU memory for one training step, by part, in MiB."""

    model: str
    weights: float
    lora: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    cuda_context: float
    allocator: float
    card: float

    @property
    def parts(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k not in ("model", "card")}

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.total <= (1 - HEADROOM) * self.card

    @property
    def verdict(self) -> str:
        word = "fits" if self.fits else "does NOT fit"
        return (
            f"{self.model}: {word} a {self.card / 1024:.0f} GiB card "
            f"({100 * self.total / self.card:.0f}% used, {100 * HEADROOM:.0f}% headroom required)"
        )

    def table(self) -> str:
        rows = [f"| {k} | {v:,.0f} |" for k, v in self.parts.items()]
        return "\n".join(
            ["| part | MiB |", "|---|---|", *rows, f"| **total** | **{self.total:,.0f}** |", "",
             self.verdict]
        )  # fmt: skip

    def chart(self) -> Any:
        """One stacked bar of the parts against the card's memory and the headroom line."""
        fig, ax = subplots(figsize=(7, 1.8))
        left = 0.0
        for (name, mib), color in zip(self.parts.items(), plt.cm.tab10.colors, strict=False):
            ax.barh(0, mib / 1024, left=left / 1024, color=color, label=name)
            left += mib
        ax.axvline(self.card / 1024, color="black", lw=2)
        ax.axvline((1 - HEADROOM) * self.card / 1024, color="black", ls="--", lw=1)
        word = "들어감" if self.fits else "들어가지 않음"
        title = both(self.verdict, f"{self.card / 1024:.0f} GiB 카드에 {word}")
        ax.set(xlabel=both("memory, GiB", "메모리(GiB)", " · "), yticks=[], title=title,
               xlim=(0, max(self.card, left) / 1024))  # fmt: skip
        ax.legend(ncol=2, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        return fig


def activation_bytes(
    arch: Architecture, batch: int, seq_len: int, dtype_bytes: int, cfg: Config
) -> int:
    """Activations kept for the backward pass (see ``ACTS_PER_TOKEN``).

    Without gradient checkpointing every layer keeps its values; with it, each layer keeps only
    its input (``hidden`` values per token) and one layer at a time is recomputed with all its
    values alive.
    """
    per_h, per_i = ACTS_PER_TOKEN["dropout" if cfg.lora.dropout > 0 else "no_dropout"]
    tokens = batch * seq_len
    per_layer = tokens * (per_h * arch.hidden + per_i * arch.intermediate) * dtype_bytes
    if cfg.training.gradient_checkpointing:
        return arch.layers * tokens * arch.hidden * dtype_bytes + per_layer
    return arch.layers * per_layer


def logits_bytes(arch: Architecture, batch: int, seq_len: int, dtype_bytes: int) -> int:
    """The output layer's logits in the model's dtype, their float32 copy kept by the loss
    (log-softmax) and its gradient: ``batch * seq_len * vocab * (dtype + 8)`` bytes at the peak."""
    return batch * seq_len * arch.vocab * (dtype_bytes + 8)


def training_bytes(
    cfg: Config, a: Architecture, seq_len: int, batch: int, dtype_bytes: int
) -> dict[str, int]:
    """Bytes by part for one training step (no CUDA context or allocator overhead)."""
    targets = cfg.lora.target_modules
    targets = list(linear_shapes(a)) if targets == "all-linear" else list(targets)
    lora_n = lora_parameters(a, targets, cfg.lora.r)
    return {
        "weights": weight_bytes(a, cfg.model.quantization, dtype_bytes),
        "lora": 4 * lora_n,
        "gradients": 4 * lora_n,
        "optimizer": optimizer_bytes(
            lora_tensor_sizes(a, cfg.lora.r, targets), cfg.training.optimizer
        ),
        "activations": activation_bytes(a, batch, seq_len, dtype_bytes, cfg),
        "logits": logits_bytes(a, batch, seq_len, dtype_bytes),
    }


def estimate(
    cfg: Config,
    model: str | None = None,
    seq_len: int | None = None,
    batch: int | None = None,
    card_mib: float | None = None,
    arch: Architecture | None = None,
) -> Estimate:
    """Estimate peak training memory for a profile (optionally another model, length, batch).

    Exact: weights, LoRA parameters, gradients, optimizer states. Modelled: activations
    (:func:`activation_bytes`) and logits (:func:`logits_bytes`), both checked against
    measurement on CPU (``benchmarks/memory_check.py``); the CUDA context (500 MiB) and the
    caching allocator's overhead (10% of the rest), to be checked on a GPU by
    ``scripts/gpu_check.sh``. ``arch`` replaces the architecture numbers (e.g. a cut model).
    """
    a = arch or architecture(cfg, model)
    s, b = seq_len or cfg.data.max_seq_length, batch or cfg.training.batch_size
    parts = training_bytes(cfg, a, s, b, DTYPE_BYTES[cfg.model.dtype])
    mib = {k: v / MiB for k, v in parts.items()}
    rest = sum(mib.values()) + CUDA_CONTEXT_MIB
    return Estimate(
        model=model or cfg.model.name,
        **mib,
        cuda_context=CUDA_CONTEXT_MIB,
        allocator=ALLOCATOR_SHARE * rest,
        card=card_mib or CARDS_MIB.get(cfg.profile, 8192),
    )


def fits_table(
    cfg: Config, models: list[str] | None = None, seq_lens: tuple[int, ...] = (512, 1024)
) -> str:
    """Which listed models fit the profile's card, with its settings, at each sequence length."""
    models = models or list(ARCHITECTURES)
    head = "| model | " + " | ".join(f"seq {s}" for s in seq_lens) + " |"
    lines = [head, "|---|" + "---|" * len(seq_lens)]
    for name in models:
        cells = []
        for s in seq_lens:
            e = estimate(cfg, model=name, seq_len=s)
            cells.append(f"{'✅' if e.fits else '❌'} {e.total / 1024:.1f} GiB")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def saved_activation_bytes(model: Any, input_ids: Any) -> int:
    """Measured: bytes of the tensors autograd keeps for backward in one forward with labels
    (each storage counted once, parameters excluded). Works on any device."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=input_ids, labels=input_ids)
    return sum(kept.values())
