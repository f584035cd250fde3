"""Build a StripeAdapter from configuration: production client or in-process sandbox."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from adapters.settings import credentials, sandbox_credentials, sandbox_mode, timeout
from adapters.stripe.adapter import StripeAdapter
from adapters.stripe.client import (
    DEFAULT_MAX_NETWORK_RETRIES,
    DEFAULT_TIMEOUT,
    PRODUCTION_BASE_URL,
    SANDBOX_BASE_URL,
    StripeApi,
)
from adapters.stripe.simulator import SANDBOX_SECRET_KEY, SANDBOX_WEBHOOK_SECRET, StripeSimulator

_SECRET_KEYS = ("secret_key", "webhook_secret")
_SANDBOX_DEFAULTS = sandbox_credentials({"secret_key": SANDBOX_SECRET_KEY, "webhook_secret": SANDBOX_WEBHOOK_SECRET})


def make_adapter(config: Mapping[str, Any]) -> StripeAdapter:
    """Build the adapter from its settings (the `kokin.adapters` entry point `stripe`).

    Keys: `sandbox` (bool, or its text from the environment; default false: true talks only
    to an in-process StripeSimulator, reachable as `adapter.simulator`), `secret_key` and
    `webhook_secret` (required unless sandbox), optional `api_base`, `max_network_retries`
    and `timeout` (seconds, or [connect, read]). Raises ValueError for a missing or
    malformed setting, or a live key in sandbox mode, so start-up fails.
    """
    sandbox = sandbox_mode("stripe", config, from_text=True)
    settings = credentials("stripe", config, _SECRET_KEYS, sandbox_defaults=_SANDBOX_DEFAULTS if sandbox else None)
    base_url = str(config.get("api_base") or (SANDBOX_BASE_URL if sandbox else PRODUCTION_BASE_URL))
    retries = config.get("max_network_retries")
    wait = timeout("stripe", config.get("timeout"), DEFAULT_TIMEOUT)
    if not sandbox:
        api = StripeApi(settings["secret_key"], api_base=base_url, timeout=wait,
                        max_network_retries=DEFAULT_MAX_NETWORK_RETRIES if retries is None else int(retries))
        return StripeAdapter(api, settings["webhook_secret"])
    if settings["secret_key"].startswith(("sk_live_", "rk_live_")):
        raise ValueError("stripe: sandbox mode was given a live secret key")
    session = requests.Session()
    simulator = StripeSimulator(settings["webhook_secret"])
    simulator.mount(session, base_url)
    api = StripeApi(settings["secret_key"], api_base=base_url, session=session, timeout=wait,
                    max_network_retries=int(retries or 0))  # retry sleeps would only slow tests down
    return StripeAdapter(api, simulator.webhook_secret, simulator=simulator)
