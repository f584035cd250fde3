"""`kokin recon`: reconciliation of business dates and the receipts file for the core system."""
from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import click

from gateway.cli.base import municipality_option, operation, resolve_municipality, session
from reconciliation.receipts import DEFAULT_LAYOUT, TOKYO, export_receipts, write_export

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@click.group("recon")
def recon() -> None:
    """Reconciliation of business dates (Asia/Tokyo) and the receipts file (消込データ)."""


def business_date(value: str) -> date:
    """Return the --date value as a date; a one-line failure unless it is exactly YYYY-MM-DD."""
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise click.ClickException(f"--date must be a date YYYY-MM-DD, got {value!r}") from None


@recon.command("export")
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", help="business date (Asia/Tokyo)")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write; its sha256sum line goes to FILE.sha256")
@click.option("--layout", default=DEFAULT_LAYOUT, show_default=True,
              help="receipts-fixed, receipts-csv or a .toml layout file")
@municipality_option
@operation
def recon_export(day: str, out: Path, layout: str, municipality_code: str | None) -> None:
    """Write one business date's receipts for the core system; a rerun writes the same bytes."""
    on = business_date(day)
    code = resolve_municipality(municipality_code)
    if on >= datetime.now(TOKYO).date():
        click.echo(f"warning: {on} is not over yet; payments accepted later that day are not in the file",
                   err=True)
    result = export_receipts(session(), code, on, layout)
    sidecar = write_export(result, out)
    click.echo(f"{out}: {result.count:,} receipts of {on}, {result.total:,} yen "
               f"(municipality {code}, layout {result.layout})")
    click.echo(f"sha256 {result.sha256} (in {sidecar.name})")
