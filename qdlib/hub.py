"""The Hugging Face hub: whether to use it, whose token, and uploads. The token is never printed.

A token is looked up where the hub's own tools look, plus the project's ``.env``: ``HF_TOKEN``
(or ``HUGGING_FACE_HUB_TOKEN``) in the environment, then ``.env`` in the project folder (the
checkout; for a qdlib installed from a wheel, :func:`qdlib.config.qdlib_home`), then
``huggingface_hub.get_token()`` (the token ``hf auth login`` saved, and the hub's other places).
"""

from __future__ import annotations

import os
from pathlib import Path

from httpx2 import HTTPError  # the hub's HTTP client: a network that fails
from huggingface_hub import HfApi, get_token, is_offline_mode
from huggingface_hub.errors import HfHubHTTPError

from qdlib.config import CHECKOUT, qdlib_home

PROJECT_ROOT = CHECKOUT  # the folder whose .env is read; None (installed): qdlib_home()'s
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def dotenv_token(path: Path | None = None) -> str | None:
    """``HF_TOKEN`` (or ``HUGGING_FACE_HUB_TOKEN``) from a ``.env`` file (the project's)."""
    path = path or (PROJECT_ROOT or qdlib_home()) / ".env"
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip().removeprefix("export ").strip() in TOKEN_VARIABLES and value.strip():
            return value.strip().strip("'\"")
    return None


def hub_token() -> str | None:
    """The token to use: the environment, the project's ``.env``, then the hub's own lookup."""
    from_environment = next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)
    return from_environment or dotenv_token() or get_token() or None


class PushError(RuntimeError):
    """An upload that was asked for and did not happen (no token, or the hub refused)."""


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Upload ``folder`` to a private hub repo and say where; offline (``HF_HUB_OFFLINE``), say
    that it was skipped. No token, or an error from the hub, raises :class:`PushError` with the
    hub's message. The token is never shown."""
    if is_offline_mode():
        return f"push to {repo_id} skipped: offline (HF_HUB_OFFLINE is set)."
    token = hub_token()
    if token is None:
        raise PushError(
            f"push to {repo_id}: no token. Log in with `hf auth login`, or set HF_TOKEN in the "
            "environment or in .env (never in a profile or a notebook)."
        )
    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, exist_ok=True, private=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    except (HfHubHTTPError, HTTPError, OSError, ValueError) as exc:  # refused, unreachable, bad id
        message = str(exc).replace(token, "***")
        raise PushError(f"push to {repo_id} failed: {type(exc).__name__}: {message}") from None
    return f"pushed {Path(folder).name} to https://huggingface.co/{repo_id} (private)."
