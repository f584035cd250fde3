"""`kokin demo --days N`: a month of a ward played day by day on the gateway's clock.

The month is the N days that ended yesterday (Asia/Tokyo). Before it, the ward's ledger is
imported and the year's slips issued; then each day, in the order a real day has them:
08:30 the core system's status feed and amended assessments (void and reissue); 09:00 the
collection agency's and eLTAX's files of the day and the bank statement's remittances; from
10:00 residents' online payments; at the certificate counter, sales from 10:00 and the daily
close at 17:30 (business days only); 23:50 the janitor; and the next night the scheduler's jobs
(reconciliation, the receipts and counter revenue files, the agency checks) run through the
same guarded runs as in production. The clock never runs ahead of the wall clock.
"""
from __future__ import annotations

import random
import secrets
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.agency import AgencyAdapter
from adapters.eltax import EltaxAdapter
from domain import clock
from domain.calendar import business_date, is_business_day
from domain.fiscal import fiscal_year_of
from gateway import migrate
from gateway.cli.base import ClickProgress, cipher, database, session
from gateway.cli.demo_guide import DEMO_STAFF
from gateway.models import AgencyDeposit, Assessment, JobRun, OutboundFile, Payment, ReconException, Slip, StaffUser
from gateway.sandbox.month import (
    DayFigures,
    MonthPlan,
    agency_files,
    deposit_due,
    eltax_files,
    import_day_file,
    pay_online,
    plan_month,
    status_feed,
    tokyo,
)
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.scheduler.guard import run_job
from gateway.scheduler.jobs import JOBS
from gateway.services.counters import counter_terminals
from gateway.services.ledger_import import import_ledger
from gateway.services.payments import adapters_by_channel
from gateway.services.reference import get_municipality, seed_reference_data
from gateway.services.sales import (
    BRANDS,
    SaleLineRequest,
    daily_close,
    follow_sale,
    sale_attempt,
    start_sale,
    void_sale,
)
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from reconciliation.balance import balance, balance_text

NIGHT = (("reconciliation", 2, 0, 0), ("receipts-export", 6, 30, 1), ("counter-revenue-export", 6, 40, 0),
         ("agency-checks", 7, 0, 0))  # (job, hour, minute, business date = the day + this)
FEE_ITEMS = (("juminhyo", 6), ("inkan", 3), ("koseki-zenbu", 2), ("joseki", 1), ("koseki-kisai", 1))
SALES_A_DAY = (6, 14)


def play_month(days: int, payers: int) -> None:
    """Play the `days` days that ended yesterday for the first configured ward; print the month."""
    app = current_app
    code = str(app.config["MUNICIPALITIES"][0]["code"])
    last = business_date(clock.now()) - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    db_session = session()
    migrate.upgrade(database().engine, payer_ref_key=cipher().payer_ref_key)
    seed_reference_data(db_session, app.config["MUNICIPALITIES"])
    municipality = get_municipality(db_session, code)
    municipality_id = municipality.id
    if db_session.scalar(select(Slip.id).where(Slip.municipality_id == municipality.id).limit(1)) is not None:
        raise click.ClickException(
            f"ward {code} has slips already: a month is played from an empty ward. Point KOKIN_DATABASE_URL at a "
            "new database (or remove the instance's kokin.sqlite3) and run again")
    outdir = Path(app.instance_path) / "demo"
    outdir.mkdir(parents=True, exist_ok=True)
    progress = ClickProgress()
    fiscal_year = fiscal_year_of(first)
    click.secho(f"==> a month of ward {code}: {first} to {last} ({days} days), {payers:,} payers, "
                f"fiscal year {fiscal_year}", bold=True)
    with clock.playing(tokyo(first - timedelta(days=1), 9)):
        rows = list(ward_rows(code, fiscal_year, payers))
        ledger = ledger_file_bytes(rows, "kokin-csv", date(fiscal_year, 4, 1))
        (outdir / f"ledger-{fiscal_year}.csv").write_bytes(ledger)
        import_ledger(db_session, cipher(), ledger, filename=f"ledger-{fiscal_year}.csv", progress=progress)
        issued = issue_slips(db_session, code, fiscal_year=fiscal_year, progress=progress)
        password = secrets.token_urlsafe(12)
        for name, role in DEMO_STAFF:
            create_user(db_session, code, name, role, password, counter_code="resident", actor="demo")
        plan = plan_month(db_session, code, first, last)
    click.echo(f"before the month: {len(rows):,} instalments imported, {issued.issued:,} slips issued; staff accounts "
               f"{', '.join(name for name, _ in DEMO_STAFF)}; password (sandbox, shown once): {password}")
    player = _Player(app, db_session, code, municipality.id, plan, {row_key(row): row for row in rows})
    progress.start("playing the month", len(plan.days))
    table = []
    for day in plan.days:
        table.append((day, player.play(day)))
        progress.advance(1)
    progress.finish()
    _report(db_session, code, municipality_id, plan, table)


def row_key(row: dict[str, object]) -> tuple[str, int]:
    return str(row["assessment_id"]), int(str(row["installment"]))


class _Player:
    """Plays the plan one day at a time; keeps what spans days (the agencies' files, deposits made)."""

    def __init__(self, app: Any, db_session: Session, code: str, municipality_id: int, plan: MonthPlan,
                 rows: dict[tuple[str, int], dict[str, object]]) -> None:
        self.app, self.session, self.code, self.plan = app, db_session, code, plan
        self.municipality_id = municipality_id
        self.rows = rows
        self.rng = random.Random(plan.first.toordinal())
        agencies = app.extensions["kokin.agencies"]
        self.agency = next((a for name, a in sorted(agencies.items())
                            if isinstance(a, AgencyAdapter) and name == "agency-fixed120"), None) or next(
            (a for a in agencies.values() if isinstance(a, AgencyAdapter)), None)
        self.eltax = next((a for a in agencies.values() if isinstance(a, EltaxAdapter)), None)
        client_code = get_municipality(db_session, code).client_code
        self.agency_files = agency_files(plan, self.agency, client_code) if self.agency else {}
        self.eltax_files = eltax_files(plan, self.eltax) if self.eltax else {}
        self.deposits: Counter[str] = Counter()
        adapters = app.extensions["kokin.adapters"]
        self.channels = adapters_by_channel(adapters, app.config["CHANNEL_ADAPTERS"])
        self.square = adapters.get("square")
        self.staff = {role: user_id for user_id, role in db_session.execute(
            select(StaffUser.id, StaffUser.role).where(StaffUser.municipality_id == municipality_id))}
        db_session.rollback()

    def play(self, day: date) -> DayFigures:
        figures = DayFigures()
        with clock.playing(tokyo(day, 8, 30)):
            status_feed(self.session, self.plan, day, figures)
            self._amend(day, figures)
        with clock.playing(tokyo(day, 9)):
            for adapter, files in ((self.agency, self.agency_files), (self.eltax, self.eltax_files)):
                if adapter is not None and day in files:
                    import_day_file(self.session, adapter, self.code, day, files[day], figures)
            for adapter, short, netted in ((self.agency, self.plan.store.short_remittances,
                                            self.plan.store.netted_remittances), (self.eltax, 0, 0)):
                if adapter is not None:
                    figures.done["deposits"] += deposit_due(self.session, self.code, adapter.name, day, short=short,
                                                            netted=netted, recorded=self.deposits)
        with clock.playing(tokyo(day, 10)):
            pay_online(self.session, self.channels, self.municipality_id, self.plan, day,
                       self.app.config["FEE_SCHEDULES"], figures)
        if is_business_day(day) and self.square is not None and self.square.simulator is not None:
            self._counter(day, figures)
        with clock.playing(tokyo(day, 23, 50)):
            run_job(self.app, JOBS["janitor"], day)
        for job, hour, minute, offset in NIGHT:
            with clock.playing(min(tokyo(day + timedelta(days=1), hour, minute), _wall())):
                outcome = run_job(self.app, JOBS[job], day + timedelta(days=offset))
                figures.done[f"job {outcome}"] += 1
        return figures

    def _amend(self, day: date, figures: DayFigures) -> None:
        """The core system sends amended assessments (1,000 yen more): their slips are voided and reissued."""
        amended = [dict(self.rows[key], amount=int(str(self.rows[key]["amount"])) + 1_000)
                   for key in self.plan.amended.get(day, []) if key in self.rows]
        if not amended:
            return
        result = import_ledger(self.session, cipher(), ledger_file_bytes(amended, "kokin-fixed", day),
                               filename=f"amendments-{day:%Y%m%d}.dat", layout_name="kokin-fixed")
        reissued = issue_slips(self.session, self.code)
        figures.done["assessments amended"] += result.amended
        figures.done["slips reissued"] += reissued.reissued

    def _counter(self, day: date, figures: DayFigures) -> None:
        """The certificate counter's day: sales at the terminal, one cancelled at the device now and then,
        a same-day void on Fridays, the daily close against the provider's settlement report."""
        clerk, supervisor = (self.session.get(StaffUser, self.staff.get(role, 0))
                             for role in ("counter_staff", "counter_supervisor"))
        if clerk is None or supervisor is None:
            return
        _, terminals = counter_terminals(self.session, self.municipality_id, "resident")
        simulator = self.square.simulator  # type: ignore[union-attr]
        adapters = self.app.extensions["kokin.adapters"]
        paid = []
        for index in range(self.rng.randint(*SALES_A_DAY)):
            with clock.playing(tokyo(day, 10 + index * 6 // SALES_A_DAY[1], self.rng.randint(0, 59))):
                item = self.rng.choices([c for c, _ in FEE_ITEMS], [w for _, w in FEE_ITEMS])[0]
                brand = self.rng.choice(sorted(BRANDS))
                sale = start_sale(self.session, adapters, user=clerk, counter_code="resident",
                                  terminal_id=terminals[0].id, lines=[SaleLineRequest(item, self.rng.randint(1, 2))],
                                  brand=brand, business_date=day)
                attempt = sale_attempt(self.session, sale.municipality_id, sale.id)
                assert attempt is not None and attempt.provider_ref
                cancelled = self.rng.random() < 0.05  # the resident changes their mind at the device
                if not cancelled:
                    simulator.simulate_device(attempt.provider_ref, "start")
                simulator.simulate_device(attempt.provider_ref, "cancel" if cancelled else "complete")
                sale = follow_sale(self.session, adapters, sale.municipality_id, sale.id)
                figures.done[f"counter sales {sale.status}"] += 1
                if sale.status == "paid":
                    paid.append(sale.id)
        if paid and day.weekday() == 4:
            with clock.playing(tokyo(day, 16, 30)):
                void_sale(self.session, adapters, clerk.municipality_id, paid[-1], supervisor=supervisor, today=day)
                figures.done["counter sales voided"] += 1
        with clock.playing(tokyo(day, 17, 30)):
            close = daily_close(self.session, self.municipality_id, day,
                                {"square": self.square.settlement_report(day)})  # type: ignore[union-attr]
            figures.done["counter days closed"] += 1
            figures.done["counter differences"] += len(close.differences)


def _wall() -> datetime:
    """The wall clock's moment less a minute (whatever is played): the played clock never runs ahead of it."""
    return datetime.now(UTC) - timedelta(minutes=1)


def _report(db_session: Session, code: str, municipality_id: int, plan: MonthPlan,
            table: list[tuple[date, DayFigures]]) -> None:
    """The month day by day, its figures by channel, the exceptions and the conservation balance.

    A day's exceptions are those of its business date, whenever raised (a remittance short, a 確報 overdue).
    """
    click.secho("==> the month, day by day", bold=True)
    click.echo(f"{'day':<12}{'status':>7}{'agency':>8}{'eLTAX':>7}{'card':>6}{'PayPay':>7}{'counter':>8}"
               f"{'deposits':>9}{'exceptions':>11}  night")
    raised = dict(db_session.execute(select(ReconException.business_date, func.count()).where(
        ReconException.municipality_id == municipality_id).group_by(ReconException.business_date)).all())
    month = DayFigures()
    for day, figures in table:
        done = figures.done
        month.done += done
        night = "ok" if done["job failed"] == 0 else f"{done['job failed']} job(s) failed"
        click.echo(f"{day.isoformat():<12}{done['status feed lines']:>7}{done['agency-fixed120 records']:>8}"
                   f"{done['eltax-csv records']:>7}{done['card payments']:>6}{done['paypay payments']:>7}"
                   f"{done['counter sales paid']:>8}{done['deposits']:>9}{raised.get(day, 0):>11}"
                   f"  {night}")
    ours = Payment.municipality_id == municipality_id
    span = Payment.accepted_at.is_not(None) & (Payment.accepted_at >= tokyo(plan.first, 0)) & (
        Payment.accepted_at < tokyo(plan.last + timedelta(days=1), 0))
    click.secho("==> the month's money by channel", bold=True)
    for channel, count, amount in db_session.execute(
            select(Payment.channel, func.count(), func.coalesce(func.sum(Payment.amount), 0))
            .where(ours, span).group_by(Payment.channel).order_by(Payment.channel)):
        click.echo(f"  {channel:<10}{count:>8,} payments {amount:>16,} yen")
    closed = dict(db_session.execute(select(Assessment.closed_reason, func.count()).where(
        Assessment.municipality_id == municipality_id, Assessment.closed_on.between(plan.first, plan.last))
        .group_by(Assessment.closed_reason)).all())
    click.echo(f"  the core system's status feed: {closed.get('paid_elsewhere', 0):,} instalments paid at banks or by "
               f"direct debit, {closed.get('cancelled', 0):,} cancelled")
    deposits = db_session.scalar(select(func.coalesce(func.sum(AgencyDeposit.amount), 0)).where(
        AgencyDeposit.municipality_id == municipality_id, AgencyDeposit.deposited_on.between(plan.first, plan.last)))
    click.echo(f"  deposits from agencies and eLTAX: {deposits:,} yen")
    lines = func.coalesce(func.sum(OutboundFile.record_count), 0)
    files = db_session.execute(select(OutboundFile.feed, func.count(), lines)
                               .where(OutboundFile.municipality_id == municipality_id)
                               .group_by(OutboundFile.feed)).all()
    for kind, count, records in files:
        click.echo(f"  {kind} files written by the nightly jobs: {count:,} ({records:,} lines)")
    runs = db_session.execute(select(JobRun.status, func.count()).where(
        JobRun.business_date.between(plan.first, plan.last + timedelta(days=1)), JobRun.job != "janitor")
        .group_by(JobRun.status)).all()
    click.echo("  nightly job runs: " + ", ".join(f"{count} {status}" for status, count in runs))
    click.secho("==> planted this month (what a real month brings)", bold=True)
    click.echo("  " + ", ".join(f"{kind} {count}" for kind, count in sorted(plan.planted.items())))
    open_by_kind = db_session.execute(select(ReconException.kind, func.count()).where(
        ReconException.municipality_id == municipality_id, ReconException.status == "open")
        .group_by(ReconException.kind).order_by(ReconException.kind)).all()
    click.echo("  open exceptions for accounting: "
               + (", ".join(f"{kind} {count}" for kind, count in open_by_kind) or "none"))
    click.secho("==> conservation: every yen accepted this month against the receipts feed", bold=True)
    report = balance(db_session, code, plan.first, plan.last)
    click.echo(balance_text(report))
    db_session.rollback()
    if report.difference or report.differences:
        raise click.ClickException("the receipts feed does not account for every yen of the month (see above)")
    click.echo(f"the staff screens show the month from {plan.first}: `kokin serve`, sign in as demo-accounting")
