"""`kokin demo`: the main job end to end on the embedded default."""
from __future__ import annotations

import secrets
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from flask import current_app
from sqlalchemy import select

from domain.calendar import TOKYO
from domain.fiscal import fiscal_year_of
from gateway import migrate
from gateway.cli.base import ClickProgress, cipher, database, operation, serve_app, session
from gateway.cli.demo_guide import DEMO_STAFF, payable_slip_token, try_this
from gateway.cli.demo_month import play_month
from gateway.cli.demo_payments import pay_some_slips
from gateway.models import AgencyImport, Municipality, Sale, Slip, StaffUser
from gateway.sandbox.agency import ANOMALY_KINDS, plan_store_payments, run_agency_sandbox
from gateway.sandbox.eltax import plan_eltax_payments, run_eltax_sandbox
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.apikeys import READ_ONLY, create_api_key
from gateway.services.counters import counter_terminals
from gateway.services.ledger_import import import_ledger
from gateway.services.printing import render_pdf
from gateway.services.reference import seed_reference_data
from gateway.services.sales import BRANDS, SaleLineRequest, daily_close, follow_sale, sale_attempt, start_sale
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from gateway.services.staff_wards import grant_ward
from reconciliation.balance import balance, balance_text
from reconciliation.receipts import DEFAULT_LAYOUT, export_next, write_atomically, write_export
from reconciliation.run import reconcile_day, summary_csv, summary_json

SAMPLE_PAGES = 12


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


@click.command("demo")
@click.option("--payers", default=10_000, show_default=True, help="size of the synthetic ward")
@click.option("--serve/--no-serve", default=None,
              help="serve the pages and the API afterwards until Ctrl-C (default: when run on a terminal)")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--days", type=click.IntRange(1, 92), default=None,
              help="play the last DAYS days of a ward day by day instead (an empty ward: a new database)")
@operation
def demo(payers: int, serve: bool | None, port: int, days: int | None) -> None:
    """Build a sandbox ward, run a year of its money through every channel, then serve it.

    With --days, play the days that ended yesterday one by one on the gateway's clock: every
    channel, the core system's feeds, deposits, the counter and the nightly jobs.
    """
    app = current_app
    if days is not None:
        play_month(days, payers)
        _serve_or_not(serve, port)
        return
    fiscal_year = fiscal_year_of(datetime.now(TOKYO).date())  # this year's slips: payable today
    db_session = session()
    progress = ClickProgress()
    outdir = Path(app.instance_path) / "demo"
    outdir.mkdir(parents=True, exist_ok=True)
    code = str(app.config["MUNICIPALITIES"][0]["code"])

    _step("schema and reference data")
    migrate.upgrade(database().engine, payer_ref_key=cipher().payer_ref_key)
    seed_reference_data(db_session, app.config["MUNICIPALITIES"])

    _step(f"synthetic ward {code}: {payers:,} payers, fiscal year {fiscal_year}")
    rows = list(ward_rows(code, fiscal_year, payers))
    ledger = outdir / f"ledger-{fiscal_year}.csv"
    ledger.write_bytes(ledger_file_bytes(rows, "kokin-csv", date(fiscal_year, 4, 1)))
    click.echo(f"wrote {ledger} ({len(rows):,} instalments, {sum(int(str(r['amount'])) for r in rows):,} yen)")
    _import(db_session, ledger, "kokin-csv", progress)

    _step("issue the year's slips")
    result = issue_slips(db_session, code, fiscal_year=fiscal_year, progress=progress)
    click.echo(f"issued {result.issued:,} slips ({result.without_barcode:,} above 300,000 yen, without barcode)")

    _step("amendments from the core system (fixed-width cp932 layout): void and reissue")
    amended = [dict(row, amount=int(str(row["amount"])) + 1_000) for row in rows[:3]]
    amendments = outdir / f"amendments-{fiscal_year}.dat"
    amendments.write_bytes(ledger_file_bytes(amended, "kokin-fixed", date(fiscal_year, 7, 1)))
    _import(db_session, amendments, "kokin-fixed", progress)
    reissued = issue_slips(db_session, code, fiscal_year=fiscal_year, progress=progress)
    click.echo(f"reissued {reissued.reissued:,} slips")

    _step("sample PDF")
    sample = outdir / "sample-slips.pdf"
    with sample.open("wb") as out:
        ward = int(db_session.scalar(select(Municipality.id).where(Municipality.code == code)) or 0)
        pages = render_pdf(db_session, cipher(), ward, _sample_ids(db_session, ward), out, progress=progress)
    click.echo(f"wrote {sample} ({pages} pages)")

    _step("residents pay online: card and PayPay (sandbox simulators, signed webhooks)")
    pay_some_slips(db_session, int(db_session.scalar(select(Municipality.id).where(Municipality.code == code)) or 0))

    _step("residents pay in apps and at stores: collection-agency files (速報, 確報, 取消, remittances)")
    _agency_payments(db_session, code, outdir / "agency", progress)

    _step("residents pay with the eL番号 through eLTAX: payment data, remittances from 地方税共同機構")
    _eltax_payments(db_session, code, outdir / "eltax")

    _step("certificate counter: fees by e-money on the simulated Square terminal, daily close")
    password = _counter_sales(db_session, code)
    if password is not None:
        _other_wards_staff(db_session, app.config["MUNICIPALITIES"][1:], password)

    _step("nightly reconciliation of today: every channel, exceptions, the receipts file")
    _reconcile_today(db_session, code)

    for ward in app.config["MUNICIPALITIES"][1:]:
        _step(f"another ward served by the same deployment: {ward['code']} ({ward['name']}), its own books")
        _another_ward(db_session, ward, fiscal_year, max(payers // 20, 20), outdir, progress)

    _step("API")
    key = create_api_key(db_session, "demo", code, actor="demo", scopes=(*READ_ONLY, "personal-data:read"))
    number = db_session.scalar(select(Slip.number).order_by(Slip.id).limit(1))
    base = f"http://127.0.0.1:{port}"
    click.echo(f"API key (demo): {key}")
    click.echo(f"  curl -H 'Authorization: Bearer {key}' {base}/api/v1/slips/{number}")
    click.echo(f"  curl -H 'Authorization: Bearer {key}' {base}/api/v1/slips/{number}/pdf -o slip.pdf")
    click.echo(f"  OpenAPI: {base}/api/v1/openapi.json")

    _step("try this")
    click.echo(try_this(base, password, payable_slip_token(db_session, code)))
    _serve_or_not(serve, port)


def _serve_or_not(serve: bool | None, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    if serve if serve is not None else sys.stdin.isatty() and sys.stdout.isatty():
        _step(f"serving on {base} (Ctrl-C to stop)")
        serve_app(port)
    else:
        click.echo(f"not serving: `kokin serve{'' if port == 5000 else f' --port {port}'}` serves on {base}")


def _import(session, path: Path, layout: str, progress: ClickProgress) -> None:  # type: ignore[no-untyped-def]
    result = import_ledger(session, cipher(), path.read_bytes(), filename=path.name, layout_name=layout,
                           progress=progress)
    if result.already_imported:
        click.echo(f"{path.name}: already imported; nothing changed")
    else:
        click.echo(f"{path.name}: {result.created:,} new, {result.amended:,} amended, "
                   f"{result.voided_slips:,} slips voided")


def _agency_payments(session, code: str, folder: Path, progress: ClickProgress) -> None:  # type: ignore[no-untyped-def]
    """A quarter of the slips due by today paid through the agency, one anomaly of each kind planted."""
    if session.scalar(select(AgencyImport.id).where(AgencyImport.source == "sandbox").limit(1)) is not None:
        click.echo("agency payments were simulated by an earlier run; nothing changed")
        return
    folder.mkdir(parents=True, exist_ok=True)
    agencies = current_app.extensions["kokin.agencies"]
    for name, share, anomalies in (("agency-fixed120", 0.25, {kind: 1 for kind in ANOMALY_KINDS}),
                                   ("agency-csv", 0.02, {})):
        if name not in agencies:
            continue
        plan = plan_store_payments(session, code, share=share, anomalies=anomalies, until=date.today())
        outcome = run_agency_sandbox(session, agencies[name], code, plan, save_to=folder, progress=progress)
        click.echo(f"{name}: {outcome.files:,} files, {outcome.records:,} records, {outcome.booked:,} payments "
                   f"booked, {outcome.deposits:,} deposits recorded")
        for kind, count in sorted(outcome.exceptions.items()):
            click.echo(f"  exception {kind}: {count:,}")
    click.echo(f"agency files kept in {folder}; `kokin agency remittances` compares expected and received")


def _eltax_payments(session, code: str, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """A few instalments paid through eLTAX, one anomaly of each kind the channel shows planted."""
    adapter = current_app.extensions["kokin.agencies"].get("eltax-csv")
    if adapter is None:
        return
    if session.scalar(select(AgencyImport.id).where(AgencyImport.adapter == adapter.name,
                                                    AgencyImport.source == "sandbox").limit(1)) is not None:
        click.echo("eLTAX payments were simulated by an earlier run; nothing changed")
        return
    folder.mkdir(parents=True, exist_ok=True)
    payments = plan_eltax_payments(session, code, count=20, until=date.today())
    outcome = run_eltax_sandbox(session, adapter, code, payments, save_to=folder)
    click.echo(f"{adapter.name}: {outcome.files:,} files, {outcome.payments:,} payments, {outcome.booked:,} booked, "
               f"{outcome.deposits:,} remittances recorded")
    for kind, count in sorted(outcome.exceptions.items()):
        click.echo(f"  exception {kind}: {count:,}")


def _another_ward(session, ward: dict[str, Any], fiscal_year: int, payers: int, outdir: Path,  # type: ignore[no-untyped-def]
                  progress: ClickProgress) -> None:
    """A smaller ward's year in its own funds: its ledger, slips, a few online payments, its night."""
    code = str(ward["code"])
    funds = {str(fund["code"]) for fund in ward.get("funds", [])}
    rows = [row for row in ward_rows(code, fiscal_year, payers) if row["fund_code"] in funds]
    ledger = outdir / f"ledger-{code}-{fiscal_year}.csv"
    ledger.write_bytes(ledger_file_bytes(rows, "kokin-csv", date(fiscal_year, 4, 1)))
    click.echo(f"wrote {ledger} ({len(rows):,} instalments)")
    _import(session, ledger, "kokin-csv", progress)
    result = issue_slips(session, code, fiscal_year=fiscal_year, progress=progress)
    click.echo(f"issued {result.issued:,} slips")
    pay_some_slips(session, int(session.scalar(select(Municipality.id).where(Municipality.code == code)) or 0))
    _reconcile_today(session, code)


def _other_wards_staff(session, wards: list[dict[str, object]], password: str) -> None:  # type: ignore[no-untyped-def]
    """The other configured wards' accounting and administrator accounts: their screens show only their ward."""
    for ward in wards:
        names = [f"{ward['code']}-accounting", f"{ward['code']}-admin"]
        for name, role in zip(names, ("accounting", "administrator"), strict=True):
            create_user(session, str(ward["code"]), name, role, password, actor="demo")
        click.echo(f"ward {ward['code']} ({ward['name']}), served by the same deployment: staff accounts "
                   f"{', '.join(names)} (the same password); its screens show only its own ward")
        grant_ward(session, "demo-admin", str(ward["code"]), actor="demo")
        click.echo(f"demo-admin, the service's administrator, holds ward {ward['code']} too: the switcher in the "
                   "staff screens' header changes ward")


def _counter_sales(session, code: str) -> str | None:  # type: ignore[no-untyped-def]
    """Staff accounts, three sales at the resident counter (two paid, one cancelled), the daily close.

    Returns the staff accounts' password when this run made them.
    """
    if session.scalar(select(Sale.id).limit(1)) is not None:
        click.echo("counter sales were made by an earlier run; nothing changed")
        return None
    password = secrets.token_urlsafe(12)
    for name, role in DEMO_STAFF:
        create_user(session, code, name, role, password, counter_code="resident", actor="demo")
    click.echo(f"staff accounts {', '.join(n for n, _ in DEMO_STAFF)}; password (sandbox, shown once): {password}")
    clerk = session.scalar(select(StaffUser).where(StaffUser.username == "demo-clerk"))
    adapters = current_app.extensions["kokin.adapters"]
    square = adapters.get("square")
    if square is None or square.simulator is None:
        click.echo("no sandbox terminal adapter configured: counter sales skipped")
        return password
    _, terminals = counter_terminals(session, clerk.municipality_id, "resident")
    today = datetime.now(TOKYO).date()
    for lines, brand, device_action in (([("juminhyo", 2), ("inkan", 1)], "FELICA_ID", "complete"),
                                        ([("koseki-zenbu", 1)], "FELICA_TRANSPORTATION_GROUP", "cancel"),
                                        ([("juminhyo", 1)], "QR_CODE", "complete")):
        sale = start_sale(session, adapters, user=clerk, counter_code="resident", terminal_id=terminals[0].id,
                          lines=[SaleLineRequest(c, q) for c, q in lines], brand=brand, business_date=today)
        attempt = sale_attempt(session, sale.municipality_id, sale.id)
        if device_action == "complete":
            square.simulator.simulate_device(attempt.provider_ref, "start")
        square.simulator.simulate_device(attempt.provider_ref, device_action)
        sale = follow_sale(session, adapters, sale.municipality_id, sale.id)
        click.echo(f"sale {sale.receipt_number}: {sale.total:,} yen by {BRANDS[brand]} -> {sale.status}")
    close = daily_close(session, clerk.municipality_id, today,
                        {"square": square.settlement_report(today)})
    for device, figures in close.by_terminal.items():
        click.echo(f"daily close {today} {device}: {figures.get('sales', 0)} sales, {figures.get('amount', 0):,} yen; "
                   f"settlement report {figures.get('settled_amount', 0):,} yen; "
                   f"{'matched' if not close.differences else f'{len(close.differences)} difference(s)'}")
    return password


def _reconcile_today(session, code: str) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(TOKYO).date()
    summary = reconcile_day(session, code, today, adapters=current_app.extensions["kokin.adapters"],
                            agency_fees=current_app.config["AGENCY_FEES"])
    folder = Path(current_app.instance_path) / "recon" / code / today.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    files = {"summary.csv": summary_csv(summary), "summary.json": summary_json(summary)}
    for name, data in files.items():
        write_atomically(folder / name, data)
    written = list(files)
    receipts = export_next(session, code, DEFAULT_LAYOUT, actor="demo")
    if receipts is not None:
        out = folder / f"receipts-{receipts.sequence:06d}.csv"
        written += [out.name, write_export(receipts, out).name]
    click.echo(f"{today}: {summary.payments:,} payments, {summary.revenue:,} yen revenue, {summary.fees:,} yen "
               f"fees apart; open exceptions of the day: "
               + (", ".join(f"{k} {v}" for k, v in sorted(summary.open_exceptions.items())) or "none"))
    if receipts is None:
        click.echo("receipts feed: nothing new to send")
    else:
        click.echo(f"receipts file {receipts.sequence}: {receipts.count:,} records, net {receipts.total:,} yen, "
                   f"sha256 {receipts.sha256[:16]}...")
    click.echo(f"files in {folder}: {', '.join(written)}")
    report = balance(session, code)
    click.echo(balance_text(report))
    if report.difference or report.differences:
        raise click.ClickException("the receipts feed does not account for every yen (see above)")


def _sample_ids(session, ward: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The ward's first slips, its first reissue and its first slip without barcode."""
    issued = (Slip.municipality_id == ward) & (Slip.status == "issued")
    ids = list(session.scalars(select(Slip.id).where(issued).order_by(Slip.id).limit(SAMPLE_PAGES)))
    for condition in (Slip.reissue > 0, Slip.barcode.is_(None)):
        extra = session.scalar(select(Slip.id).where(condition, issued).order_by(Slip.id).limit(1))
        if extra is not None and extra not in ids:
            ids.append(extra)
    return ids
