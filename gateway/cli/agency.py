"""`kokin agency ...`: collection-agency files (速報/確報/取消), pulls, deposits, checks."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from flask import current_app

from adapters.agency import AgencyAdapter
from adapters.base import RetryableError
from adapters.eltax import EltaxAdapter
from domain.calendar import TOKYO
from gateway.cli.base import ClickProgress, municipality_option, operation, resolve_municipality, session, today
from gateway.db import utcnow
from gateway.layouts import load_layout
from gateway.services.agency_checks import (
    check_agency_data,
    expected_remittances,
    import_bank_statement,
    import_deposits,
    record_deposit,
)
from gateway.services.agency_import import AgencyImportResult, import_agency_file


@click.group("agency")
def agency() -> None:
    """Collection agencies: store and app payments of the slip barcode."""


def _agency(name: str) -> AgencyAdapter | EltaxAdapter:
    agencies: dict[str, AgencyAdapter | EltaxAdapter] = current_app.extensions["kokin.agencies"]
    if name not in agencies:
        raise click.ClickException(f"agency adapter {name!r} is not configured; configured: "
                                   f"{', '.join(sorted(agencies)) or 'none'}")
    return agencies[name]


def _report(label: str, result: AgencyImportResult, *, eltax: bool = False) -> None:
    if result.already_imported:
        click.echo(f"{label}: already imported ({result.records:,} records); nothing changed")
        return
    if eltax:  # one record per payment: no 確報 or 取消, a remittance date that may come later
        click.echo(f"{label}: {result.records:,} payments, {result.total_amount:,} yen; {result.booked:,} booked, "
                   f"{result.confirmed:,} remittance dates learnt, {result.repeated:,} already applied by "
                   f"earlier files")
        for kind, count in sorted(result.exceptions.items()):
            click.echo(f"  exception {kind}: {count:,}")
        return
    click.echo(f"{label}: {result.records:,} records, {result.total_amount:,} yen; {result.booked:,} payments booked, "
               f"{result.confirmed:,} confirmed (確報), {result.cancelled:,} cancellations (取消), "
               f"{result.repeated:,} already applied by earlier files")
    for kind, count in sorted(result.exceptions.items()):
        click.echo(f"  exception {kind}: {count:,}")


@agency.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--adapter", "adapter_name", required=True,
              help="agency-fixed120, agency-csv, eltax-csv (eLTAX payment data) or a configured one")
@municipality_option
@operation
def agency_import(file: Path, adapter_name: str, municipality_code: str | None) -> None:
    """Validate the whole file, then apply it atomically; a file or record seen before applies once.

    `--adapter eltax-csv` imports eLTAX payment data (a configured eLTAX adapter, the same way).
    """
    code = resolve_municipality(municipality_code)
    adapter = _agency(adapter_name)
    result = import_agency_file(session(), adapter, file.read_bytes(), municipality_code=code,
                                filename=file.name, source="cli", actor="cli", progress=ClickProgress())
    _report(file.name, result, eltax=isinstance(adapter, EltaxAdapter))


@agency.command("pull")
@click.option("--adapter", "adapter_name", required=True)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="also keep the pulled file here")
@municipality_option
@operation
def agency_pull(adapter_name: str, save: Path | None, municipality_code: str | None) -> None:
    """Fetch the agency's newest file over HTTP and import it (safe to repeat)."""
    adapter = _agency(adapter_name)
    try:
        data = adapter.pull()
    except (RetryableError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if save is not None:
        save.write_bytes(data)
    code = resolve_municipality(municipality_code)
    name = f"{adapter_name}-pull-{utcnow().astimezone(TOKYO):%Y%m%d%H%M%S}.dat"
    _report(name, import_agency_file(session(), adapter, data, municipality_code=code, filename=name,
                                     source="pull", actor="cli", progress=ClickProgress()))


@agency.command("deposit")
@click.option("--adapter", "adapter_name", required=True)
@click.option("--date", "deposited_on", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--amount", required=True, type=click.IntRange(min=1), help="yen, as on the bank statement")
@click.option("--reference", required=True, help="the statement line's reference")
@click.option("--account", default=None, help="the bank account it arrived on, BBBB-SSS-T-NNNNNNN (bank, branch, "
                                              "deposit type, number)")
@municipality_option
@operation
def agency_deposit(adapter_name: str, deposited_on: datetime, amount: int, reference: str, account: str | None,
                   municipality_code: str | None) -> None:
    """Record a deposit (振込) from an agency as the bank statement shows it."""
    _agency(adapter_name)
    code = resolve_municipality(municipality_code)
    new = record_deposit(session(), code, adapter=adapter_name, deposited_on=deposited_on.date(), amount=amount,
                         reference=reference, entered_by="cli", account=account)
    click.echo(f"deposit {reference}: {amount:,} yen on {deposited_on:%Y-%m-%d} "
               + ("recorded" if new else "was recorded before; nothing changed"))


@agency.command("deposits")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layout", "layout_name", default="kokin-deposits", show_default=True,
              help="kokin-deposits (CSV: adapter,deposited_on,amount,reference), zengin-nyushukkin (the bank's "
                   "全銀協 入出金取引明細 file) or a .toml layout of either kind")
@municipality_option
@operation
def agency_deposits(file: Path, layout_name: str, municipality_code: str | None) -> None:
    """Import the deposits agencies made, from a bank statement file; deposits seen before are skipped.

    The whole file is checked first; any error names its line or record and field, and nothing
    is recorded. From a 全銀協 statement only deposits (入金) are recorded, on the account of
    their header; the remitter's half-width kana name says which agency (remitter_kana in the
    agency's settings). A deposit from no configured agency is recorded and raised.
    """
    layout = load_layout(layout_name)
    code = resolve_municipality(municipality_code)
    agencies: dict[str, AgencyAdapter] = current_app.extensions["kokin.agencies"]
    if "header" not in layout.records:
        new, known = import_deposits(session(), code, file.read_bytes(), agencies=agencies, entered_by="cli",
                                     layout=layout)
        click.echo(f"{file.name}: {new:,} deposits recorded, {known:,} recorded before")
        return
    remitters = {name: adapter.name for adapter in agencies.values() for name in adapter.remitter_kana}
    result = import_bank_statement(session(), code, file.read_bytes(), layout=layout, remitters=remitters,
                                   entered_by="cli")
    click.echo(f"{file.name}: {result.accounts:,} account(s), {result.deposits:,} deposits: {result.recorded:,} "
               f"recorded, {result.known:,} recorded before; {result.withdrawals:,} withdrawals (not recorded)")
    if result.unidentified:
        click.echo(f"  exception remittance_mismatch (remitter is no configured agency): {result.unidentified:,}")


@agency.command("check")
@click.option("--date", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None, help="default: today")
@municipality_option
@operation
def agency_check(as_of: datetime | None, municipality_code: str | None) -> None:
    """Raise overdue 確報 and remittance differences due by the date (each once)."""
    code = resolve_municipality(municipality_code)
    day = as_of.date() if as_of else today()
    raised = check_agency_data(session(), code, day, fees=current_app.config["AGENCY_FEES"])
    click.echo(f"checked agency data as of {day}: " + (", ".join(f"{k} {v:,}" for k, v in sorted(raised.items()))
                                                       or "no new exceptions"))


@agency.command("remittances")
@click.option("--adapter", "adapter_name", default=None)
@municipality_option
@operation
def agency_remittances(adapter_name: str | None, municipality_code: str | None) -> None:
    """Expected deposits per agency, bank account and planned date (from 確報 data) against what arrived."""
    code = resolve_municipality(municipality_code)
    rows = expected_remittances(session(), code, adapter=adapter_name)
    click.echo(f"{'agency':<18} {'account':<18} {'date':<10} {'payments':>9} {'expected':>14} {'received':>14} "
               f"{'difference':>12}")
    for r in rows:
        differs = "  <- differs" if r.difference else ""
        click.echo(f"{r.adapter:<18} {r.account or '-':<18} {r.remittance_on:%Y-%m-%d} {r.payments:>9,} "
                   f"{r.expected:>14,} {r.received:>14,} {r.difference:>12,}{differs}")
