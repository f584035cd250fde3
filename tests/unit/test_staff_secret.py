"""The staff screens need a secret to sign sessions: production refuses to start without one."""
from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gateway import create_app


@pytest.fixture(autouse=True)
def payer_ref_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", "a-payer-reference-key-of-32-bytes-or-more")


def _production(tmp_path: Path) -> dict[str, object]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}", "INSTANCE_PATH": str(tmp_path), "SANDBOX": False,
            "ADAPTERS": {}, "AGENCIES": {}}


def test_production_without_kokin_secret_key_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", Fernet.generate_key().decode())
    monkeypatch.delenv("KOKIN_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="KOKIN_SECRET_KEY"):
        create_app(_production(tmp_path))
    assert not (tmp_path / "secret_key").exists()  # never made up in production


def test_production_signs_sessions_with_the_secret_from_the_environment(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("KOKIN_SECRET_KEY", "a-long-random-secret-from-the-vault")
    assert create_app(_production(tmp_path)).config["SECRET_KEY"] == "a-long-random-secret-from-the-vault"


def test_sandbox_keeps_one_secret_in_the_instance_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOKIN_SECRET_KEY", raising=False)
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}", "INSTANCE_PATH": str(tmp_path)}
    first, second = create_app(config), create_app(config)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] and len(first.config["SECRET_KEY"]) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_sessions_are_signed_by_one_serializer_per_key_and_a_rotated_key_is_honoured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("KOKIN_SECRET_KEY", "the-first-long-random-secret")
    app = create_app(_production(tmp_path))
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first  # built once, not per request
    cookie = first.dumps({"_user_id": "7"})

    app.config["SECRET_KEY_FALLBACKS"] = ["the-first-long-random-secret"]
    app.config["SECRET_KEY"] = app.secret_key = "the-second-long-random-secret"
    rotated = interface.get_signing_serializer(app)

    assert rotated is not first
    assert rotated.loads(cookie) == {"_user_id": "7"}  # the old key still verifies during rotation
    assert rotated.dumps({"a": 1}) != first.dumps({"a": 1})  # new cookies carry the new key
    app.config["SECRET_KEY_FALLBACKS"] = []
    with pytest.raises(Exception, match="[Ss]ignature"):
        interface.get_signing_serializer(app).loads(cookie)  # once the old key is retired, refused
