"""How requests reach the simulator: the shared transport's call, Stripe's form encoding decoded.

The SDK sends parameters form-encoded with brackets (`line_items[0][price_data][currency]=jpy`);
the simulator takes them back as the nested dicts and lists of Stripe's documented parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from adapters.transport import Reply

if TYPE_CHECKING:
    from adapters.stripe.simulator import StripeSimulator


class Wire:
    """The simulator as adapters/transport.py calls it: form-encoded bytes in, Stripe's reply out."""

    def __init__(self, simulator: StripeSimulator) -> None:
        self._simulator = simulator

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path, _, query = path.partition("?")
        params = {**decode_form(query), **decode_form(body.decode("utf-8"))}
        status, reply_headers, text = self._simulator.handle(method.upper(), path, params, headers)
        return Reply(status, text, dict(reply_headers))


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
