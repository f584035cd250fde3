"""Square Terminal API adapter (e-money at the certificate counter).

client (our thin HTTP client on `requests`), adapter (translation to adapters.base),
factory (make_adapter from settings), simulator (an in-process Square account with
Terminals, for sandbox mode, tests and the demo).
"""
from __future__ import annotations

from adapters.square.adapter import PAYMENT_TYPES, SIGNATURE_HEADER, SquareAdapter
from adapters.square.client import SquareClient, SquarePermanentError, SquareRetryableError
from adapters.square.factory import make_adapter
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
