"""Conservation of every yen in the receipts feed, as a hypothesis state machine over the real services.

Residents pay slips by card and PayPay (now, or a checkout left open and paid after the slip
was paid, reissued or amended; sometimes in two tabs: a double payment), and at stores
through the collection agency's files (速報, 確報 alone, 取消 alone, several records in one
file) with the slip's latest barcode, one voided by a reissue or by an amendment (the old
amount: a mismatch) or a barcode of no slip; stores cancel what they reported (速報取消);
providers repeat their reports; staff amend assessments, reissue slips, refund payments in
part or whole (a second person approves or rejects; the simulated provider pays back) and
sell certificates at the counter's terminal, voided the same day; accounting carries out
the refunds the system requested; the receipts feed is exported at random points. Every
step goes through the services staff, residents and providers reach; nothing creates money
by writing to the database.

After every step `balance` finds nothing missing or extra, and the journal stands at what
the model says the gateway accepted, less what was cancelled and the revenue refunded.
After every export, and once more at the end of each example, the files are read back
(`resend`) and parsed: each record id in exactly one file, each reversal undoing an earlier
record of its amount once, and the files' net total equal to the journal's records sent;
at the end, with everything sent, equal to the model's figure (CONTRACT: Conservation).

The balance is over the whole municipality, so each example starts from a fresh database:
a copy of the migrated template on SQLite, the seeded baseline put back on PostgreSQL.
KOKIN_CONSERVATION_EXAMPLES runs more examples (e.g. 100 before a release).
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from itertools import count
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from adapters.agency import ReportKind
from adapters.agency.simulator import StorePayment, schedule, write_file
from domain import barcode as gs1
from domain import layouts
from domain.calendar import TOKYO
from domain.fiscal import fiscal_year_of
from domain.identifiers import make_slip_number
from gateway import create_app
from gateway.db import transaction
from gateway.errors import Conflict, GatewayError
from gateway.models import (
    Assessment,
    FundType,
    OutboundFile,
    Payment,
    ReceiptQueue,
    ReceiptRecord,
    Refund,
    Sale,
    Slip,
    StaffUser,
)
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.agency_import import import_agency_file
from gateway.services.counters import counter_terminals
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import start_payment
from gateway.services.refunds import decide_refund, execute_refund, refundable, request_refund
from gateway.services.sales import SaleLineRequest, follow_sale, sale_attempt, start_sale, void_sale
from gateway.services.slips import issue_slips, reissue_slip
from gateway.services.staff_accounts import create_user
from gateway.services.status_import import import_status_changes
from reconciliation.balance import balance
from reconciliation.receipts import export_next, load_receipts_layout, resend
from tests.conftest import BACKEND, TEST_DATA_KEY
from tests.rows import by_id

CODE = "131075"
TODAY = datetime.now(TOKYO).date()  # card, PayPay and counter money is accepted now
FIRST_STORE_DAY = TODAY - timedelta(days=28)  # store payments walk forward from here, day by day
LAST_STORE_DAY = TODAY - timedelta(days=7)  # their 速報 and 取消 files are sent days later: still in the past
FUNDS = ("01", "02", "11", "12", "13")  # fund 13 refunds a double payment through the provider (set below)
INSTALMENTS = 2 * len(FUNDS)  # enough unpaid ones for the online channels in a sequence of 20 steps
INSTALMENT = st.integers(0, INSTALMENTS - 1)
MOSTLY = st.sampled_from([True, True, False])
ONLINE = {"card": ("stripe", "paid"), "paypay": ("paypay", "COMPLETED")}  # adapter, the simulator's "paid"
SALE_BRANDS = ("FELICA_ID", "FELICA_ID", "FELICA_TRANSPORTATION_GROUP")  # the last is never voided at once
PASSWORD = "counter-pass-2026"  # noqa: S105 - throwaway test accounts
RECEIPTS = load_receipts_layout("receipts-csv")
MONEY_KINDS = ("receipt", "overpayment", "unidentified")


@dataclass
class Money:
    """A piece of money the gateway accepted, as the model sees it."""

    amount: int  # public revenue, yen (a card fee is never in it)
    refunded: int = 0  # refunds paid back, the fee included
    cancelled: bool = False  # a 速報 cancelled by the store

    @property
    def stands(self) -> int:
        """What should stand in the feed: revenue refunded first, the fee last (CONTRACT)."""
        return 0 if self.cancelled else self.amount - min(self.refunded, self.amount)


@dataclass(frozen=True)
class Checkout:
    """A card or PayPay checkout opened at the simulated provider."""

    adapter: str
    paid: str  # the simulator's word for paid
    payment_id: int
    provider_ref: str


@dataclass(frozen=True)
class Store:
    """A store payment reported in a 速報, and the key of its money in the model."""

    payment: StorePayment
    key: str


def _ledger_rows(amounts: dict[str, int], fiscal_year: int, due: date) -> list[dict[str, object]]:
    return [dict(municipality_code=CODE, assessment_id=key, fund_code=key[:2], fiscal_year=fiscal_year,
                 installment=1, payer_ref=key[-10:], payer_name="", amount=amount, due_date=due)
            for key, amount in amounts.items()]


class FreshDatabases:
    """A database as `kokin db upgrade` leaves it, for one example at a time."""

    def __init__(self, request: pytest.FixtureRequest, template_url: str, folder: Path) -> None:
        self.template_url, self.folder, self.numbers = template_url, folder, count()
        self.baseline = request.getfixturevalue("postgres_baseline") if BACKEND == "postgresql" else None

    def take(self) -> str:
        if self.baseline is not None:
            return self.template_url
        copy = self.folder / f"example-{next(self.numbers)}.sqlite3"
        shutil.copyfile(self.template_url.removeprefix("sqlite:///"), copy)
        return f"sqlite:///{copy}"

    def give_back(self, url: str) -> None:
        if self.baseline is not None:
            self.baseline.restore()
        else:
            Path(url.removeprefix("sqlite:///")).unlink()


class Conservation(RuleBasedStateMachine):
    """Random days of money through every channel; the feed keeps every yen once."""

    databases: FreshDatabases  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.url = self.databases.take()
        self.app: Flask = create_app({"DATABASE_URL": self.url, "TESTING": True,
                                      "INSTANCE_PATH": str(self.databases.folder / "instance")})
        self.session: Session = self.app.extensions["kokin.db"].session()
        self.adapters = self.app.extensions["kokin.adapters"]
        self.agency = self.app.extensions["kokin.agencies"]["agency-csv"]
        self.money: dict[str, Money] = {}
        self.stores: list[Store] = []
        self.checkouts: list[Checkout] = []  # opened, not paid yet
        self.settled: list[Checkout] = []
        self.confirmed: set[str] = set()  # the stores' keys whose 確報 came later
        self.files: dict[int, bytes] = {}  # sequence -> the bytes export_next returned
        self.day, self.minutes, self.numbers = FIRST_STORE_DAY, count(), count(1)
        self.staff: tuple[StaffUser, StaffUser] | None = None
        self.keys = [f"{FUNDS[n % len(FUNDS)]}-{fiscal_year_of(TODAY)}-{n + 1:010d}" for n in range(INSTALMENTS)]
        self.amounts = {key: 3_000 + 1_700 * n for n, key in enumerate(self.keys)}
        self.municipality_id = self._import_ledger()
        with transaction(self.session):  # the fund's policy is reference data staff set, not money
            self.session.execute(update(FundType).where(FundType.code == "13")
                                 .values(overpayment_policy="provider_refund"))

    def teardown(self) -> None:
        try:
            if sys.exc_info()[1] is None:  # a step failed: that is the report, not what follows from it
                self._export()
                self._check_files()
                assert self._files_net() == self._expected()  # everything sent: the files hold every yen once
        finally:
            self.session.close()
            self.app.extensions["kokin.db"].dispose()
            self.databases.give_back(self.url)

    # -- the ward's core system and its staff -----------------------------------------------------

    def _import_ledger(self) -> int:
        due = TODAY + timedelta(days=30)
        data = ledger_file_bytes(_ledger_rows(self.amounts, fiscal_year_of(TODAY), due), "kokin-csv", TODAY)
        import_ledger(self.session, self.app.extensions["kokin.cipher"], data,
                      filename=f"ledger-{next(self.numbers)}.csv", workers=1)
        issue_slips(self.session, CODE)
        municipality_id = self.session.scalar(select(Slip.municipality_id).limit(1))
        self.session.rollback()
        assert municipality_id is not None
        return municipality_id

    @rule(which=INSTALMENT, change=st.sampled_from([-700, -100, 100, 2_500]))
    def amend_an_assessment(self, which: int, change: int) -> None:
        """The core system amends an amount: the printed slips are voided, a new slip is issued."""
        key = self.keys[which]
        self.amounts[key] += change
        self._import_ledger()

    @rule(which=INSTALMENT)
    def reissue_a_slip(self, which: int) -> None:
        slip = self._latest_slip(which)
        if slip.status == "issued" and slip.reissue < 9:
            reissue_slip(self.session, self.municipality_id, slip.number, reason="lost", actor="clerk")

    @rule(which=INSTALMENT, status=st.sampled_from(["paid_elsewhere", "cancelled"]))
    def close_instalment(self, which: int, status: str) -> None:
        """The core system closes an instalment (CONTRACT: status changes); later money is an overpayment."""
        channel = "bank" if status == "paid_elsewhere" else ""
        data = ("municipality_code,assessment_id,installment,status,changed_on,channel\n"
                f"{CODE},{self.keys[which]},1,{status},{TODAY - timedelta(days=1)},{channel}\n").encode()
        import_status_changes(self.session, data, filename=f"status-{next(self.numbers)}.csv")

    # -- residents online -------------------------------------------------------------------------

    @rule(which=INSTALMENT, now=MOSTLY)
    def pay_by_card(self, which: int, now: bool) -> None:
        self._pay_online(which, ["card"], now)

    @rule(which=INSTALMENT, now=MOSTLY)
    def pay_by_paypay(self, which: int, now: bool) -> None:
        self._pay_online(which, ["paypay"], now)

    @rule(which=INSTALMENT, channels=st.lists(st.sampled_from(sorted(ONLINE)), min_size=2, max_size=2), now=MOSTLY)
    def pay_in_two_tabs(self, which: int, channels: list[str], now: bool) -> None:
        """Both checkouts of one slip are paid: a double payment."""
        self._pay_online(which, channels, now)

    def _pay_online(self, which: int, channels: list[str], now: bool) -> None:
        """Open a checkout per channel; the resident pays now or later (`a_resident_pays_an_open_checkout`)."""
        slip = self._latest_slip(which)
        opened: list[Checkout] = []
        for channel in channels:
            try:
                started = start_payment(
                    self.session, {c: self.adapters[name] for c, (name, _) in ONLINE.items()},
                    municipality_id=self.municipality_id, slip_number=slip.number, channel=channel,
                    return_url="https://ward.test/r", cancel_url="https://ward.test/c",
                    fee_schedules=self.app.config["FEE_SCHEDULES"], actor="resident")
            except Conflict:  # the slip is paid or voided: nothing to pay online
                assert slip.status != "issued"
                break
            assert started.attempt.provider_ref is not None
            opened.append(Checkout(ONLINE[channel][0], ONLINE[channel][1], started.payment.id,
                                   started.attempt.provider_ref))
        self.session.rollback()
        for checkout in opened:
            if now:
                self._pay(checkout)
            else:
                self.checkouts.append(checkout)

    @precondition(lambda self: self.checkouts)
    @rule(pick=st.integers(0, 50))
    def a_resident_pays_an_open_checkout(self, pick: int) -> None:
        """A checkout left open pays after all: the slip may have been paid, reissued or amended since."""
        self._pay(self.checkouts.pop(pick % len(self.checkouts)))

    @precondition(lambda self: self.settled)
    @rule(pick=st.integers(0, 50))
    def the_provider_reports_a_payment_again(self, pick: int) -> None:
        """A repeated notification (or the janitor's poll) of a settled payment books nothing more."""
        checkout = self.settled[pick % len(self.settled)]
        adapter = self.adapters[checkout.adapter]
        settle_attempt(self.session, adapter.name, adapter.fetch_status(checkout.provider_ref), actor="janitor")

    def _pay(self, checkout: Checkout) -> None:
        adapter = self.adapters[checkout.adapter]
        adapter.simulator.simulate_payment(checkout.provider_ref, checkout.paid)
        settle_attempt(self.session, adapter.name, adapter.fetch_status(checkout.provider_ref), actor="test")
        payment = by_id(self.session, Payment, checkout.payment_id, populate_existing=True)
        assert payment is not None and payment.status == "succeeded" and payment.accepted_at is not None
        self.money[f"payment:{payment.id}"] = Money(payment.amount)
        self.settled.append(checkout)
        self.session.rollback()

    # -- residents at stores, and the agency's files ------------------------------------------------

    @rule(which=INSTALMENT)
    def pay_at_a_store(self, which: int) -> None:
        """A resident pays the slip last printed for the instalment (paid already or not) at a store."""
        self._store_payment(self._barcode(self._latest_slip(which)))

    @rule(pick=st.integers(0, 50))
    def pay_a_void_slip_at_a_store(self, pick: int) -> None:
        """A slip voided by a reissue (same amount) or an amendment (the old amount: a mismatch) is paid."""
        void = list(self.session.scalars(select(Slip).where(Slip.status == "void").order_by(Slip.id)))
        if void:
            self._store_payment(self._barcode(void[pick % len(void)]))
        self.session.rollback()

    @rule(amount=st.integers(1, 60_000))
    def pay_an_unknown_barcode_at_a_store(self, amount: int) -> None:
        """A barcode of ours whose slip number no slip has (a slip of another system, a misprint)."""
        prefix = self.session.scalar(select(Slip.barcode).limit(1))
        self.session.rollback()
        assert prefix is not None
        number = make_slip_number(fiscal_year_of(TODAY), 9_000_000_000 + next(self.numbers))
        self._store_payment(gs1.compose(prefix[:13], number, 0, LAST_STORE_DAY + timedelta(days=60), amount))

    @rule(which=INSTALMENT,
          records=st.sampled_from([("final",), ("cancel",), ("preliminary", "cancel"), ("preliminary", "final")]))
    def a_store_payment_first_reported_otherwise(self, which: int, records: tuple[ReportKind, ...]) -> None:
        """A 確報 with no 速報 before it, a 取消 alone, or several records of one payment in one file."""
        self._store_payment(self._barcode(self._latest_slip(which)), records)

    @rule(pick=st.integers(0, 50))
    def the_agency_confirms_a_report(self, pick: int) -> None:
        """確報 of a live 速報 not confirmed yet: no new money."""
        waiting = [s for s in self.stores if not self.money[s.key].cancelled and "final" not in s.payment.records
                   and s.key not in self.confirmed]
        if waiting:
            store = waiting[pick % len(waiting)]
            self._import_agency(store.payment, ("final",))
            self.confirmed.add(store.key)

    def _store_payment(self, barcode: str, records: tuple[ReportKind, ...] = ("preliminary",)) -> None:
        minute = next(self.minutes)  # each payment its own moment and store: never a repeated record
        paid_at = datetime.combine(self.day, time(8 + minute // 60, minute % 60), tzinfo=TOKYO)
        payment = StorePayment(barcode, paid_at, f"{minute:07d}", "820", records)
        self._import_agency(payment, records)
        store = Store(payment, f"store:{len(self.stores)}")
        self.stores.append(store)
        self.money[store.key] = Money(payment.amount, cancelled="cancel" in records)

    @precondition(lambda self: any(not self.money[s.key].cancelled for s in self.stores))
    @rule(pick=st.integers(0, 50))
    def a_store_cancels_its_report(self, pick: int) -> None:
        """速報取消: the store voids a payment it reported; its records are reversed."""
        live = [s for s in self.stores if not self.money[s.key].cancelled]
        store = live[pick % len(live)]
        self._import_agency(store.payment, ("cancel",))
        self.money[store.key].cancelled = True

    def _import_agency(self, payment: StorePayment, kinds: tuple[ReportKind, ...]) -> None:
        """One file of the payment's records of `kinds`, sent the day after the last of them is due."""
        records = schedule([replace(payment, records=kinds)])
        data = write_file(self.agency, records, created_on=max(s.sent_on for s in records), client_code="13107")
        result = import_agency_file(self.session, self.agency, data, municipality_code=CODE,
                                    filename=f"agency-{next(self.numbers)}.csv", source="test", actor="test", workers=1)
        assert not result.already_imported and result.records == len(kinds)

    @precondition(lambda self: self.day < LAST_STORE_DAY)
    @rule()
    def next_day(self) -> None:
        self.day += timedelta(days=1)

    # -- refunds ----------------------------------------------------------------------------------

    @rule(pick=st.integers(0, 50), percent=st.sampled_from([100, 50, 1]), approve=st.booleans())
    def refund_an_online_payment(self, pick: int, percent: int, approve: bool) -> None:
        """Staff refund part or all of a card or PayPay payment; a second person approves or rejects."""
        payments = list(self.session.scalars(
            select(Payment).where(Payment.channel.in_(ONLINE), Payment.status.in_(("succeeded", "partially_refunded")))
            .order_by(Payment.id)))
        payments = [p for p in payments if refundable(self.session, p) > 0]
        if not payments:
            self.session.rollback()
            return
        payment = payments[pick % len(payments)]
        amount = max(1, refundable(self.session, payment) * percent // 100)
        self.session.rollback()
        refund = request_refund(self.session, payment.municipality_id, payment.id, amount,
                                reason="asked by the resident",
                                requested_by="clerk")
        self._decide_and_execute(refund.id, approve)

    @rule()
    def accounting_carries_out_the_requested_refunds(self) -> None:
        """Refunds the system requested (a fund's policy) or a counter could not void at once."""
        waiting = list(self.session.scalars(select(Refund.id).where(Refund.status == "requested")
                                            .order_by(Refund.id)))
        self.session.rollback()
        for refund_id in waiting:
            self._decide_and_execute(refund_id, approve=True)

    def _decide_and_execute(self, refund_id: int, approve: bool) -> None:
        ward = self.municipality_id
        decide_refund(self.session, ward, refund_id, approve=approve, decided_by="accounting")
        if approve:
            try:
                if execute_refund(self.session, self.adapters, ward, refund_id,
                                  actor="accounting").status == "processing":
                    execute_refund(self.session, self.adapters, ward, refund_id,
                                   actor="janitor")  # PayPay answers later
            except GatewayError as exc:
                assert exc.code == "refund_not_supported", exc
        refund = by_id(self.session, Refund, refund_id, populate_existing=True)
        assert refund is not None
        channel, brand = self.session.execute(select(Payment.channel, Sale.brand)
                                              .outerjoin(Sale, Sale.id == Payment.sale_id)
                                              .where(Payment.id == refund.payment_id)).one()
        # A store payment is paid back by the ward's bank transfer, a transport IC card in cash: not here.
        expected = ("rejected" if not approve else "approved" if channel == "agency"
                    else "failed" if brand == "FELICA_TRANSPORTATION_GROUP" else "succeeded")
        assert refund.status == expected, (channel, brand, refund.status)
        if refund.status == "succeeded":
            self.money[f"payment:{refund.payment_id}"].refunded += refund.amount
        self.session.rollback()

    # -- the certificate counter ------------------------------------------------------------------

    @rule(copies=st.integers(0, 3), seals=st.integers(0, 2), brand=st.sampled_from(SALE_BRANDS))
    def sell_at_the_counter(self, copies: int, seals: int, brand: str) -> None:
        clerk, _ = self._staff()
        lines = [SaleLineRequest("juminhyo", copies), SaleLineRequest("inkan", seals)]
        if not copies and not seals:
            return
        _, terminals = counter_terminals(self.session, self.municipality_id, "resident")
        terminal_id = terminals[0].id
        self.session.rollback()
        sale = start_sale(self.session, self.adapters, user=clerk, counter_code="resident", terminal_id=terminal_id,
                          lines=lines, brand=brand, business_date=TODAY)
        square = self.adapters["square"]
        attempt = sale_attempt(self.session, sale.municipality_id, sale.id)
        assert attempt is not None and attempt.provider_ref is not None
        checkout = attempt.provider_ref
        self.session.rollback()
        square.simulator.simulate_device(checkout, "start")
        assert square.simulator.simulate_device(checkout, "complete") == "COMPLETED"
        assert follow_sale(self.session, self.adapters, sale.municipality_id, sale.id).status == "paid"
        payment = self.session.scalar(select(Payment).where(Payment.sale_id == sale.id))
        assert payment is not None
        self.money[f"payment:{payment.id}"] = Money(payment.amount)
        self.session.rollback()

    @precondition(lambda self: self.staff is not None)
    @rule(pick=st.integers(0, 50))
    def void_a_sale(self, pick: int) -> None:
        """The same day: refunded through the terminal at once, or (a transport IC card) requested."""
        sales = list(self.session.scalars(select(Sale.id).where(Sale.status == "paid").order_by(Sale.id)))
        self.session.rollback()
        if not sales:
            return
        _, supervisor = self._staff()
        sale = void_sale(self.session, self.adapters, supervisor.municipality_id, sales[pick % len(sales)],
                         supervisor=supervisor, today=TODAY)
        payment = self.session.scalar(select(Payment).where(Payment.sale_id == sale.id))
        assert payment is not None
        refund = self.session.scalar(select(Refund).where(Refund.payment_id == payment.id))
        assert refund is not None
        if sale.status == "voided":
            assert refund.status == "succeeded"
            self.money[f"payment:{payment.id}"].refunded += refund.amount
        else:
            assert (sale.status, refund.status) == ("refund_requested", "requested")
        self.session.rollback()

    def _staff(self) -> tuple[StaffUser, StaffUser]:
        if self.staff is None:  # made on first use: hashing their passwords is slow
            self.staff = (create_user(self.session, CODE, "clerk", "counter_staff", PASSWORD,
                                      counter_code="resident", actor="test"),
                          create_user(self.session, CODE, "super", "counter_supervisor", PASSWORD,
                                      counter_code="resident", actor="test"))
        return self.staff

    # -- the receipts feed ------------------------------------------------------------------------

    @rule()
    def export_the_next_file(self) -> None:
        self._export()
        self._check_files()

    def _export(self) -> None:
        result = export_next(self.session, CODE, "receipts-csv", actor="test", today=TODAY)
        if result is None:
            assert self._unsent() == 0
            return
        assert result.sequence == len(self.files) + 1
        self.files[result.sequence] = result.data

    def _unsent(self) -> int:
        unsent = self.session.scalar(select(func.count()).select_from(ReceiptQueue)) or 0
        self.session.rollback()
        return unsent

    def _check_files(self) -> None:
        """Read every file sent back and check it against the journal: each record once, reversals paired."""
        amounts: dict[str, int] = {}  # record_id -> amount, of the records seen so far
        reversed_: set[str] = set()
        net = 0
        sequences = self.session.scalars(select(OutboundFile.sequence)).all()
        assert sorted(sequences) == sorted(self.files)
        in_files: list[str] = []
        for sequence, sent in sorted(self.files.items()):
            data = resend(self.session, CODE, sequence).data
            assert data == sent  # byte for byte
            records, errors = layouts.read(RECEIPTS, data)
            assert errors == []
            values = [r.values for r in records if r.kind == "data"]
            for record in values:
                assert record["sequence"] == sequence and record["amount"] > 0
                assert record["record_id"] not in amounts, f"record {record['record_id']} in two files"
                if record["record_kind"] == "reversal":
                    undone = record["reverses"]
                    assert amounts.get(undone) == record["amount"], f"reversal of {undone}: no earlier record of it"
                    assert undone not in reversed_, f"record {undone} reversed twice"
                    reversed_.add(undone)
                    net -= record["amount"]
                else:
                    assert record["record_kind"] in MONEY_KINDS and not record["reverses"]
                    net += record["amount"]
                amounts[record["record_id"]] = record["amount"]
            in_files += [r["record_id"] for r in values]
        # The files hold exactly the journal's records taken from the queue: none lost, none twice.
        journal = self.session.scalars(select(ReceiptRecord.id).where(ReceiptRecord.id.not_in(
            select(ReceiptQueue.record_id)))).all()
        assert sorted(in_files) == sorted(f"{CODE}-{i:012d}" for i in journal)
        self.session.rollback()
        assert net == self._files_net()

    def _files_net(self) -> int:
        """The net yen of the journal's records sent in files."""
        net = self.session.scalar(select(func.coalesce(func.sum(_SIGNED), 0))
                                  .where(ReceiptRecord.id.not_in(select(ReceiptQueue.record_id))))
        self.session.rollback()
        return int(net or 0)

    # -- after every step -------------------------------------------------------------------------

    def _expected(self) -> int:
        return sum(m.stands for m in self.money.values())

    @invariant()
    def every_yen_accepted_stands_in_the_feed_once(self) -> None:
        report = balance(self.session, CODE)
        journal = self.session.scalar(select(func.coalesce(func.sum(_SIGNED), 0)))
        self.session.rollback()
        assert (report.difference, report.differences, report.unlisted) == (0, [], 0), report.as_dict()
        assert sum(c.expected for c in report.channels) == self._expected() == int(journal or 0), report.as_dict()

    # -- helpers ----------------------------------------------------------------------------------

    def _barcode(self, slip: Slip) -> str:
        assert slip.barcode is not None  # the ledger's amounts are below the barcode's limit
        return slip.barcode

    def _latest_slip(self, which: int) -> Slip:
        slip = self.session.scalar(select(Slip).join(Assessment, Assessment.id == Slip.assessment_id)
                                   .where(Assessment.source_key == self.keys[which])
                                   .order_by(Slip.id.desc()).limit(1))
        assert slip is not None
        return slip


_SIGNED = case((ReceiptRecord.kind == "reversal", -ReceiptRecord.amount), else_=ReceiptRecord.amount)


def test_every_yen_through_every_channel_stands_in_the_receipts_feed_once_whatever_happens_in_between(
        request: pytest.FixtureRequest, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    Conservation.databases = FreshDatabases(request, database_url, tmp_path)
    run_state_machine_as_test(Conservation, settings=settings(
        max_examples=int(os.environ.get("KOKIN_CONSERVATION_EXAMPLES", "15")), stateful_step_count=20,
        deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
