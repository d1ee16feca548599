"""Pictures of the course's ideas, drawn by code from the real objects (or, for the loss-curve
shapes, from clearly marked illustrations): LoRA's low-rank update (03), which tokens are trained
(01), a padded and a packed batch with their position ids and attention blocks (04), and what a
good and a bad loss curve look like (04). Each function returns a matplotlib figure.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.colors import ListedColormap
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Rectangle

from qdlib.prompts import IGNORE_INDEX

PROMPT, ANSWER, END, PAD = "#d9d9d9", "#55A868", "#DD8452", "#ffffff"

# Fonts that draw Hangul, in order of preference: Linux (fonts-nanum, fonts-noto-cjk), Windows,
# macOS.
HANGUL_FONTS = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic",
                "Apple SD Gothic Neo", "AppleGothic", "UnDotum")  # fmt: skip


@cache
def hangul_font() -> str | None:
    """The first of :data:`HANGUL_FONTS` on this machine, or None.

    Also finds a font installed after matplotlib built its font cache (the cache is not rebuilt
    by itself): the font folders are searched for the font files, which are then registered.
    """
    def known() -> set[str]:
        return {f.name for f in font_manager.fontManager.ttflist}

    if not known().intersection(HANGUL_FONTS):
        stems = {name.replace(" ", "") for name in HANGUL_FONTS}
        for path in font_manager.findSystemFonts():
            if any(Path(path).stem.replace("-", "").startswith(s) for s in stems):
                font_manager.fontManager.addfont(path)
    return next((name for name in HANGUL_FONTS if name in known()), None)


@cache
def _glyphs(family: str) -> frozenset[int]:
    """The code points the font that matplotlib picks for ``family`` (a name or a generic family
    such as ``sans-serif``) can draw."""
    path = font_manager.findfont(font_manager.FontProperties(family=[family]))
    return frozenset(FT2Font(path).get_charmap())


def token_text(text: str) -> tuple[str, list[str]]:
    """A token's text as it can be drawn here, and the font families to draw it with.

    Characters no available font has (Hangul on a machine without a Korean font) are written as
    ``\\uXXXX`` escapes instead of empty boxes and a warning per glyph.
    """
    families = [*plt.rcParams["font.family"]]  # usually ["sans-serif"], i.e. DejaVu Sans
    if (korean := hangul_font()) is not None:
        families.append(korean)  # matplotlib takes each glyph from the first family that has it
    drawable = frozenset().union(*(_glyphs(f) for f in families))
    return "".join(c if ord(c) in drawable else f"\\u{ord(c):04x}" for c in text), families


def lora_update(d: int = 12, r: int = 2, seed: int = 0) -> Any:
    """W x + B A x: a frozen d x d weight, and the two thin matrices LoRA trains instead.

    The numbers under each matrix are how many values it holds: 2·d·r trained against d² frozen.
    """
    rng = np.random.default_rng(seed)
    w, b, a = rng.normal(size=(d, d)), rng.normal(size=(d, r)), rng.normal(size=(r, d))
    fig, axes = plt.subplots(1, 4, figsize=(9, 2.8), gridspec_kw={"width_ratios": [d, r, d, d]})
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once
    panels = [
        (w, "W (frozen)", d * d, "Greys"),
        (b, "B (trained)", d * r, "Greens"),
        (a, "A (trained)", r * d, "Greens"),
        (w + b @ a, "W + B·A (merged)", d * d, "Blues"),
    ]
    for ax, (m, title, n, cmap) in zip(axes, panels, strict=True):
        ax.imshow(m, cmap=cmap, aspect="equal")
        ax.set(title=title, xticks=[], yticks=[], xlabel=f"{m.shape[0]}×{m.shape[1]} = {n} values")
    fig.suptitle(f"LoRA, rank r={r}: trains 2·d·r = {2 * d * r} values instead of d² = {d * d}")
    fig.tight_layout()
    return fig


def trained_tokens(example: dict[str, Any], tokenizer: Any, width: int = 16) -> Any:
    """One training example, token by token: grey tokens are the prompt (label -100, not
    trained), green the answer, orange the end-of-sequence token the model learns to stop with."""
    ids, labels = example["input_ids"], example["labels"]
    rows = -(-len(ids) // width)
    fig, ax = plt.subplots(figsize=(width * 0.75, rows * 0.42 + 0.6))
    plt.close(fig)
    for i, (tok, label) in enumerate(zip(ids, labels, strict=True)):
        color = PROMPT if label == IGNORE_INDEX else END if i == len(ids) - 1 else ANSWER
        x, y = i % width, rows - 1 - i // width
        ax.add_patch(Rectangle((x, y), 0.95, 0.85, color=color))
        piece = tokenizer.decode([tok]).replace("\n", "⏎").strip()  # the space: the box's gap
        text, families = token_text(piece if len(piece) <= 9 else piece[:8] + "…")
        size = 7 if len(text) <= 6 else 5.5  # a whole word fits its box in a smaller font
        ax.text(x + 0.47, y + 0.42, text or "·", ha="center", va="center", fontsize=size,
                family=families)  # fmt: skip
    ax.set(xlim=(0, width), ylim=(0, rows), xticks=[], yticks=[])
    trained = sum(label != IGNORE_INDEX for label in labels)
    ax.set_title(f"{len(ids)} tokens: {len(ids) - trained} prompt (grey, not trained), "
                 f"{trained - 1} answer (green) + 1 EOS (orange), trained")  # fmt: skip
    fig.tight_layout()
    return fig


def batch_layouts(lengths: list[int]) -> Any:
    """The same examples as a padded batch and as one packed row: where the padding goes, the
    position ids that restart at each example, and the attention blocks that keep packed
    examples apart (a token sees only earlier tokens of its own example)."""
    n, longest, total = len(lengths), max(lengths), sum(lengths)
    owner = np.full((n, longest), -1)
    for i, length in enumerate(lengths):
        owner[i, :length] = i
    packed = np.concatenate([np.full(length, i) for i, length in enumerate(lengths)])
    positions = np.concatenate([np.arange(length) for length in lengths])
    mask = (packed[:, None] == packed[None, :]) & (np.arange(total)[:, None] >= np.arange(total))
    colors = ListedColormap([PAD, *plt.cm.tab10.colors[:n]])
    ratios = {"width_ratios": [longest, total, total]}
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), gridspec_kw=ratios)
    plt.close(fig)
    axes[0].imshow(owner + 1, cmap=colors, vmin=0, vmax=n, aspect="auto", interpolation="nearest")
    pad = 1 - total / (n * longest)
    axes[0].set_title(f"padded: {n}×{longest},\n{pad:.0%} padding (white)", fontsize=9)
    axes[0].set(xlabel="position",
                yticks=range(n), yticklabels=[f"example {i + 1}" for i in range(n)])  # fmt: skip
    axes[1].imshow((packed + 1)[None, :], cmap=colors, vmin=0, vmax=n, aspect="auto",
                   interpolation="nearest")  # fmt: skip
    for x, p in enumerate(positions):  # each example's first and last position id
        if p == 0 or x == total - 1 or positions[x + 1] == 0:
            axes[1].text(x, 0, str(p), ha="center", va="center", fontsize=7)
    axes[1].set_title(f"packed: 1×{total}, no padding;\nposition ids restart", fontsize=9)
    axes[1].set(yticks=[], xlabel="position in the row")
    axes[2].imshow(np.where(mask, packed[:, None] + 1, 0), cmap=colors, vmin=0, vmax=n)
    axes[2].set_title("attention in the packed row:\none block per example", fontsize=9)
    axes[2].set(xlabel="key", ylabel="query")
    fig.tight_layout()
    return fig


def loss_shapes(steps: int = 80, seed: int = 0) -> Any:
    """ILLUSTRATIONS, not measurements: the shapes a training loss takes, and what each says.

    Learning (falls, then flattens); too high a learning rate (jumps, or climbs); too low (barely
    moves); overfitting (train keeps falling while held-out loss turns back up).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    noise = rng.normal(0, 0.03, steps)
    shapes = {
        "learning: falls, then flattens": 2.0 * np.exp(-t / 12) + 0.1 + noise,
        "learning rate too high: jumps, climbs": 2.0 * np.exp(-t / 10) + 0.5
        + 0.6 * np.abs(np.sin(t / 3)) * (t > 25) + 0.02 * np.maximum(t - 40, 0) + noise,
        "learning rate too low: barely moves": 2.0 - 0.004 * t + noise,
    }  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    plt.close(fig)
    for label, y in shapes.items():
        axes[0].plot(t, y, label=label)
    axes[0].set(title="illustration: three training losses", xlabel="step", ylabel="loss")
    axes[0].legend(fontsize=7)
    train = 2.0 * np.exp(-t / 10) + 0.05 + noise
    held_out = 2.0 * np.exp(-t / 10) + 0.3 + 0.012 * np.maximum(t - 30, 0) + noise
    axes[1].plot(t, train, label="train loss")
    axes[1].plot(t, held_out, label="held-out loss")
    axes[1].axvline(30, color="grey", ls=":")
    axes[1].set(title="illustration: overfitting after the dotted line", xlabel="step")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
