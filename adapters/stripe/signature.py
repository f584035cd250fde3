"""Stripe's webhook signature scheme, checked against a given `now` instead of the wall clock.

Stripe signs the bytes `<t>.<raw body>` with HMAC-SHA256 under the endpoint's secret and
sends `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; while a secret is being
rolled it sends one v1 per valid secret (https://docs.stripe.com/webhooks#verify-manually).

We implement the documented algorithm rather than call `stripe.Webhook.construct_event`:
that reads the wall clock (untestable without freezing time) and refuses only timestamps
that are too old, not ones from the future.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from adapters.base import WEBHOOK_TOLERANCE_SECONDS, SignatureError, header_value

HEADER = "Stripe-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = WEBHOOK_TOLERANCE_SECONDS
_MAX_TIMESTAMP_DIGITS = 12  # a Unix time in seconds; refuses absurd values before int()


def compute_signature(body: bytes, secret: str, timestamp: int) -> str:
    """Return the hex HMAC-SHA256 Stripe puts in a v1 value for `body` sent at `timestamp`."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secrets: list[str] | str, timestamp: int) -> str:
    """Return a `Stripe-Signature` value signing `body` with each secret, as Stripe sends it."""
    keys = [secrets] if isinstance(secrets, str) else secrets
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={compute_signature(body, k, timestamp)}" for k in keys)])


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    """Raise SignatureError unless `body` carries a valid v1 signature made within 300 s of `now`.

    Works on the raw bytes, before anything is parsed; compares in constant time and accepts
    any one of several v1 values (secret rotation).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not secret:
        raise SignatureError("no webhook secret is configured")
    header = header_value(headers, HEADER)
    if header is None:
        raise SignatureError(f"no {HEADER} header")
    timestamp, candidates = _parse(header)
    expected = compute_signature(body, secret, timestamp).encode("ascii")
    if not any(hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates):
        raise SignatureError("no v1 signature matches the body and the endpoint secret")
    drift = abs(now.timestamp() - timestamp)
    if drift > TOLERANCE_SECONDS:
        raise SignatureError(f"signature timestamp is {drift:.0f} s from now (limit {TOLERANCE_SECONDS} s)")



def _parse(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            candidates.append(value)
    if len(timestamps) != 1:
        raise SignatureError(f"{HEADER} must carry exactly one timestamp")
    raw = timestamps[0]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_TIMESTAMP_DIGITS):
        raise SignatureError(f"{HEADER} timestamp is not a Unix time")
    if not candidates:
        raise SignatureError(f"{HEADER} carries no {SCHEME} signature")
    return int(raw), candidates
