"""Stripe Checkout adapter: client on the official SDK, translation, webhook signatures, simulator."""

from __future__ import annotations

from adapters.stripe.adapter import StripeAdapter, make_adapter
from adapters.stripe.simulator import StripeSimulator

__all__ = ["StripeAdapter", "StripeSimulator", "make_adapter"]
