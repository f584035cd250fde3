"""PayPay dynamic QR adapter.

client (signed HTTP on `requests`), adapter (translation to adapters.base), factory
(make_adapter from settings), simulator (an in-process PayPay for sandbox mode, tests and
the demo), settlement (the settlement report file).
"""
from __future__ import annotations

from adapters.paypay.adapter import WEBHOOK_TOKEN_HEADER, PayPayAdapter
from adapters.paypay.client import PayPayClient, PayPayPermanentError, PayPayRetryableError
from adapters.paypay.factory import make_adapter
from adapters.paypay.simulator import Delivery, PayPaySimulator

__all__ = [
    "WEBHOOK_TOKEN_HEADER",
    "Delivery",
    "PayPayAdapter",
    "PayPayClient",
    "PayPayPermanentError",
    "PayPayRetryableError",
    "PayPaySimulator",
    "make_adapter",
]
