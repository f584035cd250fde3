"""Sandbox mode: a month of a ward, planned instalment by instalment and played day by day.

`plan_month` decides, before the month begins, who pays which instalment, when and how:
- at a store or in an app (the collection agency reports it the next business day, confirms
  it later and remits about ten days after);
- at a bank or by direct debit (the core system's status feed says so a business day or two later);
- online by card or PayPay;
- through eLTAX with the eL番号;
- late (after the due date), or not at all this month.

It also plants the anomalies a real month brings, each a few times at most: every anomaly the
agency channel can show, an eLTAX second payment, another eLTAX amount and an unknown eL番号, a slip
paid twice online by two members of a family, checkouts opened and left, a payment on an
instalment the core system cancelled, a store payment of an instalment already paid at the bank,
amended assessments (their slips voided and reissued), a sale voided at the counter.

The `play_*` functions do one day's share of each channel through the real services, on the
gateway's clock (`domain.clock.playing`), which `kokin demo --days` sets to the day. Nothing here
is used with real money.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.agency import AgencyAdapter, ReportKind
from adapters.agency.simulator import StorePayment, schedule
from adapters.agency.simulator import files_by_day as agency_files_by_day
from adapters.eltax import METHODS, EltaxAdapter
from adapters.eltax.simulator import EltaxPaid
from adapters.eltax.simulator import files_by_day as eltax_files_by_day
from domain.barcode import compose, decode, issuer_prefix
from domain.calendar import TOKYO, business_day_after, is_business_day
from domain.identifiers import make_slip_number
from gateway.db import transaction, utcnow
from gateway.errors import GatewayError
from gateway.models import Assessment, Slip
from gateway.models.base import on_ward
from gateway.sandbox.agency import CHAINS, SANDBOX_FEE, AgencyPlan
from gateway.sandbox.eltax import sandbox_el_number
from gateway.services.agency_checks import expected_remittances, record_deposit
from gateway.services.agency_import import import_agency_file
from gateway.services.payments import start_payment
from gateway.services.reference import get_municipality
from gateway.services.status_import import import_status_changes
from gateway.services.webhooks import receive_webhook

# How residents pay an instalment due around the month (weights); "none": not this month.
CHANNEL_WEIGHTS = (("store", 40), ("bank", 28), ("card", 8), ("paypay", 7), ("eltax", 7), ("none", 10))
LATE_SHARE = 0.05  # of payers who pay after the due date (up to 40 days late)
EARLY_DAYS = 25  # payers pay up to this many days before the due date
LATE_DAYS = 40
ABANDONED_SHARE = 0.03  # of online checkouts opened and left (the janitor expires them)
STATUS_HEADER = "municipality_code,assessment_id,installment,status,changed_on,channel"
RETURN_URL = "http://127.0.0.1:5000/pay/done"


@dataclass(frozen=True)
class Instalment:
    """An instalment with an issued slip, as the plan needs it."""

    assessment_id: int
    source_key: str
    installment: int
    number: str  # the slip's number
    barcode: str | None
    amount: int
    due_date: date
    store_deadline: date | None


@dataclass
class MonthPlan:
    """What happens in the month, by day (each list in the order it happens)."""

    first: date
    last: date
    store: AgencyPlan
    online: dict[date, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))  # (slip, channel)
    abandoned: dict[date, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    twice: dict[date, list[str]] = field(default_factory=lambda: defaultdict(list))  # slips paid by card and PayPay
    status: dict[date, list[str]] = field(default_factory=lambda: defaultdict(list))  # status feed lines by arrival
    eltax: list[EltaxPaid] = field(default_factory=list)
    amended: dict[date, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))  # (key, instalment)
    planted: Counter[str] = field(default_factory=Counter)  # what the month plants, by kind

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def month_instalments(session: Session, municipality_id: int, first: date, last: date) -> list[Instalment]:
    """The instalments with a live issued slip due from LATE_DAYS before the month to EARLY_DAYS after it."""
    rows = session.execute(
        select(Assessment.id, Assessment.source_key, Assessment.installment, Slip.number, Slip.barcode, Slip.amount,
               Slip.due_date, Slip.store_deadline)
        .join(Slip, on_ward(Slip, "assessment_id", Assessment))
        .where(Assessment.municipality_id == municipality_id, Slip.status == "issued",
               Assessment.closed_reason.is_(None),
               Slip.due_date.between(first - timedelta(days=LATE_DAYS), last + timedelta(days=EARLY_DAYS)))
        .order_by(Assessment.id)).all()
    return [Instalment(*row) for row in rows]


def plan_month(session: Session, municipality_code: str, first: date, last: date, *, seed: int = 30) -> MonthPlan:
    """Decide the month: who pays what, when and how, and the anomalies (see the module's docstring).

    Plants a reissue for payment_on_void_slip at once (the slip is voided before the month).
    """
    rng = random.Random(seed)
    municipality = get_municipality(session, municipality_code)
    instalments = month_instalments(session, municipality.id, first, last)
    session.rollback()
    plan = MonthPlan(first, last, AgencyPlan([]))
    by_channel: dict[str, list[tuple[Instalment, datetime]]] = defaultdict(list)
    unpaid: list[Instalment] = []
    for item in instalments:
        channel = rng.choices([c for c, _ in CHANNEL_WEIGHTS], [w for _, w in CHANNEL_WEIGHTS])[0]
        late = rng.random() < LATE_SHARE
        day = (item.due_date + timedelta(days=rng.randint(1, LATE_DAYS)) if late
               else item.due_date - timedelta(days=rng.randint(0, EARLY_DAYS)))
        if channel == "none" or not first <= day <= last:
            unpaid.append(item)
            continue
        if channel == "store" and item.barcode is None:
            channel = "bank"  # above 300,000 yen: no barcode, paid at the bank
        if channel in ("store", "card", "paypay") and item.store_deadline and day > item.store_deadline:
            channel = "bank"  # past 支払期限 stores and the pay page refuse the slip: the bank takes it
        by_channel[channel].append((item, datetime.combine(day, time(rng.randint(7, 22), rng.randint(0, 59)))))
    rng.shuffle(unpaid)
    _plan_store(plan, rng, municipality, by_channel["store"], unpaid, session)
    _plan_online(plan, rng, by_channel["card"], by_channel["paypay"])
    _plan_bank(plan, rng, municipality_code, by_channel["bank"])
    _plan_eltax(plan, rng, session, municipality_code, by_channel["eltax"])
    _plan_core_system(plan, rng, municipality_code, unpaid, by_channel["bank"])
    return plan


def _plan_store(plan: MonthPlan, rng: random.Random, municipality: Any, paid: list[tuple[Instalment, datetime]],
                spare: list[Instalment], session: Session) -> None:
    """Store payments as planned, and one of each anomaly the agency channel shows, dated in the month."""
    payments = [_store(rng, item.barcode, at) for item, at in paid if item.barcode]
    quiet = [p for p in payments if p.paid_at.date() <= plan.last - timedelta(days=5)]
    early, middle = plan.first + timedelta(days=2), plan.first + (plan.last - plan.first) // 2

    def take(fits: Any) -> Instalment | None:
        for index, item in enumerate(spare):
            if item.barcode and fits(item):
                return spare.pop(index)
        return None

    def day_in(lo: date, hi: date) -> datetime:
        span = max((hi - lo).days, 0)
        return datetime.combine(lo + timedelta(days=rng.randint(0, span)), time(rng.randint(8, 21), rng.randint(0, 59)))

    planted: list[tuple[str, StorePayment | None]] = []
    if quiet:
        first = rng.choice(quiet)  # the same sheet paid again at another store, minutes later
        planted.append(("double_payment", replace(first, store_code="0000001",
                                                  paid_at=first.paid_at + timedelta(minutes=7))))
    number = make_slip_number(plan.first.year, 9_000_000_000_000 + rng.randint(0, 999_999_999))
    planted.append(("unknown_slip", _store(rng, compose(issuer_prefix(municipality.company_code,
                                                                      municipality.client_code),
                                                        number, 0, None, 5_000), day_in(early, middle))))
    item = take(lambda i: True)
    if item is not None:  # a hand-corrected amount: 100 yen more, check digit recomputed
        bar = decode(str(item.barcode))
        altered = compose(str(item.barcode)[:13], bar.slip_number, bar.reissue, bar.store_deadline, bar.amount + 100)
        planted.append(("amount_mismatch", _store(rng, altered, day_in(early, middle))))
    item = take(lambda i: early <= i.due_date + timedelta(days=1) <= middle
                and (i.store_deadline is None or i.store_deadline > i.due_date + timedelta(days=1)))
    if item is not None:
        planted.append(("paid_after_due_date", _store(rng, item.barcode, _at(rng, item.due_date + timedelta(days=1)))))
    item = take(lambda i: i.store_deadline is not None and early <= i.store_deadline + timedelta(days=2) <= middle)
    if item is not None and item.store_deadline is not None:
        planted.append(("paid_after_store_deadline",
                        _store(rng, item.barcode, _at(rng, item.store_deadline + timedelta(days=2)))))
    kinds: tuple[tuple[str, tuple[ReportKind, ...]], ...] = (
        ("preliminary_cancelled", ("preliminary", "cancel")), ("final_without_preliminary", ("final",)),
        ("final_overdue", ("preliminary",)))
    for kind, records in kinds:
        item = take(lambda i: True)
        if item is not None:
            planted.append((kind, replace(_store(rng, item.barcode, day_in(early, middle)), records=records)))
    item = take(lambda i: True)
    if item is not None:  # the resident pays with the old sheet after the slip was reissued
        from gateway.services.slips import reissue_slip  # the plan's one write

        reissue_slip(session, municipality.id, item.number, reason="sandbox: slip lost and reissued", actor="sandbox")
        planted.append(("payment_on_void_slip", _store(rng, item.barcode, day_in(early, middle))))
    for kind, payment in planted:
        if payment is not None:
            payments.append(payment)
            plan.planted[kind] += 1
    plan.store = AgencyPlan(payments, short_remittances=1, netted_remittances=1)
    plan.planted.update({"remittance_mismatch": 1, "fee_netted": 1})


def _plan_online(plan: MonthPlan, rng: random.Random, card: list[tuple[Instalment, datetime]],
                 paypay: list[tuple[Instalment, datetime]]) -> None:
    paid = sorted([(at, item.number, "card") for item, at in card]
                  + [(at, item.number, "paypay") for item, at in paypay])
    for at, number, channel in paid:
        plan.online[at.date()].append((number, channel))
        if rng.random() < ABANDONED_SHARE:  # a first try left on the provider's page, paid later the same day
            plan.abandoned[at.date()].append((number, channel))
            plan.planted["checkout_abandoned"] += 1
    if paid:  # two members of a family open the same slip's pay page, by card and by PayPay, and both pay
        at, number, channel = paid.pop(rng.randrange(max(len(paid) // 2, 1)))
        plan.online[at.date()].remove((number, channel))
        plan.twice[at.date()].append(number)
        plan.planted["online_double_payment"] += 1


def _plan_bank(plan: MonthPlan, rng: random.Random, code: str, paid: list[tuple[Instalment, datetime]]) -> None:
    """The core system learns of bank and direct-debit payments and reports them a business day or two later."""
    for item, at in paid:
        arrives = business_day_after(at.date(), rng.randint(1, 2))
        if arrives <= plan.last:
            channel = rng.choice(("bank", "direct_debit", "bank"))
            plan.status[arrives].append(f"{code},{item.source_key},{item.installment},paid_elsewhere,"
                                        f"{at.date().isoformat()},{channel}")


def _plan_core_system(plan: MonthPlan, rng: random.Random, code: str, unpaid: list[Instalment],
                      bank: list[tuple[Instalment, datetime]]) -> None:
    """Cancelled assessments (one of them paid at a store all the same), a bank payment paid again at a
    store, and amended assessments."""
    middle = plan.first + (plan.last - plan.first) // 2
    days = [day for day in plan.days if is_business_day(day) and day <= middle] or [plan.first]
    for index in range(3):
        if not unpaid:
            break
        item = unpaid.pop()
        on = rng.choice(days)
        plan.status[on].append(f"{code},{item.source_key},{item.installment},cancelled,{on.isoformat()},")
        plan.planted["cancelled_by_core_system"] += 1
        if index == 0 and item.barcode:  # the sheet was already in the resident's hands
            plan.store.payments.append(_store(rng, item.barcode, _at(rng, min(on + timedelta(days=2), plan.last))))
            plan.planted["store_payment_after_cancellation"] += 1
    reported = [(item, at) for item, at in bank if at.date() <= middle and item.barcode]
    if reported:
        item, at = rng.choice(reported)  # paid at the bank, then the same sheet at a store
        plan.store.payments.append(_store(rng, item.barcode, _at(rng, min(at.date() + timedelta(days=4), plan.last))))
        plan.planted["store_payment_after_bank_payment"] += 1
    for _ in range(max(len(plan.days) // 7, 1)):  # the core system amends an assessment about once a week
        if unpaid:
            item = unpaid.pop()
            plan.amended[rng.choice(plan.days)].append((item.source_key, item.installment))
            plan.planted["assessment_amended"] += 1


def _plan_eltax(plan: MonthPlan, rng: random.Random, session: Session, code: str,
                paid: list[tuple[Instalment, datetime]]) -> None:
    """eLTAX payments with the eL番号 (given where the core system gave none), and the channel's anomalies."""
    if not paid:
        return
    ward = get_municipality(session, code).id
    numbers = dict(session.execute(select(Assessment.id, Assessment.el_number)
                                   .where(Assessment.municipality_id == ward,
                                          Assessment.id.in_([item.assessment_id for item, _ in paid]))).all())
    with transaction(session):
        for item, _ in paid:
            if numbers.get(item.assessment_id) is None:
                numbers[item.assessment_id] = sandbox_el_number(code, item.assessment_id)
                session.execute(update(Assessment).where(Assessment.municipality_id == ward,
                                                         Assessment.id == item.assessment_id)
                                .values(el_number=numbers[item.assessment_id]))
    payments = [EltaxPaid(str(numbers[item.assessment_id]), item.amount, at, rng.choice(METHODS)) for item, at in paid]
    plan.eltax = payments[:-1]
    clean, mismatch = payments[0], payments[-1]
    plan.eltax += [replace(clean, paid_at=clean.paid_at + timedelta(hours=1), method="app"),
                   replace(mismatch, amount=mismatch.amount + 100),
                   EltaxPaid(f"{code}{'9' * 20}", 5_000, clean.paid_at, "netbank")]
    plan.planted.update({"eltax_double_payment": 1, "eltax_amount_mismatch": 1, "eltax_unknown_number": 1})


def _store(rng: random.Random, barcode: str | None, at: datetime) -> StorePayment:
    assert barcode is not None
    chain = rng.choices([c for c, _ in CHAINS], [w for _, w in CHAINS])[0]
    return StorePayment(barcode, at, f"{rng.randint(1, 9_999_999):07d}", chain)


def _at(rng: random.Random, day: date) -> datetime:
    return datetime.combine(day, time(rng.randint(8, 21), rng.randint(0, 59)))


# -- one day's share of each channel ------------------------------------------------------------


@dataclass
class DayFigures:
    """What one played day did, by what (counts)."""

    done: Counter[str] = field(default_factory=Counter)


def agency_files(plan: MonthPlan, agency: AgencyAdapter, client_code: str) -> dict[date, bytes]:
    """The agency's files of the month, by the day they arrive (later ones come next month)."""
    files = agency_files_by_day(agency, schedule(plan.store.payments), client_code=client_code)
    return {day: data for day, data in files.items() if plan.first <= day <= plan.last}


def eltax_files(plan: MonthPlan, adapter: EltaxAdapter) -> dict[date, bytes]:
    return {day: data for day, data in eltax_files_by_day(adapter, plan.eltax).items()
            if plan.first <= day <= plan.last}


def import_day_file(session: Session, adapter: AgencyAdapter | EltaxAdapter, code: str, day: date, data: bytes,
                    figures: DayFigures) -> None:
    """Import the file an agency (or eLTAX) sent on `day`."""
    suffix = "csv" if adapter.layout.format == "csv" else "dat"
    result = import_agency_file(session, adapter, data, municipality_code=code,
                                filename=f"{adapter.name}-{day:%Y%m%d}.{suffix}", source="sandbox", actor="sandbox")
    figures.done[f"{adapter.name} records"] += result.records
    figures.done["exceptions raised by files"] += sum(result.exceptions.values())


def deposit_due(session: Session, code: str, adapter: str, day: date, *, short: int = 0, netted: int = 0,
                recorded: Counter[str]) -> int:
    """The bank statement of `day`: each remittance due by then and not yet received arrives.

    The first `short` deposits of the month come 1,000 yen short, the next `netted` net of the
    agency's fees (`recorded` counts the month's deposits per adapter). Returns how many arrived.
    """
    count = 0
    for remittance in expected_remittances(session, code, adapter=adapter, until=day):
        if remittance.expected <= 0 or remittance.received:
            continue
        amount, made = remittance.expected, recorded[adapter]
        if made < short:
            amount -= 1_000 if 1_000 != SANDBOX_FEE * remittance.payments else 1_001
        elif made < short + netted:
            amount -= SANDBOX_FEE * remittance.payments
        count += record_deposit(session, code, adapter=adapter, deposited_on=remittance.remittance_on, amount=amount,
                                account=remittance.account, entered_by="sandbox",
                                reference=f"{adapter}-{remittance.remittance_on:%Y%m%d}-{remittance.account or 'none'}")
        recorded[adapter] += 1
    return count


def status_feed(session: Session, plan: MonthPlan, day: date, figures: DayFigures) -> None:
    """The core system's status feed of `day`: bank payments it learnt of, cancellations."""
    lines = plan.status.get(day)
    if not lines:
        return
    data = ("\r\n".join([STATUS_HEADER, *lines]) + "\r\n").encode("cp932")
    result = import_status_changes(session, data, filename=f"status-{day:%Y%m%d}.csv")
    figures.done["status feed lines"] += len(lines)
    figures.done["instalments closed by the status feed"] += result.closed


def pay_online(session: Session, channels: Mapping[str, Any], municipality_id: int, plan: MonthPlan, day: date,
               fee_schedules: Mapping[str, Any], figures: DayFigures) -> None:
    """The day's online payments, each on the provider's (simulated) page and notified by webhook."""
    left = set(plan.abandoned.get(day, []))
    for number, channel in plan.online.get(day, []):
        adapter = channels.get(channel)
        if adapter is None:
            continue
        tries = 2 if (number, channel) in left else 1
        left.discard((number, channel))
        for attempt_no in range(tries):
            started = _start(session, channels, municipality_id, number, channel, fee_schedules, figures)
            if started is None:
                break
            if attempt_no + 1 < tries:
                figures.done["checkouts left open"] += 1
                continue
            _complete(session, adapter, str(started.attempt.provider_ref))
            figures.done[f"{channel} payments"] += 1
    for number in plan.twice.get(day, []):  # both checkouts open before either is paid: the slip is paid twice
        opened = []
        for channel in ("card", "paypay"):
            if channel in channels:
                opened.append((channel, _start(session, channels, municipality_id, number, channel, fee_schedules,
                                               figures)))
        for channel, started in opened:
            if started is not None:
                _complete(session, channels[channel], str(started.attempt.provider_ref))
                figures.done[f"{channel} payments"] += 1


def _start(session: Session, channels: Mapping[str, Any], municipality_id: int, number: str, channel: str,
           fee_schedules: Mapping[str, Any], figures: DayFigures) -> Any:
    """Open a checkout as the pay page does; None when the gateway refuses it (counted by its reason)."""
    try:
        return start_payment(session, channels, municipality_id=municipality_id, slip_number=number, channel=channel,
                             return_url=RETURN_URL, cancel_url=RETURN_URL, fee_schedules=fee_schedules,
                             actor="resident")
    except GatewayError as exc:  # closed by the status feed, already paid, past its deadline
        figures.done[f"online refused: {exc.code}"] += 1
        return None


def _complete(session: Session, adapter: Any, provider_ref: str) -> None:
    """The resident pays on the provider's page; its notification reaches the gateway."""
    simulator = adapter.simulator
    if adapter.name == "stripe":
        simulator.simulate_payment(provider_ref, "paid")
        deliveries = simulator.events_for(provider_ref, utcnow())
    else:
        simulator.simulate_payment(provider_ref, "COMPLETED")
        delivery = simulator.notification(provider_ref, sent_at=utcnow())
        deliveries = [(delivery.headers, delivery.body)]
    for headers, body in deliveries:
        receive_webhook(session, adapter, dict(headers), body, utcnow())


def tokyo(day: date, hour: int, minute: int = 0) -> datetime:
    """The moment `hour:minute` of `day` in Tokyo."""
    return datetime.combine(day, time(hour, minute), tzinfo=TOKYO)
