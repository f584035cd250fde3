"""`kokin payments janitor`: settle what providers never notified."""
from __future__ import annotations

import click
from flask import current_app

from gateway.cli.base import operation, session
from gateway.services.janitor import settle_stale_attempts


@click.group("payments")
def payments() -> None:
    """Online payments."""


@payments.command("janitor")
@click.option("--older-than", default=5, show_default=True, help="minutes an attempt has been untouched")
@operation
def janitor(older_than: int) -> None:
    """Ask providers about attempts left pending or unknown, and record what they say."""
    from datetime import timedelta

    results = settle_stale_attempts(session(), current_app.extensions["kokin.adapters"],
                                    older_than=timedelta(minutes=older_than))
    if not results:
        click.echo("no stale attempts")
    for result, count in sorted(results.items()):
        click.echo(f"{count:,} {result}")
