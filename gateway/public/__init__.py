"""Resident-facing pages: pay one slip by card or PayPay from the link printed on it (/pay/<token>).

The token URL may be shared, so these pages show no personal data, not even the payer's name.
"""
from __future__ import annotations

from gateway.public.views import bp

__all__ = ["bp"]
