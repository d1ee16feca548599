"""The hub: the token comes from the environment, .env or `hf auth login`, and is never shown."""

from __future__ import annotations

import pytest
from conftest import set_offline

from qdlib import hub

PLANTED = "hf_PLANTEDsecret1234567890"


@pytest.fixture
def no_token(tmp_path, monkeypatch):
    """No token anywhere: environment, project .env, the hub's login file."""
    for name in hub.TOKEN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-login"))
    return tmp_path


def test_a_logged_in_user_pushes_with_the_saved_token(no_token, monkeypatch):
    """`hf auth login` saved a token: qdlib finds it (it used to skip the push)."""
    login = no_token / "login-token"
    login.write_text(PLANTED, encoding="utf-8")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(login))
    assert hub.hub_token() == PLANTED


def test_the_environment_then_dotenv_then_the_login(no_token, monkeypatch):
    login = no_token / "login-token"
    login.write_text("hf_fromlogin", encoding="utf-8")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(login))
    (no_token / ".env").write_text("# comment\nexport HF_TOKEN='hf_fromdotenv'\n", "utf-8")
    assert hub.hub_token() == "hf_fromdotenv"
    monkeypatch.setenv("HF_TOKEN", "hf_fromenv")
    assert hub.hub_token() == "hf_fromenv"


def test_push_without_a_token_fails_and_offline_is_skipped(no_token, monkeypatch):
    set_offline(monkeypatch, False)
    with pytest.raises(hub.PushError, match="no token"):
        hub.push_to_hub(no_token, "me/model")
    set_offline(monkeypatch, True)
    assert "skipped: offline" in hub.push_to_hub(no_token, "me/model")


def test_a_failed_push_raises_with_the_hubs_message_never_the_token(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    set_offline(monkeypatch, False)

    class FailingApi:
        def __init__(self, token):
            self.token = token

        def create_repo(self, *args, **kwargs):
            raise PermissionError(f"401 for token {self.token}")

    monkeypatch.setattr(hub, "HfApi", FailingApi)
    with pytest.raises(hub.PushError) as failed:
        hub.push_to_hub(tmp_path, "me/model")
    message = str(failed.value)
    assert "failed: PermissionError: 401" in message and PLANTED not in message and "***" in message
    assert PLANTED not in capsys.readouterr().out
