"""The pictures draw what the objects hold: the trained tokens of a real example, the padding
and the attention blocks of a real batch layout, LoRA's counts."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from qdlib import figures, pictures
from qdlib.prompts import IGNORE_INDEX, encode_example

RECORD = {"question": "Which is older, A or B?", "sub_questions": ["How old is A?", "How old?"]}


def colors(fig) -> list[str]:
    from matplotlib.colors import to_hex

    return [to_hex(p.get_facecolor()) for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def test_each_token_is_coloured_by_whether_it_is_trained(tiny_tokenizer):
    example = encode_example(RECORD, tiny_tokenizer)
    drawn = colors(pictures.trained_tokens(example, tiny_tokenizer))
    prompt = example["labels"].count(IGNORE_INDEX)
    assert len(drawn) == len(example["input_ids"])
    assert drawn.count(pictures.PROMPT) == prompt and drawn[-1] == pictures.END.lower()
    assert drawn.count(pictures.ANSWER.lower()) == len(drawn) - prompt - 1


def test_the_packed_attention_has_one_causal_block_per_example():
    fig = pictures.batch_layouts([3, 2])
    mask = fig.axes[2].images[0].get_array()
    expected = np.zeros((5, 5))
    expected[:3, :3] = np.tril(np.ones((3, 3)))
    expected[3:, 3:] = 2 * np.tril(np.ones((2, 2)))
    assert np.array_equal(np.asarray(mask), expected)
    assert "17% padding" in fig.axes[0].get_title()  # 1 of 6 positions
    # each example's first and last position id: the restart stays readable in a long row
    assert [t.get_text() for t in fig.axes[1].texts] == ["0", "2", "0", "1"]
    long = pictures.batch_layouts([120, 90, 100])
    assert [t.get_text() for t in long.axes[1].texts] == ["0", "119", "0", "89", "0", "99"]


def test_a_token_is_drawn_whole_not_cut_to_a_few_letters(tiny_tokenizer):
    record = {"question": "Which encyclopedia was published first?",
              "sub_questions": ["When was the encyclopedia published?"]}  # fmt: skip
    texts = drawn_texts(encode_example(record, tiny_tokenizer), tiny_tokenizer)
    words = {tiny_tokenizer.decode([t]).strip() for t in
             encode_example(record, tiny_tokenizer)["input_ids"]}  # fmt: skip
    longest = max((w for w in words if w.isalpha()), key=len)
    assert len(longest) > 6 and (longest in texts or longest[:8] + "…" in texts)


def test_lora_picture_counts_what_trains():
    fig = pictures.lora_update(d=10, r=3)
    assert "trains 2·d·r = 60 values instead of d² = 100" in fig._suptitle.get_text()


def test_the_loss_shapes_say_they_are_illustrations():
    fig = pictures.loss_shapes()
    assert all(ax.get_title().startswith("illustration") for ax in fig.axes)


KOREAN = {"question": "서울과 부산 중 인구가 더 많은 도시는?", "sub_questions": ["서울의 인구는?"]}


def drawn_texts(example, tokenizer) -> list[str]:
    """Draw and render the trained-tokens picture with any warning (a missing glyph) as an
    error; return its texts."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = pictures.trained_tokens(example, tokenizer)
        fig.canvas.draw()
    return [t.get_text() for t in fig.axes[0].texts]


def test_korean_tokens_are_drawn_without_a_missing_glyph_warning(tiny_tokenizer):
    if pictures.hangul_font() is None:
        import pytest

        pytest.skip("no Korean font on this machine; the escape branch is tested below")
    example = encode_example(KOREAN, tiny_tokenizer)
    texts = drawn_texts(example, tiny_tokenizer)
    assert any("서" in t for t in texts) and not any("\\u" in t for t in texts)


def test_without_a_korean_font_hangul_is_written_as_escapes(tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(pictures, "hangul_font", lambda: None)
    example = encode_example(KOREAN, tiny_tokenizer)
    texts = drawn_texts(example, tiny_tokenizer)
    assert any("\\uc11c" in t for t in texts)  # 서
    assert not any("가" <= c <= "힣" for t in texts for c in t)


def test_a_korean_font_installed_after_matplotlib_cached_its_fonts_is_found(monkeypatch):
    from matplotlib import font_manager

    if not any("Nanum" in p for p in font_manager.findSystemFonts()):
        import pytest

        pytest.skip("no Nanum font files on this machine")
    stale = [f for f in font_manager.fontManager.ttflist if f.name not in figures.HANGUL_FONTS]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    pictures.hangul_font.cache_clear()
    try:
        assert pictures.hangul_font() == "NanumGothic"
    finally:
        pictures.hangul_font.cache_clear()
