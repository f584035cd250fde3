"""Sandbox mode's provider pages (/sandbox): the consoles and the simulated hosted pages.

Registered only when a configured adapter is a sandbox simulator. A newcomer pays a slip by
hand: the pay page sends the browser to the simulated Stripe Checkout or shows a PayPay QR
code that opens the simulated app's page; submitting either makes the simulator pay (or
decline, or cancel) and delivers the provider's notification to the gateway's own
/webhooks/<adapter>, and /sandbox/ lists the simulators' objects and the deliveries.
"""
from __future__ import annotations

from flask import Flask

from gateway.sandbox.providers import attach_simulators


def init_sandbox(app: Flask) -> None:
    """Share the simulators' state through the database and serve their pages, in sandbox mode only."""
    if attach_simulators(app):
        from gateway.sandbox_pages.views import bp

        app.register_blueprint(bp)
