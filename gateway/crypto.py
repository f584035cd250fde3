"""Encryption of personal data at rest (Fernet: AES-128-CBC + HMAC-SHA256), with rotation."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DataCipher:
    """Encrypt with the newest key, decrypt with any; `rotate` re-encrypts under the newest."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise RuntimeError("no data encryption key configured")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken as exc:
            raise RuntimeError("personal data cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)


def load_cipher(env_name: str, instance_path: Path, *, sandbox: bool) -> DataCipher:
    """Return the cipher from the env var, or in sandbox mode from a key file it creates."""
    raw = os.environ.get(env_name, "").strip()
    if raw:
        return DataCipher([key.strip().encode() for key in raw.split(",") if key.strip()])
    if not sandbox:
        raise RuntimeError(f"{env_name} is not set: production needs a data encryption key")
    key_file = instance_path / "data-keys"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key() + b"\n")
    keys = [line.strip() for line in key_file.read_bytes().splitlines() if line.strip()]
    return DataCipher(keys)
