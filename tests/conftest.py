"""Shared fixtures: the cpu_tiny profile, its tokenizer, and offline mode for every test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from qdlib.config import Config, load_config


@pytest.fixture(scope="session")
def tiny_cfg() -> Config:
    return load_config("cpu_tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_cfg):
    from qdlib.model import load_tokenizer

    return load_tokenizer(tiny_cfg)
