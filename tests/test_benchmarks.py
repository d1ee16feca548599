"""The training benchmark's ways compute what they say: the plain loop is the padded way's
arithmetic without the Trainer (it once broke silently when the collator gained a key)."""

from __future__ import annotations

import pytest
from conftest import benchmark_script

from qdlib.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def training_speed():
    return benchmark_script("training_speed")


def test_the_plain_loop_trains_the_padded_ways_very_batches(training_speed):
    padded = training_speed.worker("padded", "tiny", n=24, layers=2)
    plain = training_speed.worker("plain", "tiny", n=24, layers=2)
    same = ("steps", "trained_tokens", "positions")
    assert {k: plain[k] for k in same} == {k: padded[k] for k in same}
    assert plain["steps"] == 6 and plain["trained_tokens"] > 0


def test_the_readme_shows_the_committed_training_benchmark():
    table = (PROJECT_ROOT / "benchmarks" / "results" / "training_speed.md").read_text("utf-8")
    assert table.strip() in (PROJECT_ROOT / "README.md").read_text("utf-8")
