"""Pictures of the course's ideas, drawn by code from the real objects (or, for the loss-curve
shapes, from clearly marked illustrations): LoRA's low-rank update (03), which tokens are trained
(01), a padded and a packed batch with their position ids and attention blocks (04), and what a
good and a bad loss curve look like (04). Each function returns a matplotlib figure.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.colors import ListedColormap
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Rectangle

from qdlib.figures import HANGUL_FONTS, both, hangul_font, subplots
from qdlib.prompts import IGNORE_INDEX

PROMPT, ANSWER, END, PAD = "#d9d9d9", "#55A868", "#DD8452", "#ffffff"

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
    # usually ["sans-serif"], i.e. DejaVu Sans (and the Hangul font, once a figure was made)
    families = [f for f in plt.rcParams["font.family"] if f not in HANGUL_FONTS]
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
    fig, axes = subplots(1, 4, figsize=(9, 2.8), gridspec_kw={"width_ratios": [d, r, d, d]})
    panels = [
        (w, both("W (frozen)", "W (고정)"), d * d, "Greys"),
        (b, both("B (trained)", "B (학습)"), d * r, "Greens"),
        (a, both("A (trained)", "A (학습)"), r * d, "Greens"),
        (w + b @ a, both("W + B·A (merged)", "W + B·A (병합)"), d * d, "Blues"),
    ]
    for ax, (m, title, n, cmap) in zip(axes, panels, strict=True):
        ax.imshow(m, cmap=cmap, aspect="equal")
        size = f"{m.shape[0]}×{m.shape[1]}"
        ax.set(title=title, xticks=[], yticks=[],
               xlabel=both(f"{size} = {n} values", f"{size} = 값 {n}개"))  # fmt: skip
    lora, full = 2 * d * r, d * d
    fig.suptitle(both(f"LoRA, rank r={r}: trains 2·d·r = {lora} values instead of d² = {full}",
                      f"LoRA, 랭크 r={r}: d² = {full}개 대신 2·d·r = {lora}개 값을 학습"))
    fig.tight_layout()
    return fig


def trained_tokens(example: dict[str, Any], tokenizer: Any, width: int = 16) -> Any:
    """One training example, token by token: grey tokens are the prompt (label -100, not
    trained), green the answer, orange the end-of-sequence token the model learns to stop with."""
    ids, labels = example["input_ids"], example["labels"]
    rows = -(-len(ids) // width)
    fig, ax = subplots(figsize=(width * 0.75, rows * 0.42 + 0.6))
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
    prompt, answer = len(ids) - trained, trained - 1
    ax.set_title(both(f"{len(ids)} tokens: {prompt} prompt (grey, not trained), "
                      f"{answer} answer (green) + 1 EOS (orange), trained",
                      f"토큰 {len(ids)}개: 프롬프트 {prompt}개(회색, 학습 안 함), "
                      f"답 {answer}개(초록) + EOS 1개(주황), 학습"))  # fmt: skip
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
    fig, axes = subplots(1, 3, figsize=(12, 3.3), gridspec_kw=ratios)
    axes[0].imshow(owner + 1, cmap=colors, vmin=0, vmax=n, aspect="auto", interpolation="nearest")
    pad = 1 - total / (n * longest)
    axes[0].set_title(both(f"padded: {n}×{longest}, {pad:.0%} padding (white)",
                           f"패딩: {n}×{longest}, 패딩 {pad:.0%}(흰색)"), fontsize=9)  # fmt: skip
    axes[0].set(xlabel=both("position", "위치", " · "), yticks=range(n),
                yticklabels=[both(f"example {i + 1}", f"예제 {i + 1}", " · ") for i in range(n)])
    axes[1].imshow((packed + 1)[None, :], cmap=colors, vmin=0, vmax=n, aspect="auto",
                   interpolation="nearest")  # fmt: skip
    for x, p in enumerate(positions):  # each example's first id (high, right of its start)
        if p == 0:  # and its last (low, left of its end): the two never overlap
            axes[1].text(x, -0.2, str(p), ha="left", va="center", fontsize=7)
        elif x == total - 1 or positions[x + 1] == 0:
            axes[1].text(x, 0.2, str(p), ha="right", va="center", fontsize=7)
    axes[1].set_title(both(f"packed: 1×{total}, no padding; position ids restart",
                           f"패킹: 1×{total}, 패딩 없음; 위치 id는 예제마다 0부터"), fontsize=9)
    axes[1].set(yticks=[], xlabel=both("position in the row", "행 안의 위치", " · "))
    axes[2].imshow(np.where(mask, packed[:, None] + 1, 0), cmap=colors, vmin=0, vmax=n)
    axes[2].set_title(both("attention in the packed row: one block per example",
                           "패킹된 행의 어텐션: 예제마다 블록 하나"), fontsize=9)
    axes[2].set(xlabel=both("key", "키", " · "), ylabel=both("query", "쿼리", " · "))
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
        both("learning: falls, then flattens", "학습됨: 떨어진 뒤 평평해짐", " · "):
            2.0 * np.exp(-t / 12) + 0.1 + noise,
        both("learning rate too high: jumps, climbs", "학습률이 너무 높음: 튀고 오름", " · "):
            2.0 * np.exp(-t / 10) + 0.5 + 0.6 * np.abs(np.sin(t / 3)) * (t > 25)
            + 0.02 * np.maximum(t - 40, 0) + noise,
        both("learning rate too low: barely moves", "학습률이 너무 낮음: 거의 안 움직임", " · "):
            2.0 - 0.004 * t + noise,
    }  # fmt: skip
    fig, axes = subplots(1, 2, figsize=(11, 3.2))
    for label, y in shapes.items():
        axes[0].plot(t, y, label=label)
    step, loss = both("step", "스텝", " · "), both("loss", "손실", " · ")
    axes[0].set(title=both("illustration: three training losses", "예시 그림: 학습 손실 세 가지"),
                xlabel=step, ylabel=loss)  # fmt: skip
    axes[0].legend(fontsize=7)
    train = 2.0 * np.exp(-t / 10) + 0.05 + noise
    held_out = 2.0 * np.exp(-t / 10) + 0.3 + 0.012 * np.maximum(t - 30, 0) + noise
    axes[1].plot(t, train, label=both("train loss", "학습 손실", " · "))
    axes[1].plot(t, held_out, label=both("held-out loss", "떼어 둔 질문의 손실", " · "))
    axes[1].axvline(30, color="grey", ls=":")
    axes[1].set(title=both("illustration: overfitting after the dotted line",
                           "예시 그림: 점선 뒤로 과적합"), xlabel=step)  # fmt: skip
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
