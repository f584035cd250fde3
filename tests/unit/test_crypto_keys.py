"""DataCipher: which key wrote a token, found without a key id."""
from __future__ import annotations

from cryptography.fernet import Fernet

from gateway.crypto import DataCipher


def test_a_token_is_current_only_when_the_newest_key_made_it() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    rotating = DataCipher([new, old])
    old_token = DataCipher([old]).encrypt("墨田　花子")
    new_token = rotating.encrypt("墨田　花子")

    assert rotating.is_current(new_token) and not rotating.is_current(old_token)
    assert rotating.is_current(rotating.rotate(old_token))
    tampered = new_token[:-3] + (b"AAA" if new_token[-3:] != b"AAA" else b"BBB")
    assert not rotating.is_current(tampered)
    assert not rotating.is_current(b"not a token") and not rotating.is_current(b"")
