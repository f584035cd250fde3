"""`kokin ledger import`: assessments from the core system."""
from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.base import ClickProgress, cipher, operation, session
from gateway.services.ledger_import import import_ledger
from gateway.services.status_import import import_status_changes, is_status_feed


@click.group("ledger")
def ledger() -> None:
    """The ward ledger of assessments (調定)."""


@ledger.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layout", default="kokin-csv", show_default=True, help="layout name or a .toml layout file")
@operation
def ledger_import(file: Path, layout: str) -> None:
    """Validate the whole file, then apply it atomically; the same file twice changes nothing.

    Assessments (kokin-csv, kokin-fixed) or status changes (kokin-status-csv: paid elsewhere, cancelled).
    """
    if is_status_feed(layout):
        _import_status_changes(file, layout)
        return
    result = import_ledger(session(), cipher(), file.read_bytes(), filename=file.name,
                           layout_name=layout, progress=ClickProgress())
    if result.already_imported:
        click.echo(f"{file.name}: already imported ({result.records:,} records); nothing changed")
        return
    click.echo(f"{file.name}: {result.records:,} records, {result.total_amount:,} yen "
               f"({result.created:,} new, {result.amended:,} amended, {result.payer_updated:,} payer details updated, "
               f"{result.unchanged:,} unchanged; "
               f"{result.voided_slips:,} unpaid slips voided for reissue)")
    for line in result.amendments[:20]:
        click.echo(f"  amended {line}")


def _import_status_changes(file: Path, layout: str) -> None:
    result = import_status_changes(session(), file.read_bytes(), filename=file.name, layout_name=layout)
    if result.already_imported:
        click.echo(f"{file.name}: already imported ({result.records:,} status changes); nothing changed")
        return
    raised = ", ".join(f"{count:,} {kind}" for kind, count in sorted(result.raised.items())) or "none"
    click.echo(f"{file.name}: {result.records:,} status changes ({result.closed:,} instalments closed, "
               f"{result.changed:,} corrected, {result.unchanged:,} unchanged; {result.closed_slips:,} slips closed; "
               f"exceptions raised on payments already applied: {raised})")
