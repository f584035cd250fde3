"""`kokin audit verify`: walk the audit record's hash chains and name the first broken entry."""
from __future__ import annotations

import click

from gateway.cli.base import ClickProgress, operation, session
from gateway.services.audit import verify_chains


@click.group("audit")
def audit() -> None:
    """The tamper-evident audit record."""


@audit.command("verify")
@click.option("--municipality", "municipality_code", default=None, help="only this municipality's chain")
@operation
def audit_verify(municipality_code: str | None) -> None:
    """Recompute every chain; exit 1 naming the first broken entry of each broken chain."""
    reports = verify_chains(session(), municipality_code, progress=ClickProgress())
    broken = [r for r in reports if r.broken is not None]
    for report in reports:
        name = f"municipality {report.municipality_code}" if report.municipality_code else f"chain {report.chain}"
        if report.broken is None:
            click.echo(f"{name}: {report.checked:,} events, intact")
        else:
            click.echo(f"{name}: BROKEN at place {report.broken.seq}: {report.broken.reason} "
                       f"({report.checked:,} events before it verify)")
    if not reports:
        click.echo("no events recorded")
    if broken:
        raise SystemExit(1)
