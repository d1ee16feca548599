"""Export: never merge into quantized weights; an interrupted export leaves no half folder."""

from __future__ import annotations

import pytest

from qdlib.export import MergeRefused, export_adapter, refuse_quantized


class Quantized:
    is_loaded_in_4bit = True


def test_merge_into_quantized_model_is_refused_with_the_way_out():
    with pytest.raises(MergeRefused, match="Reload the base unquantized"):
        refuse_quantized(Quantized())


def test_interrupted_export_leaves_no_half_folder(tmp_path, monkeypatch):
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "adapter_config.json").write_text("{}", encoding="utf-8")

    def boom(*args, **kwargs):
        raise OSError("interrupted")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="interrupted"):
        export_adapter(src, tmp_path / "export/adapter")
    assert not (tmp_path / "export/adapter").exists()
    assert list((tmp_path / "export").iterdir()) == []
