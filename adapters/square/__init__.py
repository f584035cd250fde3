"""Square Terminal API adapter (e-money at the certificate counter).

client (our thin HTTP client on `requests`), adapter (translation to adapters.base),
simulator (an in-process Square account with Terminals, for sandbox mode, tests and the demo).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests

from adapters.square.adapter import PAYMENT_TYPES, SIGNATURE_HEADER, SquareAdapter
from adapters.square.client import (
    DEFAULT_SQUARE_VERSION,
    DEFAULT_TIMEOUT,
    PRODUCTION_BASE_URL,
    SANDBOX_BASE_URL,
    SquareClient,
    SquarePermanentError,
    SquareRetryableError,
)
from adapters.square.simulator import SquareSimulator

__all__ = [
    "PAYMENT_TYPES",
    "SIGNATURE_HEADER",
    "SquareAdapter",
    "SquareClient",
    "SquarePermanentError",
    "SquareRetryableError",
    "SquareSimulator",
    "make_adapter",
]

_SECRET_KEYS = ("access_token", "signature_key", "notification_url")
_SANDBOX_DEFAULTS = {"access_token": "sandbox-access-token", "signature_key": "sandbox-signature-key",
                     "notification_url": "http://127.0.0.1:5000/webhooks/square"}
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")


def make_adapter(config: Mapping[str, Any]) -> SquareAdapter:
    """Build the adapter from its settings (the `kokin.adapters` entry point `square`).

    Keys: `sandbox` (bool, required: true talks to an in-process SquareSimulator, never the
    network), `access_token`, `signature_key` and `notification_url` (the URL registered for
    the webhook subscription, byte for byte: it is signed; all three required when not
    sandbox), optional `api_base`, `square_version` (default 2025-10-16), `timeout` (seconds,
    or [connect, read]) and, for a one-terminal setup, `device_id` / `payment_type` used when
    a checkout request names none. Raises ValueError for a missing or malformed setting.
    """
    sandbox = config.get("sandbox")
    if not isinstance(sandbox, bool):
        raise ValueError("square: set `sandbox` to true or false explicitly")
    settings = dict(_SANDBOX_DEFAULTS) if sandbox else {}
    settings.update({key: config[key] for key in _SECRET_KEYS if config.get(key) is not None})
    missing = [key for key in _SECRET_KEYS if not isinstance(settings.get(key), str) or not settings[key]]
    if missing:
        raise ValueError(f"square: missing settings: {', '.join(missing)}")
    base_url = str(config.get("api_base") or (SANDBOX_BASE_URL if sandbox else PRODUCTION_BASE_URL))
    version = str(config.get("square_version") or DEFAULT_SQUARE_VERSION)
    if not _VERSION.fullmatch(version):
        raise ValueError("square: square_version must be a date, YYYY-MM-DD")
    timeout = _timeout(config.get("timeout"))
    device_id, payment_type = config.get("device_id"), config.get("payment_type")
    if device_id is not None and (not isinstance(device_id, str) or not device_id):
        raise ValueError("square: device_id must be a non-empty string")
    if payment_type is not None and payment_type not in PAYMENT_TYPES:
        raise ValueError(f"square: payment_type must be one of {', '.join(sorted(PAYMENT_TYPES))}")
    session = requests.Session()
    simulator = None
    if sandbox:
        simulator = SquareSimulator(access_token=settings["access_token"], signature_key=settings["signature_key"],
                                    notification_url=settings["notification_url"])
        simulator.mount(session, base_url)
    client = SquareClient(base_url=base_url, access_token=settings["access_token"], square_version=version,
                          session=session, timeout=timeout)
    return SquareAdapter(client, signature_key=settings["signature_key"],
                         notification_url=settings["notification_url"], device_id=device_id,
                         payment_type=payment_type, simulator=simulator)


def _timeout(value: Any) -> float | tuple[float, float]:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if (isinstance(value, list | tuple) and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)):
        return float(value[0]), float(value[1])
    raise ValueError("square: timeout must be a positive number of seconds or [connect, read]")
