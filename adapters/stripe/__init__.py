"""Stripe Checkout adapter (card payments on Stripe's hosted page).

client (the official SDK, errors translated), adapter (translation to adapters.base),
factory (make_adapter from settings), simulator (an in-process Stripe account for sandbox
mode, tests and the demo), signature (webhook signatures, as Stripe signs them).
"""

from __future__ import annotations

from adapters.stripe.adapter import StripeAdapter
from adapters.stripe.client import StripeApi
from adapters.stripe.factory import make_adapter
from adapters.stripe.simulator import StripeSimulator

__all__ = ["StripeAdapter", "StripeApi", "StripeSimulator", "make_adapter"]
