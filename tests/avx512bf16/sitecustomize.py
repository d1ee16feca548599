"""Make this Python take bitsandbytes' AVX-512 BF16 import-time branch, whatever the CPU.

With this folder on ``PYTHONPATH``, Python runs this file at start-up (``site`` imports
``sitecustomize``), in the process and in every notebook kernel it starts. While bitsandbytes
imports its CPU backend, ``has_avx512bf16()`` answers True, so the backend runs what it runs at
import on a Sapphire Rapids or Zen 4 CPU: it tries the ``kernels`` package and logs a notice when
that fails. The real answer is restored right after that import, so nothing here ever executes an
AVX-512 BF16 instruction on a CPU that lacks them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

TARGET = "bitsandbytes.backends.cpu.ops"


class _ForcedLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        functional = sys.modules["bitsandbytes.functional"]
        real = functional.has_avx512bf16
        functional.has_avx512bf16 = lambda: True
        try:
            self.inner.exec_module(module)
        finally:
            functional.has_avx512bf16 = real


class _ForceAvx512Bf16(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ForcedLoader(spec.loader)
        return spec


sys.meta_path.insert(0, _ForceAvx512Bf16())
