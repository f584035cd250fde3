"""`kokin recon`: reconciliation of business dates and the receipts file for the core system."""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import click
from flask import current_app

from gateway.cli.base import municipality_option, operation, resolve_municipality, session, today
from gateway.services.settlements import import_settlement_file
from reconciliation.balance import balance, balance_text
from reconciliation.receipts import DEFAULT_LAYOUT, export_next, export_receipts, write_atomically, write_export
from reconciliation.receipts import resend as resend_file
from reconciliation.run import reconcile_day, summary_csv, summary_json

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@click.group("recon")
def recon() -> None:
    """Reconciliation of business dates (Asia/Tokyo) and the receipts file (消込データ)."""


def business_date(value: str, option: str = "--date") -> date:
    """Return the option's value as a date; a one-line failure unless it is exactly YYYY-MM-DD."""
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise click.ClickException(f"{option} must be a date YYYY-MM-DD, got {value!r}") from None


@recon.command("export")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write; its sha256sum line goes to FILE.sha256")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD",
              help="review the records of one business date (Asia/Tokyo) instead; nothing is marked sent")
@click.option("--resend", type=click.IntRange(min=1), default=None, metavar="SEQ",
              help="write file SEQ again, byte for byte as it was sent")
@click.option("--layout", default=DEFAULT_LAYOUT, show_default=True,
              help="receipts-csv, receipts-fixed or a .toml layout file (not with --resend: a file keeps its own)")
@municipality_option
@operation
def recon_export(out: Path, day: str | None, resend: int | None, layout: str, municipality_code: str | None) -> None:
    """Write the next receipts file: every record not sent yet, numbered in sequence.

    With nothing new it says so and writes no file. --resend SEQ writes a sent file again;
    --date D writes one business date's records for review, outside the sequence.
    """
    if day is not None and resend is not None:
        raise click.UsageError("--date and --resend do not go together")
    code = resolve_municipality(municipality_code)
    if resend is not None:
        result = resend_file(session(), code, resend)
        sidecar = write_export(result, out)
        click.echo(f"{out}: file {result.sequence} written again ({result.count:,} records, net {result.total:,} "
                   f"yen, layout {result.layout})")
    elif day is not None:
        on = business_date(day)
        if on >= today():
            click.echo(f"warning: {on} is not over yet; records written later that day are not in the file",
                       err=True)
        result = export_receipts(session(), code, on, layout)
        sidecar = write_export(result, out)
        click.echo(f"{out}: {result.count:,} records of {on} for review, net {result.total:,} yen "
                   f"(municipality {code}, layout {result.layout}); nothing marked sent")
    else:
        found = export_next(session(), code, layout, actor="cli")
        if found is None:
            click.echo(f"nothing new to send for municipality {code}; no file written")
            return
        result = found
        sidecar = write_export(result, out)
        click.echo(f"{out}: file {result.sequence}, {result.count:,} records, net {result.total:,} yen "
                   f"(municipality {code}, layout {result.layout})")
    click.echo(f"sha256 {result.sha256} (in {sidecar.name})")


@recon.command("balance")
@click.option("--from", "start", default=None, metavar="YYYY-MM-DD", help="first business date (default: the first)")
@click.option("--to", "end", default=None, metavar="YYYY-MM-DD", help="last business date (default: today)")
@municipality_option
@operation
def recon_balance(start: str | None, end: str | None, municipality_code: str | None) -> None:
    """Money accepted, cancelled and refunded per channel against the receipts records: every yen accounted for."""
    code = resolve_municipality(municipality_code)
    first = None if start is None else business_date(start, "--from")
    last = None if end is None else business_date(end, "--to")
    if first is not None and last is not None and first > last:
        raise click.UsageError(f"--from {first} is after --to {last}")
    report = balance(session(), code, first, last)
    click.echo(balance_text(report))
    if report.difference or report.differences:
        raise SystemExit(1)


@recon.command("run")
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", help="business date (Asia/Tokyo)")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the day's files go (default: the instance folder's recon/<municipality>/<date>)")
@municipality_option
@operation
def recon_run(day: str, out_dir: Path | None, municipality_code: str | None) -> None:
    """Reconcile a business date: exceptions once, the run recorded, its files written (same bytes on a rerun)."""
    on = business_date(day)
    code = resolve_municipality(municipality_code)
    if current_app.config["SANDBOX"] and current_app.config.get("SANDBOX_STATE") == "memory":
        click.echo("note: SANDBOX_STATE is memory: sandbox providers start empty in each process, so "
                   "payments made by another process show as missing_in_settlement", err=True)
    summary = reconcile_day(session(), code, on, adapters=current_app.extensions["kokin.adapters"],
                            agency_fees=current_app.config["AGENCY_FEES"])
    folder = out_dir or Path(current_app.instance_path) / "recon" / code / on.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    files = {"summary.csv": summary_csv(summary), "summary.json": summary_json(summary)}
    for name, data in files.items():
        write_atomically(folder / name, data)
    receipts = write_export(export_receipts(session(), code, on, DEFAULT_LAYOUT), folder / "receipts.csv")
    click.echo(f"{on}: {summary.payments:,} payments, {summary.revenue:,} yen revenue, {summary.fees:,} yen fees "
               f"apart (run {summary.runs})")
    for row in summary.by_channel:
        click.echo(f"  {row['channel']:<8} {row['count']:>7,} {row['amount']:>14,} yen")
    for row in summary.unapplied:
        click.echo(f"  {row['channel']:<8} {row['count']:>7,} {row['amount']:>14,} yen not revenue (double payments)")
    raised = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.raised.items())) or "none"
    click.echo(f"  new exceptions: {raised}; open for the date: {sum(summary.open_exceptions.values())}")
    for channel, how in sorted(summary.settlement.items()):
        click.echo(f"  settlement {channel}: {how}")
    click.echo(f"files in {folder}: " + ", ".join([*files, "receipts.csv", receipts.name]))


@recon.command("settlement")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--adapter", "adapter_name", required=True, help="paypay: the settlement report PayPay lets you download")
@municipality_option
@operation
def recon_settlement(file: Path, adapter_name: str, municipality_code: str | None) -> None:
    """Import a provider's settlement report (validated in full, each payment stored once)."""
    new, known = import_settlement_file(session(), resolve_municipality(municipality_code), adapter_name,
                                        file.read_bytes(), filename=file.name, actor="cli")
    click.echo(f"{file.name}: {new:,} settled payments stored, {known:,} stored before")
