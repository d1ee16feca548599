"""Code that ships with a model folder runs only when the profile allows it.

A model folder or hub repository may name Python files of its own (``auto_map`` in its config);
``from_pretrained(..., trust_remote_code=True)`` imports and runs them, with your permissions.
qdlib keeps that off unless ``model.trust_remote_code: true``, and loads every model, config and
tokenizer through :func:`pretrained`, which never leaves the choice to a prompt on stdin.
"""

from __future__ import annotations

import warnings
from pathlib import Path
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
