"""The ``>>>`` examples in qdlib's docstrings run, so what a learner reads with ``??`` is true."""

from __future__ import annotations

import doctest

import pytest

from qdlib import baselines, data, evaluate, metrics, weights

MODULES = [baselines, data, evaluate, metrics, weights]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
