"""Resident-facing pages: pay one slip by card or PayPay from the link printed on it (/pay/<token>).

The token URL may be shared, so these pages show no personal data, not even the payer's name.
"""
from __future__ import annotations

from gateway.public import errors
from gateway.public.views import bp

# Errors the views do not answer themselves get the pages' own HTML, once the pages are registered.
bp.record_once(lambda state: errors.register(state.app))  # type: ignore[arg-type]  # a Flask app

__all__ = ["bp"]
