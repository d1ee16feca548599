"""Code from the hub runs only when you allow it: a model's own Python files, and hub kernels.

A model folder or hub repository may name Python files of its own (``auto_map`` in its config);
``from_pretrained(..., trust_remote_code=True)`` imports and runs them, with your permissions.
qdlib keeps that off unless ``model.trust_remote_code: true``, and loads every model, config and
tokenizer through :func:`pretrained`, which never leaves the choice to a prompt on stdin.

Hub kernels are code from the hub too: the ``kernels`` package (a dependency of transformers since
5.25) downloads compiled layers and functions from hub repositories and loads them into the
process. ``import qdlib`` turns that off (:func:`forbid_hub_kernels`) unless you set
``USE_HUB_KERNELS=YES`` yourself: the course trains and measures with the layers of torch,
transformers and bitsandbytes that were installed from the lock, on every machine alike.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from qdlib.config import Config, ConfigError


def allow_remote_code(cfg: Config) -> bool:
    """The profile's ``model.trust_remote_code``, with a warning when it is on.

    With it on, loading runs Python code from the model's repository, not only its weights.
    """
    if cfg.model.trust_remote_code:
        warnings.warn(
            f"model.trust_remote_code is true: loading {cfg.model.name} runs Python code from its "
            "repository on this machine, with your permissions; keep it on only for code you "
            "have read and trust.",
            UserWarning,
            stacklevel=3,
        )
    return cfg.model.trust_remote_code


def pretrained(auto_class: Any, path: str | Path, trust_remote_code: bool, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(path, ...)``: how qdlib loads every model, config, tokenizer.

    ``trust_remote_code`` is always passed as a bool: left unset, transformers asks on stdin
    whether to run a folder's own Python code (its ``auto_map``), and a piped ``yes`` would run
    it. A folder that needs its own code while the setting is off is refused, naming the setting.
    """
    try:
        return auto_class.from_pretrained(
            str(path), trust_remote_code=bool(trust_remote_code), **kwargs
        )
    except ValueError as exc:
        if trust_remote_code or "trust_remote_code=True" not in str(exc):
            raise
        raise ConfigError(
            f"{path} loads only by running Python code that ships with it (`auto_map` in its "
            "config), and model.trust_remote_code is false, so qdlib refused and ran nothing. "
            "Read that code; if you trust it, set model.trust_remote_code: true in the profile "
            "(or -p model.trust_remote_code true)."
        ) from None


# transformers' own switch for hub kernels (``use_kernels=True``, ``kernelize``, the kernels it
# loads lazily for some layers); qdlib sets it to NO unless you set it.
HUB_KERNELS = "USE_HUB_KERNELS"
# bitsandbytes has no switch: on a CPU with AVX-512 BF16 its CPU backend calls
# ``kernels.get_kernel("kernels-community/quantization-bitsandbytes")`` while it is imported.
# Offline that logs two warnings and fails; online it downloads and runs that kernel.
BNB_CPU_BACKEND = "bitsandbytes.backends.cpu.ops"


def hub_kernels_allowed() -> bool:
    """Whether ``USE_HUB_KERNELS`` is set to a true value (as transformers reads it)."""
    return os.environ.get(HUB_KERNELS, "").strip().lower() in {"1", "true", "y", "yes", "on"}


def forbid_hub_kernels() -> None:
    """Keep hub kernels from being downloaded and run, unless ``USE_HUB_KERNELS`` allows them.

    For transformers: its switch, ``USE_HUB_KERNELS=NO``, unless you set one. For bitsandbytes,
    which has none: its CPU backend is imported as if ``kernels`` were not installed, which
    bitsandbytes handles itself (it keeps its bundled CPU kernels; see ``qdlib.notices`` for the
    one log line that leaves). Called by ``import qdlib``, before anything imports bitsandbytes.
    """
    os.environ.setdefault(HUB_KERNELS, "NO")
    if hub_kernels_allowed():
        return
    if not any(isinstance(f, _ImportWithoutKernels) for f in sys.meta_path):
        sys.meta_path.insert(0, _ImportWithoutKernels(BNB_CPU_BACKEND))


class _ImportWithoutKernels(importlib.abc.MetaPathFinder):
    """Imports one module as if the ``kernels`` package were not installed; every other import,
    and ``kernels`` itself before and after, are untouched."""

    def __init__(self, module: str) -> None:
        self.module = module

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.module:
            return None
        # the spec the rest of sys.meta_path gives, with its loader wrapped
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader = _LoaderWithoutKernels(spec.loader)
                    return spec
        return None


class _LoaderWithoutKernels(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        absent = object()
        saved = sys.modules.get("kernels", absent)
        sys.modules["kernels"] = None  # type: ignore[assignment]  # `import kernels` -> ImportError
        try:
            self.inner.exec_module(module)
        finally:
            if saved is absent:
                del sys.modules["kernels"]
            else:
                sys.modules["kernels"] = saved  # type: ignore[assignment]
