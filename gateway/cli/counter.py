"""`kokin counter`: the certificate counters' revenue journal for financial accounting (財務会計)."""
from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.base import municipality_option, operation, resolve_municipality, session, today
from gateway.cli.recon import business_date
from reconciliation.counter_revenue import (
    DEFAULT_LAYOUT,
    export_day,
    export_next,
    municipality_id_of,
    written_after_sending,
)
from reconciliation.counter_revenue import resend as resend_file
from reconciliation.outbound import write_export


@click.group("counter")
def counter() -> None:
    """The certificate counters: their daily revenue journal (per fee item, fund and tender)."""


@counter.command("revenue")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write; its sha256sum line goes to FILE.sha256")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD",
              help="review the journal of one business date (Asia/Tokyo) instead; nothing is marked sent")
@click.option("--resend", type=click.IntRange(min=1), default=None, metavar="SEQ",
              help="write file SEQ again, byte for byte as it was sent")
@click.option("--layout", default=DEFAULT_LAYOUT, show_default=True,
              help="counter-revenue-csv or a .toml layout file (not with --resend: a file keeps its own)")
@municipality_option
@operation
def counter_revenue(out: Path, day: str | None, resend: int | None, layout: str,
                    municipality_code: str | None) -> None:
    """Write the next counter revenue file: every closed business day not sent yet, up to yesterday.

    With no new line it says so and writes no file. --resend SEQ writes a sent file again;
    --date D writes one business date's journal for review, outside the sequence.
    """
    if day is not None and resend is not None:
        raise click.ClickException("--date and --resend do not go together")
    code = resolve_municipality(municipality_code)
    if resend is not None:
        result = resend_file(session(), code, resend)
        sidecar = write_export(result, out)
        click.echo(f"{out}: counter revenue file {result.sequence} written again ({result.count:,} lines, net "
                   f"{result.total:,} yen, layout {result.layout})")
    elif day is not None:
        on = business_date(day)
        if on >= today():
            click.echo(f"warning: {on} is not over yet; sales and voids later that day are not in the file", err=True)
        result = export_day(session(), code, on, layout)
        sidecar = write_export(result, out)
        click.echo(f"{out}: {result.count:,} lines of {on} for review, net {result.total:,} yen "
                   f"(municipality {code}, layout {result.layout}); nothing marked sent")
    else:
        found = export_next(session(), code, layout, actor="cli")
        if found is None:
            click.echo(f"no counter revenue of closed days to send for municipality {code}; no file written")
            _warn_late(code)
            return
        result = found
        sidecar = write_export(result, out)
        click.echo(f"{out}: counter revenue file {result.sequence}, {result.count:,} lines, net {result.total:,} yen "
                   f"(municipality {code}, layout {result.layout})")
    click.echo(f"sha256 {result.sha256} (in {sidecar.name})")
    _warn_late(code)


def _warn_late(code: str) -> None:
    for sequence, day, amount in written_after_sending(session(), municipality_id_of(session(), code)):
        click.echo(f"warning: {amount:,} yen of {day} were recorded after file {sequence} covering that day was "
                   "sent; they are in no file: book them by hand", err=True)
