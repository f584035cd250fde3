"""`kokin payments janitor`: settle what providers never notified, finish refunds left pending."""
from __future__ import annotations

import click
from flask import current_app

from gateway.cli.base import operation, session
from gateway.services.janitor import settle_stale_attempts
from gateway.services.refunds import resume_refunds


@click.group("payments")
def payments() -> None:
    """Online payments."""


@payments.command("janitor")
@click.option("--older-than", default=5, show_default=True, help="minutes an attempt or refund has been untouched")
@operation
def janitor(older_than: int) -> None:
    """Ask providers about attempts left pending or unknown and refunds left processing; record the answers."""
    from datetime import timedelta

    adapters = current_app.extensions["kokin.adapters"]
    results = settle_stale_attempts(session(), adapters, older_than=timedelta(minutes=older_than))
    results += resume_refunds(session(), adapters, older_than=timedelta(minutes=older_than))
    if not results:
        click.echo("no stale attempts or refunds")
    for result, count in sorted(results.items()):
        click.echo(f"{count:,} {result}")
