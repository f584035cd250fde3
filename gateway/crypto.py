"""Personal data at rest: names encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with rotation,
payer references kept only as a keyed hash (HMAC-SHA256)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# A shorter key would be weaker than the hash it keys (RFC 2104, section 3: at least L = 32 bytes).
PAYER_REF_KEY_BYTES = 32


class UnreadableToken(RuntimeError):
    """A stored token that no configured key decrypts (the key that wrote it is missing)."""


class DataCipher:
    """Encrypt with the newest key, decrypt with any; `rotate` re-encrypts under the newest.

    Also keys the hash that stands for a payer reference (`payer_ref_hmac`): the core
    system's reference is only ever compared for equality, so its text is never stored.
    """

    def __init__(self, keys: list[bytes], *, payer_ref_key: bytes | None = None) -> None:
        if not keys:
            raise RuntimeError("no data encryption key configured")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._newest_signing_key = base64.urlsafe_b64decode(keys[0])[:16]
        self.key_count = len(keys)
        if payer_ref_key is not None and len(payer_ref_key) < PAYER_REF_KEY_BYTES:
            raise RuntimeError(f"the payer reference key is shorter than {PAYER_REF_KEY_BYTES} bytes")
        self.payer_ref_key = payer_ref_key

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken as exc:
            raise RuntimeError("personal data cannot be decrypted with the configured keys") from exc

    def is_current(self, token: bytes) -> bool:
        """Whether the newest key alone reads `token` (a Fernet token does not name its key).

        Only the token's HMAC is checked, as Fernet checks it before decrypting (Fernet spec,
        "Verification"): a valid one was made with this key. About 5 µs, where a full decrypt
        costs 25 (measured; README, "Keys").
        """
        try:
            data = base64.urlsafe_b64decode(token)
        except (binascii.Error, ValueError):
            return False
        if len(data) < 1 + 8 + 16 + 16 + 32 or data[0] != 0x80:  # version, time, IV, a block, HMAC
            return False
        mac = hmac.new(self._newest_signing_key, data[:-32], hashlib.sha256).digest()
        return hmac.compare_digest(mac, data[-32:])

    def rotate(self, token: bytes) -> bytes:
        """Return `token` re-encrypted under the newest key; UnreadableToken if no key reads it."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise UnreadableToken("personal data cannot be decrypted with the configured keys") from exc

    def payer_ref_hmac(self, municipality_code: str, payer_ref: str) -> str:
        """Return the keyed hash (64 hex digits) stored for a municipality's payer reference.

        The municipality is part of the input: the same reference in two wards is two payers,
        and their hashes cannot be linked.
        """
        if self.payer_ref_key is None:
            raise RuntimeError("no payer reference key configured")
        return payer_ref_hmac(self.payer_ref_key, municipality_code, payer_ref)


def payer_ref_hmac(key: bytes, municipality_code: str, payer_ref: str) -> str:
    """HMAC-SHA256 of `municipality_code:payer_ref` (UTF-8) under `key`, in hex."""
    message = f"{municipality_code}:{payer_ref}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def load_cipher(env_name: str, instance_path: Path, *, sandbox: bool,
                payer_ref_env: str = "KOKIN_PAYER_REF_KEY") -> DataCipher:
    """Return the cipher from the env vars, or in sandbox mode from key files it creates.

    Production refuses to start without either key.
    """
    return DataCipher(_data_keys(env_name, instance_path, sandbox),
                      payer_ref_key=load_payer_ref_key(payer_ref_env, instance_path, sandbox=sandbox))


def _data_keys(env_name: str, instance_path: Path, sandbox: bool) -> list[bytes]:
    raw = os.environ.get(env_name, "").strip()
    if raw:
        return [key.strip().encode() for key in raw.split(",") if key.strip()]
    if not sandbox:
        raise RuntimeError(f"{env_name} is not set: production needs a data encryption key")
    key_file = _key_file(instance_path / "data-keys", Fernet.generate_key())
    return [line.strip() for line in key_file.read_bytes().splitlines() if line.strip()]


def load_payer_ref_key(env_name: str, instance_path: Path, *, sandbox: bool) -> bytes:
    """Return the payer reference key: the env var's text (UTF-8), or in sandbox mode a key file's."""
    raw = os.environ.get(env_name, "").strip()
    if not raw:
        if not sandbox:
            raise RuntimeError(f"{env_name} is not set: production needs a payer reference key "
                               f"({PAYER_REF_KEY_BYTES} bytes or more)")
        raw = _key_file(instance_path / "payer-ref-key", secrets.token_hex(32).encode()).read_text().strip()
    key = raw.encode("utf-8")
    if len(key) < PAYER_REF_KEY_BYTES:
        raise RuntimeError(f"{env_name} is shorter than {PAYER_REF_KEY_BYTES} bytes")
    return key


def _key_file(path: Path, new_key: bytes) -> Path:
    """The key file at `path`, created (owner-only) holding `new_key` if there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path
        with os.fdopen(fd, "wb") as handle:
            handle.write(new_key + b"\n")
    return path
