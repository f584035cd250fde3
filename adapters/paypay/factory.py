"""Build a PayPayAdapter from configuration: production client or in-process sandbox."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from adapters.paypay.adapter import PayPayAdapter
from adapters.paypay.client import DEFAULT_TIMEOUT, PRODUCTION_BASE_URL, SANDBOX_BASE_URL, PayPayClient
from adapters.paypay.simulator import PayPaySimulator
from adapters.settings import credentials, sandbox_credentials, sandbox_mode, timeout

_SECRET_KEYS = ("api_key", "api_secret", "merchant_id", "webhook_token")
_SANDBOX_DEFAULTS = sandbox_credentials({"api_key": "sandbox-api-key", "api_secret": "sandbox-api-secret",
                                         "merchant_id": "sandbox-merchant", "webhook_token": "sandbox-webhook-token"})


def make_adapter(config: Mapping[str, Any]) -> PayPayAdapter:
    """Build the adapter from its settings (the `kokin.adapters` entry point `paypay`).

    Keys: `sandbox` (bool, required: true talks to an in-process PayPaySimulator, never the
    network), `api_key`, `api_secret`, `merchant_id`, `webhook_token` (all required when not
    sandbox), optional `base_url`, `timeout` (seconds, or [connect, read]) and
    `code_validity_secs` (default 600, None to omit).
    Raises ValueError for a missing or malformed setting, so start-up fails.
    """
    sandbox = sandbox_mode("paypay", config)
    settings = credentials("paypay", config, _SECRET_KEYS, sandbox_defaults=_SANDBOX_DEFAULTS if sandbox else None)
    base_url = str(config.get("base_url") or (SANDBOX_BASE_URL if sandbox else PRODUCTION_BASE_URL))
    validity = config.get("code_validity_secs", 600)
    if validity is not None and (isinstance(validity, bool) or not isinstance(validity, int) or validity < 60):
        raise ValueError("paypay: code_validity_secs must be an integer of at least 60, or null")
    session = requests.Session()
    simulator = None
    if sandbox:
        simulator = PayPaySimulator(api_key=settings["api_key"], api_secret=settings["api_secret"],
                                    merchant_id=settings["merchant_id"], webhook_token=settings["webhook_token"])
        simulator.mount(session, base_url)
    client = PayPayClient(base_url=base_url, api_key=settings["api_key"], api_secret=settings["api_secret"],
                          merchant_id=settings["merchant_id"], session=session,
                          timeout=timeout("paypay", config.get("timeout"), DEFAULT_TIMEOUT))
    return PayPayAdapter(client, webhook_token=settings["webhook_token"], code_validity_secs=validity,
                         simulator=simulator)
