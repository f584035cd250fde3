"""The payment lifecycle as a hypothesis state machine over the real services and database.

Residents open payments by card or PayPay, pay, are declined or walk away; providers
repeat and reorder their reports; staff request, approve, reject and carry out refunds.
After every step the database is checked: paid once per instalment, every further payment
kept as an overpayment with a refund requested, refunds never above what was paid and
booked exactly, terminal states left never, every status one its machine knows.

A fresh database per example would be slow: one app and database serve the whole test,
and each example takes fresh slips from a pool that is issued as it runs out.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from itertools import count
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import Outcome, PaymentStatus
from domain.errors import DomainError
from domain.lifecycle import ATTEMPT, PAYMENT, REFUND, Machine
from gateway.crypto import DataCipher
from gateway.db import Database
from gateway.models import Assessment, Payment, PaymentAttempt, ReceiptRecord, Refund, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import start_payment
from gateway.services.refunds import decide_refund, execute_refund, refundable, request_refund
from gateway.services.slips import issue_slips
from tests.rows import by_id

CODE = "131075"
STAFF = ("tanaka", "suzuki", "sato")
POOL_BATCH = 40
PAID_FAMILY = ("succeeded", "partially_refunded", "refunded")  # a payment whose money was accepted
COMMITTED_REFUNDS = ("requested", "approved", "processing", "failed", "succeeded")  # all but rejected
MACHINE_OF = {"payment": PAYMENT, "attempt": ATTEMPT, "refund": REFUND}
RARELY = st.sampled_from([False, False, False, True])  # steer most steps to the productive path


@dataclass(frozen=True)
class SlipRef:
    id: int
    number: str
    municipality_id: int
    assessment_id: int
    amount: int


@dataclass
class AttemptRef:
    attempt_id: int
    payment_id: int
    channel: str
    adapter: Any  # a sandbox PaymentAdapter: it has a `simulator` to play the resident
    provider_ref: str
    provider_open: bool = True  # the provider still takes the money (page open, code unpaid)
    reports: list[PaymentStatus] = field(default_factory=list)


class SlipPool:
    """Fresh issued slips on demand: each batch is a new ledger file of new assessments."""

    def __init__(self, database: Database, cipher: DataCipher) -> None:
        self.database = database
        self.cipher = cipher
        self.free: list[SlipRef] = []
        self.batches = count()

    def take(self) -> SlipRef:
        if not self.free:
            self._issue_batch(next(self.batches))
        return self.free.pop(0)

    def _issue_batch(self, batch: int) -> None:
        rows = [dict(municipality_code=CODE, assessment_id=f"SM-{batch:03d}-{n:03d}", fund_code="02",
                     fiscal_year=2026, installment=1, payer_ref=f"{batch * 1000 + n + 1:010d}",
                     payer_name="墨田　花子", amount=2_000 + 300 * n, due_date=date(2026, 6, 1))
                for n in range(POOL_BATCH)]
        with self.database.session() as session:
            import_ledger(session, self.cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)),
                          filename=f"pool-{batch}.csv")
            assert issue_slips(session, CODE).issued == POOL_BATCH
            slips = session.scalars(select(Slip).join(Assessment, Slip.assessment_id == Assessment.id)
                                    .where(Assessment.source_key.startswith(f"SM-{batch:03d}-"))
                                    .order_by(Slip.id)).unique().all()
            self.free += [SlipRef(s.id, s.number, s.municipality_id, s.assessment_id, s.amount) for s in slips]


def _code_of(call: Any) -> str | None:
    """Run `call`; return the error code it raised, or None when it succeeded."""
    try:
        call()
    except DomainError as exc:
        return exc.code
    return None


class PaymentLifecycle(RuleBasedStateMachine):
    """One example: its own slips, payments and refunds; the checks look at those rows only.

    Earlier examples' rows stay in the shared database untouched: no rule reaches them.
    """

    def __init__(self, app: Flask, database: Database, pool: SlipPool) -> None:
        super().__init__()
        self.app, self.pool = app, pool
        self.session: Session = database.session()
        adapters = app.extensions["kokin.adapters"]
        self.adapters = adapters
        self.by_channel = {channel: adapters[name] for channel, name in app.config["CHANNEL_ADAPTERS"].items()}
        self.slips: list[SlipRef] = []
        self.attempts: list[AttemptRef] = []
        # Every status each payment, attempt and refund has had, oldest first, since this example began.
        self.history: dict[tuple[str, int], list[str]] = defaultdict(list)
        self._observe()

    def teardown(self) -> None:
        self.session.close()

    # -- helpers --------------------------------------------------------------------------------

    def _fresh(self) -> Session:
        self.session.expire_all()
        return self.session

    @property
    def _payment_ids(self) -> list[int]:
        return [a.payment_id for a in self.attempts]

    @property
    def _assessment_ids(self) -> list[int]:
        return [s.assessment_id for s in self.slips]

    def _snapshot(self) -> dict[str, Any]:
        session, ids = self._fresh(), self._payment_ids
        return {
            "payments": session.execute(select(Payment.id, Payment.status, Payment.applied, Payment.overpaid,
                                               Payment.refunded_amount).where(Payment.id.in_(ids))
                                        .order_by(Payment.id)).all(),
            "attempts": session.execute(select(PaymentAttempt.id, PaymentAttempt.status, PaymentAttempt.updated_at)
                                        .where(PaymentAttempt.payment_id.in_(ids))
                                        .order_by(PaymentAttempt.id)).all(),
            "refunds": session.execute(select(Refund.id, Refund.status, Refund.amount)
                                       .where(Refund.payment_id.in_(ids)).order_by(Refund.id)).all(),
            "slips": session.execute(select(Slip.id, Slip.status).where(Slip.assessment_id.in_(self._assessment_ids))
                                     .order_by(Slip.id)).all(),
        }

    def _observe(self) -> None:
        session, ids = self._fresh(), self._payment_ids
        queries = (("payment", select(Payment.id, Payment.status).where(Payment.id.in_(ids))),
                   ("attempt", select(PaymentAttempt.id, PaymentAttempt.status)
                    .where(PaymentAttempt.payment_id.in_(ids))),
                   ("refund", select(Refund.id, Refund.status).where(Refund.payment_id.in_(ids))))
        for kind, query in queries:
            for row_id, status in session.execute(query):
                seen = self.history[(kind, row_id)]
                if not seen or seen[-1] != status:
                    seen.append(status)

    def _settle(self, ref: AttemptRef) -> PaymentStatus:
        status = ref.adapter.fetch_status(ref.provider_ref)
        ref.reports.append(status)
        settle_attempt(self.session, ref.adapter.name, status, actor="poller")
        return status

    def _pick(self, items: list[Any], index: int) -> Any:
        return items[index % len(items)]

    def _payments(self) -> list[Payment]:
        query = select(Payment).where(Payment.id.in_(self._payment_ids)).order_by(Payment.id)
        return list(self._fresh().scalars(query).unique())

    def _refunds(self, *statuses: str) -> list[Refund]:
        query = select(Refund).where(Refund.payment_id.in_(self._payment_ids)).order_by(Refund.id)
        if statuses:
            query = query.where(Refund.status.in_(statuses))
        return list(self._fresh().scalars(query))

    def _open(self, slip: SlipRef, channel: str) -> None:
        live = self._fresh().get(Slip, (slip.id, slip.municipality_id))
        assert live is not None

        def call() -> None:
            started = start_payment(self.session, self.by_channel, municipality_id=slip.municipality_id,
                                    slip_number=slip.number, channel=channel,
                                    return_url="https://pay.example/return", cancel_url="https://pay.example/cancel",
                                    fee_schedules=self.app.config["FEE_SCHEDULES"], actor="resident")
            assert started.payment.status == "open" and started.attempt.status == "pending"
            assert started.payment.amount == slip.amount and started.attempt.provider_ref
            self.attempts.append(AttemptRef(started.attempt.id, started.payment.id, channel, self.by_channel[channel],
                                            started.attempt.provider_ref))

        code = _code_of(call)
        if live.status == "paid":
            assert code == "slip_paid", "a paid slip must not be offered for payment again"
            return
        assert code is None
        ref = self.attempts[-1]
        assert self._settle(ref).outcome is Outcome.PENDING  # the poller looks before the resident pays
        attempt = by_id(self._fresh(), PaymentAttempt, ref.attempt_id)
        assert attempt is not None and attempt.status == "pending"

    def _pay(self, ref: AttemptRef) -> None:
        if ref.channel == "card":
            ref.adapter.simulator.simulate_payment(ref.provider_ref, "paid")
        else:
            ref.adapter.simulator.simulate_payment(ref.provider_ref, "COMPLETED")
        ref.provider_open = False
        status = self._settle(ref)
        assert status.outcome is Outcome.SUCCEEDED
        session = self._fresh()
        attempt, payment = by_id(session, PaymentAttempt, ref.attempt_id), by_id(session, Payment, ref.payment_id)
        assert attempt is not None and payment is not None
        assert attempt.status == "succeeded" and payment.status == "succeeded"
        assert payment.applied != payment.overpaid, "an accepted payment is either booked or an overpayment"

    # -- residents and providers -----------------------------------------------------------------

    @initialize(channel=st.sampled_from(["card", "paypay"]))
    def a_resident_has_paid_a_slip(self, channel: str) -> None:
        """Start each example with money accepted, so refunds are reachable in few steps."""
        self.slips.append(self.pool.take())
        self._open(self.slips[-1], channel)
        self._pay(self.attempts[-1])

    @precondition(lambda self: sum(a.provider_open for a in self.attempts) < 3)  # leave steps for the rest
    @rule(which=st.sampled_from(["unpaid", "fresh", "any"]), slip_index=st.integers(min_value=0),
          channel=st.sampled_from(["card", "paypay"]))
    def open_a_payment(self, which: str, slip_index: int, channel: str) -> None:
        """Open a payment of a slip not yet paid (a second payment may follow), a fresh one, or any (paid: refused)."""
        issued = set(self._fresh().scalars(select(Slip.id).where(Slip.id.in_([s.id for s in self.slips]),
                                                                 Slip.status == "issued")))
        unpaid = [s for s in self.slips if s.id in issued]
        candidates = {"unpaid": unpaid, "fresh": [], "any": self.slips}[which]
        if not candidates:
            self.slips.append(self.pool.take())
            candidates = self.slips[-1:]
        self._open(self._pick(candidates, slip_index), channel)

    @precondition(lambda self: any(a.provider_open for a in self.attempts))
    @rule(index=st.integers(min_value=0))
    def the_resident_pays(self, index: int) -> None:
        self._pay(self._pick([a for a in self.attempts if a.provider_open], index))

    @precondition(lambda self: any(a.provider_open for a in self.attempts))
    @rule(index=st.integers(min_value=0), outcome=st.sampled_from(["declined", "expired"]))
    def the_provider_reports_a_decline_or_an_expiry(self, index: int, outcome: str) -> None:
        ref = self._pick([a for a in self.attempts if a.provider_open], index)
        before = by_id(self._fresh(), PaymentAttempt, ref.attempt_id)
        assert before is not None
        was = before.status
        if ref.channel == "card":
            ref.adapter.simulator.simulate_payment(ref.provider_ref, "declined" if outcome == "declined" else "expire")
            ref.provider_open = outcome == "declined"  # Checkout keeps the page open after a decline
        else:
            ref.adapter.simulator.simulate_payment(ref.provider_ref, "FAILED" if outcome == "declined" else "EXPIRED")
            ref.provider_open = False
        status = self._settle(ref)
        attempt = by_id(self._fresh(), PaymentAttempt, ref.attempt_id)
        payment = by_id(self.session, Payment, ref.payment_id)
        assert attempt is not None and payment is not None
        expected = {Outcome.PENDING: was, Outcome.FAILED: "failed", Outcome.EXPIRED: "expired"}[status.outcome]
        assert attempt.status == expected
        assert payment.status == "open" and not payment.applied and not payment.overpaid

    @precondition(lambda self: any(a.reports for a in self.attempts))
    @rule(index=st.integers(min_value=0), report=st.integers(min_value=0))
    def a_late_or_repeated_report_changes_nothing(self, index: int, report: int) -> None:
        ref = self._pick([a for a in self.attempts if a.reports], index)
        status = self._pick(ref.reports, report)
        before = self._snapshot()
        settle_attempt(self.session, ref.adapter.name, status, actor="webhook")
        assert self._snapshot() == before

    # -- staff ------------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.attempts))
    @rule(index=st.integers(min_value=0), any_payment=RARELY, requester=st.sampled_from(STAFF),
          kind=st.sampled_from(["share", "all_available", "share", "one_yen_more", "more_than_paid"]),
          percent=st.integers(1, 100))
    def staff_request_a_refund(self, index: int, any_payment: bool, requester: str, kind: str, percent: int) -> None:
        """Request a refund of a share of a (usually paid) payment, all that is left, or more (refused)."""
        payments = self._payments()
        paid = [] if any_payment else [p for p in payments if p.status in PAID_FAMILY]
        payment = self._pick(paid or payments, index)
        whole = payment.amount + payment.fee_amount
        available = refundable(self.session, payment)
        amount = {"share": max(1, whole * percent // 100), "all_available": available,
                  "one_yen_more": available + 1, "more_than_paid": whole + percent}[kind]
        refunds_before = len(self._refunds())
        code = _code_of(lambda: request_refund(self.session, payment.municipality_id, payment.id, amount,
                                               reason="staff refund",
                                               requested_by=requester))
        if payment.status not in ("succeeded", "partially_refunded"):
            assert code == "payment_not_refundable"
        elif not 0 < amount <= available:
            assert code == "refund_exceeds_payment"
        else:
            assert code is None
        assert len(self._refunds()) == refunds_before + (code is None)

    @precondition(lambda self: bool(self._refunds()))
    @rule(index=st.integers(min_value=0), any_refund=RARELY,
          decision=st.sampled_from(["approve", "approve", "reject"]), decider=st.sampled_from(STAFF))
    def a_second_person_approves_or_rejects_a_refund(self, index: int, any_refund: bool, decision: str,
                                                     decider: str) -> None:
        """Decide a (usually requested) refund; deciding one already decided is refused."""
        refund = self._pick(([] if any_refund else self._refunds("requested")) or self._refunds(), index)
        if decider == refund.requested_by:
            decider = STAFF[(STAFF.index(decider) + 1) % len(STAFF)]
        was, approve = refund.status, decision == "approve"
        code = _code_of(lambda: decide_refund(self.session, refund.municipality_id, refund.id, approve=approve,
                                              decided_by=decider))
        after = by_id(self._fresh(), Refund, refund.id)
        assert after is not None
        if was == "requested":
            assert code is None
            assert after.status == ("approved" if approve else "rejected")
            assert after.approved_by == (decider if approve else None)
        else:
            assert code == "illegal_transition" and after.status == was

    @precondition(lambda self: bool(self._refunds("requested")))
    @rule(index=st.integers(min_value=0))
    def the_requester_cannot_approve_their_own_refund(self, index: int) -> None:
        refund = self._pick(self._refunds("requested"),
                            index)
        code = _code_of(lambda: decide_refund(self.session, refund.municipality_id, refund.id, approve=True,
                                              decided_by=refund.requested_by))
        assert code == "four_eyes_required"
        after = by_id(self._fresh(), Refund, refund.id)
        assert after is not None and after.status == "requested" and after.approved_by is None

    @precondition(lambda self: bool(self._refunds()))
    @rule(index=st.integers(min_value=0), any_refund=RARELY)
    def an_approved_refund_is_carried_out_by_the_provider(self, index: int, any_refund: bool) -> None:
        """Carry out a (usually approved) refund at the provider; one not approved is refused.

        PayPay accepts a refund as pending (CREATED) and finishes it later: the refund stays
        `processing` with the provider's id, and nothing is counted as refunded until then.
        """
        candidates = ([] if any_refund else self._refunds("approved")) or self._refunds()
        refund = self._pick(candidates, index)
        self._carry_out(refund, actor="treasurer")

    @precondition(lambda self: bool(self._refunds("processing")))
    @rule(index=st.integers(min_value=0))
    def the_janitor_asks_after_a_refund_left_processing(self, index: int) -> None:
        """A pending refund is asked after (same key, the provider's id) and finishes once."""
        self._carry_out(self._pick(self._refunds("processing"), index), actor="janitor")

    def _carry_out(self, refund: Refund, *, actor: str) -> None:
        was, payment_before = refund.status, by_id(self._fresh(), Payment, refund.payment_id)
        assert payment_before is not None
        refunded_before = payment_before.refunded_amount
        code = _code_of(lambda: execute_refund(self.session, self.adapters, refund.municipality_id, refund.id,
                                               actor=actor))
        after, payment = by_id(self._fresh(), Refund, refund.id), by_id(self.session, Payment, refund.payment_id)
        assert after is not None and payment is not None
        if was not in ("approved", "failed", "processing"):
            assert code == "illegal_transition", "only an approved refund is carried out"
            assert after.status == was and payment.refunded_amount == refunded_before
            return
        assert code is None and after.provider_ref
        if after.status == "processing":  # accepted as pending: nothing refunded yet
            assert payment.refunded_amount == refunded_before and payment.status == payment_before.status
            return
        assert after.status == "succeeded"
        assert payment.refunded_amount == refunded_before + refund.amount
        whole = payment.amount + payment.fee_amount
        assert payment.status == ("refunded" if payment.refunded_amount == whole else "partially_refunded")

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def statuses_are_known_and_terminal_states_are_left_never(self) -> None:
        self._observe()
        for (kind, row_id), seen in self.history.items():
            machine: Machine = MACHINE_OF[kind]
            assert set(seen) <= set(machine.states), (kind, row_id, seen)
            for status in seen[:-1]:
                assert status not in machine.terminal, f"{kind} {row_id} left terminal state {status}: {seen}"

    @invariant()
    def each_instalment_is_paid_once_and_every_further_payment_is_an_overpayment_for_the_core_system(self) -> None:
        session, assessment_ids = self._fresh(), self._assessment_ids
        amounts = dict(session.execute(select(Assessment.id, Assessment.amount)
                                       .where(Assessment.id.in_(assessment_ids))).all())
        paid_slips = set(session.scalars(select(Slip.assessment_id).where(Slip.assessment_id.in_(assessment_ids),
                                                                          Slip.status == "paid")))
        system_refunds = {r.payment_id for r in self._refunds() if r.requested_by == "system"}
        overpayments = set(session.scalars(select(ReceiptRecord.payment_id).where(
            ReceiptRecord.payment_id.in_(self._payment_ids), ReceiptRecord.kind == "overpayment",
            ReceiptRecord.reason == "double_payment")))
        by_assessment: dict[int, list[Payment]] = {a: [] for a in assessment_ids}
        for payment in self._payments():
            by_assessment[payment.assessment_id].append(payment)
        for assessment_id, payments in by_assessment.items():
            applied = [p for p in payments if p.applied]
            paid = [p for p in payments if p.status in PAID_FAMILY]
            assert len(applied) <= 1, f"assessment {assessment_id} booked {len(applied)} times"
            assert sum(p.amount for p in applied) <= amounts[assessment_id]
            assert all(p.status in PAID_FAMILY for p in applied), "only accepted money is booked"
            assert len(applied) == (1 if paid else 0), "accepted money must book the instalment"
            for payment in paid:
                if not payment.applied:
                    assert payment.overpaid, f"payment {payment.id} accepted but neither booked nor overpaid"
                    assert payment.id in overpayments, f"overpayment {payment.id} never goes to the core system"
                    assert payment.id not in system_refunds, "fund 02 leaves 充当 or 還付 to the core system"
            for payment in payments:
                if payment.status not in PAID_FAMILY:
                    assert not payment.applied and not payment.overpaid and payment.accepted_at is None
            assert (assessment_id in paid_slips) == bool(applied), "the slip is paid exactly when booked"

    @invariant()
    def refunds_never_exceed_what_was_paid_and_are_booked_exactly(self) -> None:
        refunds: dict[int, list[Refund]] = defaultdict(list)
        for refund in self._refunds():
            refunds[refund.payment_id].append(refund)
        for payment in self._payments():
            whole = payment.amount + payment.fee_amount
            mine = refunds[payment.id]
            assert 0 <= payment.refunded_amount <= whole
            assert payment.refunded_amount == sum(r.amount for r in mine if r.status == "succeeded")
            assert sum(r.amount for r in mine if r.status in COMMITTED_REFUNDS) <= whole
            assert all(r.approved_by != r.requested_by for r in mine)
            expected = {0: "succeeded", whole: "refunded"}.get(payment.refunded_amount, "partially_refunded")
            if payment.status in PAID_FAMILY:
                assert payment.status == expected, (payment.id, payment.status, payment.refunded_amount, whole)
            else:
                assert payment.refunded_amount == 0 and not mine

    @invariant()
    def an_accepted_payment_has_exactly_one_succeeded_attempt(self) -> None:
        succeeded: dict[int, int] = defaultdict(int)
        query = select(PaymentAttempt).where(PaymentAttempt.payment_id.in_(self._payment_ids))
        for attempt in self._fresh().scalars(query):
            succeeded[attempt.payment_id] += attempt.status == "succeeded"
        for payment in self._payments():
            assert succeeded[payment.id] == (1 if payment.status in PAID_FAMILY else 0), payment.id


def test_the_payment_lifecycle_keeps_money_booked_once_and_refunds_bounded_under_any_sequence_of_events(
        app: Flask, database: Database, cipher: DataCipher) -> None:
    pool = SlipPool(database, cipher)
    run_state_machine_as_test(lambda: PaymentLifecycle(app, database, pool), settings=settings(
        max_examples=50, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
