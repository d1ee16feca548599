"""The ``>>>`` examples in qdlib's docstrings run, so what a learner reads with ``??`` is true."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from qdlib import baselines, figures, metrics, prompts, train, weights

MODULES = [baselines, figures, metrics, prompts, train, weights]  # every module with >>> examples


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_every_module_with_examples_is_listed():
    import qdlib

    folder = qdlib.__path__[0]
    with_examples = {
        f"qdlib.{p.stem}"
        for p in sorted(Path(folder).glob("*.py"))
        if ">>> " in p.read_text(encoding="utf-8")
    }
    assert with_examples == {m.__name__ for m in MODULES}
