"""Build a SquareAdapter from configuration: production client or in-process sandbox."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests

from adapters.settings import credentials, sandbox_credentials, sandbox_mode, timeout
from adapters.square.adapter import PAYMENT_TYPES, SquareAdapter
from adapters.square.client import (
    DEFAULT_SQUARE_VERSION,
    DEFAULT_TIMEOUT,
    PRODUCTION_BASE_URL,
    SANDBOX_BASE_URL,
    SquareClient,
)
from adapters.square.simulator import SquareSimulator

_SECRET_KEYS = ("access_token", "signature_key", "notification_url")
_SANDBOX_DEFAULTS = {**sandbox_credentials({"access_token": "sandbox-access-token",
                                             "signature_key": "sandbox-signature-key"}),
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
    sandbox = sandbox_mode("square", config)
    settings = credentials("square", config, _SECRET_KEYS, sandbox_defaults=_SANDBOX_DEFAULTS if sandbox else None)
    base_url = str(config.get("api_base") or (SANDBOX_BASE_URL if sandbox else PRODUCTION_BASE_URL))
    version = str(config.get("square_version") or DEFAULT_SQUARE_VERSION)
    if not _VERSION.fullmatch(version):
        raise ValueError("square: square_version must be a date, YYYY-MM-DD")
    wait = timeout("square", config.get("timeout"), DEFAULT_TIMEOUT)
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
                          session=session, timeout=wait)
    return SquareAdapter(client, signature_key=settings["signature_key"],
                         notification_url=settings["notification_url"], device_id=device_id,
                         payment_type=payment_type, simulator=simulator)

