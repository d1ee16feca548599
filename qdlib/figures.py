"""The course's figures: made closed (a notebook shows the returned figure once), with a font
that draws Hangul where this machine has one, and titles and axes in English and Korean (English
alone without such a font: never empty boxes)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

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
    from matplotlib import font_manager  # here: `qd` starts without matplotlib

    def known() -> set[str]:
        return {f.name for f in font_manager.fontManager.ttflist}

    if not known().intersection(HANGUL_FONTS):
        stems = {name.replace(" ", "") for name in HANGUL_FONTS}
        for path in font_manager.findSystemFonts():
            if any(Path(path).stem.replace("-", "").startswith(s) for s in stems):
                font_manager.fontManager.addfont(path)
    return next((name for name in HANGUL_FONTS if name in known()), None)


def korean_fallback() -> str | None:
    """Make :func:`hangul_font` matplotlib's fallback font (each Hangul glyph is drawn from it,
    every other glyph from the usual font); return its name, or None where there is none."""
    import matplotlib.pyplot as plt

    font = hangul_font()
    if font is not None and font not in plt.rcParams["font.family"]:
        plt.rcParams["font.family"] = [*plt.rcParams["font.family"], font]
    return font


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(...)``, closed: the function that draws returns the figure, and a notebook
    displays it once (an open figure would be shown a second time)."""
    import matplotlib.pyplot as plt

    korean_fallback()
    fig, axes = plt.subplots(*args, **kwargs)
    plt.close(fig)
    return fig, axes


def both(english: str, korean: str, sep: str = "\n") -> str:
    """A title or axis label in English and Korean, or in English alone on a machine without a
    Hangul font.

    >>> both("step", "스텝", " · ") in ("step · 스텝", "step")
    True
    """
    return f"{english}{sep}{korean}" if korean_fallback() is not None else english
