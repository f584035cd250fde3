"""How the SDK's requests reach the simulator: a `stripe.HTTPClient` that never opens a socket.

The SDK builds the same URL, headers and form body as in production and hands them to
`request()`; we decode Stripe's bracketed form encoding (`line_items[0][price_data][currency]`)
back into nested dicts and lists and let the simulator answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import stripe

if TYPE_CHECKING:
    from adapters.stripe.simulator import StripeSimulator


class SimulatorHTTPClient(stripe.HTTPClient):
    """Route the SDK's HTTP requests to a StripeSimulator in this process."""

    name = "kokin-stripe-simulator"

    def __init__(self, simulator: StripeSimulator) -> None:
        super().__init__()
        self._simulator = simulator

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        parts = urlsplit(url)
        query = decode_form(parts.query)
        body = decode_form(post_data.decode() if isinstance(post_data, bytes) else post_data or "")
        status, response_headers, payload = self._simulator.handle(
            method.upper(), parts.path, {**query, **body}, dict(headers or {})
        )
        return payload, status, response_headers

    def close(self) -> None:
        """Nothing to close: no connections are ever opened."""


def decode_form(encoded: str) -> dict[str, Any]:
    """Decode Stripe's form encoding into nested dicts; keys `0`, `1`, ... become lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        path = key.replace("]", "").split("[")
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _lists(root)


def _lists(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _lists(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        out[key] = value
    return out
