"""The core system's status feed: instalments paid elsewhere or cancelled are closed, and money for them is kept.

`kokin ledger import FILE --layout kokin-status-csv`: validated whole, applied whole,
idempotent; a closed slip is refused by the API and the pay page; money that still
arrives for it (a card notification, an agency 速報) is kept, not applied, and raised.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from adapters.agency.simulator import StorePayment, files_by_day, schedule
from domain import layouts
from gateway.cli import cli
from gateway.config import load_settings
from gateway.db import utcnow
from gateway.errors import GatewayError, LedgerFileRejected
from gateway.models import Assessment, Event, LedgerImport, Municipality, Payment, ReconException, Refund, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.agency_import import import_agency_file
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips
from gateway.services.status_import import StatusImportResult, import_status_changes
from reconciliation.balance import balance
from reconciliation.receipts import export_next, load_receipts_layout
from tests.card import open_card_payment, pay_by_card
from tests.rows import by_id

PAYING = ("slips:read", "payments:write")  # the API key of a kiosk or an app that takes payments

CODE = "131075"
CLIENT = "13107"
CHIYODA = "131016"  # a second ward
HEADER = "municipality_code,assessment_id,installment,status,changed_on,channel"


def _instalment(key: str, installment: int = 1, amount: int = 5_000) -> dict[str, Any]:
    return dict(municipality_code=CODE, assessment_id=key, fund_code="02", fiscal_year=2026, installment=installment,
                payer_ref="0000000001", payer_name="墨田　太郎", amount=amount, due_date=date(2026, 6, 30))


@pytest.fixture
def slips(session, cipher) -> dict[str, Slip]:  # type: ignore[no-untyped-def]
    """Three assessments of 131075, the second in two instalments; their slips issued: {key/instalment: slip}."""
    rows = [_instalment("A-1"), _instalment("A-2", 1, 6_000), _instalment("A-2", 2, 6_000), _instalment("A-3")]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    return {f"{s.assessment.source_key}/{s.assessment.installment}": s
            for s in session.scalars(select(Slip).order_by(Slip.id)).unique()}


def status_file(*lines: str, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + "\n".join([HEADER, *lines]) + "\n").encode("utf-8")


def _import(session, data: bytes, name: str = "status.csv") -> StatusImportResult:  # type: ignore[no-untyped-def]
    return import_status_changes(session, data, filename=name)


def _state(session) -> dict[str, list[tuple[Any, ...]]]:  # type: ignore[no-untyped-def]
    """Every row the feed could change, read with SQL of its own."""
    session.rollback()

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(str(v) if isinstance(v, date) else v for v in row) for row in session.execute(text(sql))]
    return {"assessments": rows("SELECT id, closed_reason, closed_on, closed_channel, closed_import_id, updated_at "
                                "FROM assessments ORDER BY id"),
            "slips": rows("SELECT id, status FROM slips ORDER BY id"),
            "events": rows("SELECT id FROM events ORDER BY id"),
            "exceptions": rows("SELECT id FROM recon_exceptions ORDER BY id"),
            "imports": rows("SELECT id FROM ledger_imports ORDER BY id")}


def _kinds(session, after: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(e.kind, e.subject_id) for e in session.scalars(select(Event).where(Event.id > after).order_by(Event.id))]


def _last_event(session) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalar(select(func.max(Event.id))) or 0)


def test_a_status_file_closes_each_instalment_and_its_slips_with_an_event_each(session, slips) -> None:  # type: ignore[no-untyped-def]
    before = _last_event(session)
    result = _import(session, status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank",
                                          f"{CODE},A-2,2,cancelled,2026-07-01,", bom=True))

    assert (result.records, result.closed, result.changed, result.unchanged, result.closed_slips) == (2, 2, 0, 0, 2)
    assert result.raised == Counter()
    session.expire_all()
    closed = {(a.source_key, a.installment): (a.closed_reason, a.closed_on, a.closed_channel)
              for a in session.scalars(select(Assessment)).unique()}
    assert closed == {("A-1", 1): ("paid_elsewhere", date(2026, 6, 20), "bank"),
                      ("A-2", 1): (None, None, None),
                      ("A-2", 2): ("cancelled", date(2026, 7, 1), None),
                      ("A-3", 1): (None, None, None)}
    assert {key: by_id(session, Slip, slip.id).status for key, slip in slips.items()} == {
        "A-1/1": "closed", "A-2/1": "issued", "A-2/2": "closed", "A-3/1": "issued"}
    a1, a22 = slips["A-1/1"], slips["A-2/2"]
    assert _kinds(session, before) == [
        ("assessment.closed", str(a1.assessment_id)), ("slip.closed", f"{a1.number}-0"),
        ("assessment.closed", str(a22.assessment_id)), ("slip.closed", f"{a22.number}-0"),
        ("ledger.status_imported", str(session.scalar(select(func.max(LedgerImport.id)))))]
    event = session.scalar(select(Event).where(Event.kind == "assessment.closed").order_by(Event.id))
    assert event.data == {"reason": "paid_elsewhere", "closed_on": "2026-06-20", "channel": "bank"}


def test_the_same_file_twice_and_a_status_already_recorded_change_nothing(session, slips) -> None:  # type: ignore[no-untyped-def]
    first = status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank")
    assert _import(session, first).closed == 1
    state = _state(session)

    again = _import(session, first)
    assert again.already_imported and again.unchanged == 1
    assert _state(session) == state

    # Another file (another day's feed) repeating the recorded status, with one new close.
    later = _import(session, status_file(f"{CODE},A-3,1,cancelled,2026-07-02,",
                                         f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank"))
    assert (later.closed, later.changed, later.unchanged, later.closed_slips) == (1, 0, 1, 1)
    session.expire_all()
    a1 = by_id(session, Assessment, slips["A-1/1"].assessment_id)
    first_status_file = select(func.min(LedgerImport.id)).where(LedgerImport.layout == "kokin-status-csv")
    assert a1.closed_import_id == session.scalar(first_status_file)  # the first file closed it


def test_a_corrected_status_is_recorded_with_what_it_was(session, slips) -> None:  # type: ignore[no-untyped-def]
    _import(session, status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank"))
    before = _last_event(session)
    corrected = _import(session, status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-19,direct_debit"))

    assert (corrected.closed, corrected.changed, corrected.closed_slips) == (0, 1, 0)
    event = session.scalar(select(Event).where(Event.id > before, Event.kind == "assessment.close_changed"))
    assert event.data == {"reason": "paid_elsewhere", "closed_on": "2026-06-19", "channel": "direct_debit",
                          "before": {"reason": "paid_elsewhere", "closed_on": "2026-06-20", "channel": "bank"}}


def test_a_file_of_two_wards_records_each_wards_counts_on_its_own_event(app, session, cipher, slips) -> None:  # type: ignore[no-untyped-def]
    sumida = load_settings()["MUNICIPALITIES"][0]
    seed_reference_data(session, [dict(sumida, code=CHIYODA, name="千代田区", name_kana="ﾁﾖﾀﾞｸ",
                                       company_code="913101", client_code="13101", counters=[], fee_items=[])])
    chiyoda = [dict(_instalment(key), municipality_code=CHIYODA) for key in ("C-1", "C-2", "C-3")]
    import_ledger(session, cipher, ledger_file_bytes(chiyoda, "kokin-csv", date(2026, 4, 1)), filename="chiyoda.csv")
    issue_slips(session, CHIYODA)
    pay_by_card(app, session, slips["A-3/1"])
    before = _last_event(session)

    data = status_file(f"{CHIYODA},C-1,1,cancelled,2026-06-20,",
                       f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank",
                       f"{CHIYODA},C-2,1,paid_elsewhere,2026-06-21,eltax",
                       f"{CODE},A-3,1,paid_elsewhere,2026-06-21,cashier",
                       f"{CHIYODA},C-3,1,cancelled,2026-06-22,")
    _import(session, data)

    wards = dict(session.execute(select(Municipality.id, Municipality.code)).all())
    imported = {wards[e.municipality_id]: e.data for e in session.scalars(
        select(Event).where(Event.id > before, Event.kind == "ledger.status_imported"))}
    counts = {code: {k: data[k] for k in ("records", "closed", "changed", "unchanged", "closed_slips", "exceptions")}
              for code, data in imported.items()}
    assert counts == {
        CODE: {"records": 2, "closed": 2, "changed": 0, "unchanged": 0, "closed_slips": 1,  # A-3's slip stays paid
               "exceptions": {"double_payment": 1}},
        CHIYODA: {"records": 3, "closed": 3, "changed": 0, "unchanged": 0, "closed_slips": 3, "exceptions": {}}}
    # The same bytes again: known by the wards its lines name, its lines counted over both.
    again = _import(session, data, name="again.csv")
    assert (again.already_imported, again.records, again.unchanged) == (True, 5, 5)


def test_a_bad_status_file_names_every_error_and_changes_nothing(session, cipher, slips) -> None:  # type: ignore[no-untyped-def]
    more = [_instalment(f"C-{n}") for n in range(1, 5)]
    import_ledger(session, cipher, ledger_file_bytes(more, "kokin-csv", date(2026, 4, 1)), filename="more.csv")
    tomorrow = (datetime.now().date() + timedelta(days=2)).isoformat()
    state = _state(session)
    data = status_file(
        f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank",  # 2: good
        "131076,A-1,1,cancelled,2026-06-20,",  # 3: wrong check digit
        "131083,A-1,1,cancelled,2026-06-20,",  # 4: not configured
        f"{CODE},NOPE,1,cancelled,2026-06-20,",  # 5: unknown assessment
        f"{CODE},A-2,3,cancelled,2026-06-20,",  # 6: unknown instalment
        f"{CODE},A-3,1,cancelled,2026-6-20,",  # 7: bad date
        f"{CODE},A-3,1,cancelled,{tomorrow},",  # 8: in the future
        f"{CODE},C-1,1,refunded,2026-06-20,",  # 9: unknown status
        f"{CODE},C-2,1,paid_elsewhere,2026-06-20,",  # 10: paid elsewhere without a channel
        f"{CODE},C-3,1,paid_elsewhere,2026-06-20,card",  # 11: a channel the feed does not know
        f"{CODE},C-4,1,cancelled,2026-06-20,bank",  # 12: a cancellation with a channel
        f"{CODE},NADA,1,cancelled,2026-06-20,bank",  # 13: unknown, and a cancellation with a channel
        f"{CODE},A-1,1,cancelled,2026-06-21,",  # 14: duplicate of line 2
        f"{CODE},A-3,1,cancelled,2026-06-20",  # 15: a column short
    )
    with pytest.raises(LedgerFileRejected) as rejected:
        _import(session, data)

    found = {(e.line, e.field) for e in rejected.value.errors}
    assert found == {(3, "municipality_code"), (4, "municipality_code"), (5, "assessment_id"), (6, "installment"),
                     (7, "changed_on"), (8, "changed_on"), (9, "status"), (10, "channel"), (11, "channel"),
                     (12, "channel"), (13, "assessment_id"), (13, "channel"), (14, "assessment_id"), (15, None)}
    messages = {e.line: str(e) for e in rejected.value.errors if e.field != "channel"}
    assert "has no instalment 3 (it has 1, 2)" in messages[6]
    assert "duplicate of line 2" in messages[14]
    assert messages[13] == "line 13, field assessment_id: assessment NADA is not in the ledger"
    assert "later than today" in messages[8]
    assert "line 12, field channel: must be empty for a cancellation, got 'bank'" in rejected.value.details["errors"]
    assert rejected.value.code == "ledger_file_rejected" and "nothing was applied" in rejected.value.message
    assert _state(session) == state


def test_an_assessments_layout_and_a_status_layout_are_not_mixed_up(session, cipher, slips) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GatewayError) as wrong:
        import_ledger(session, cipher, status_file(f"{CODE},A-1,1,cancelled,2026-06-20,"), filename="s.csv",
                      layout_name="kokin-status-csv")
    assert wrong.value.code == "not_an_assessments_layout"
    with pytest.raises(GatewayError) as other:
        import_status_changes(session, b"", filename="x.csv", layout_name="kokin-csv")
    assert other.value.code == "not_a_status_layout"


def test_an_instalment_closed_before_its_slip_was_issued_gets_none(session, cipher) -> None:  # type: ignore[no-untyped-def]
    rows = [_instalment("B-1"), _instalment("B-2")]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    _import(session, status_file(f"{CODE},B-1,1,cancelled,2026-05-01,"))

    assert issue_slips(session, CODE).issued == 1
    assert [s.assessment.source_key for s in session.scalars(select(Slip)).unique()] == ["B-2"]


# -- a closed slip takes no payment -----------------------------------------------------------------

@pytest.fixture
def headers(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {create_api_key(session, 'kiosk', CODE, actor='test', scopes=PAYING)}"}


def _pay(client: Any, headers: dict[str, str], slip: Slip, key: str) -> Any:
    return client.post("/api/v1/payments", headers={**headers, "Idempotency-Key": key},
                       json={"slip_number": slip.number, "channel": "card", "return_url": "https://ward.test/done"})


def _pay_form(client: Any, token: str) -> dict[str, str]:
    html = client.get(f"/pay/{token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert csrf and nonce
    return {"csrf_token": csrf[1], "nonce": nonce[1]}


def test_a_slip_paid_elsewhere_is_refused_by_the_api_and_the_pay_page(client, headers, session, slips) -> None:  # type: ignore[no-untyped-def]
    slip = slips["A-1/1"]
    form = _pay_form(client, slip.pay_token)  # a page opened before the close
    _import(session, status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank"))

    refused = _pay(client, headers, slip, "k-1")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "slip_not_payable"
    assert refused.json["error"]["details"] == {"closed_reason": "paid_elsewhere", "closed_on": "2026-06-20"}
    shown = client.get(f"/api/v1/slips/{slip.number}", headers=headers).json
    assert (shown["status"], shown["closed_reason"], shown["closed_on"]) == ("closed", "paid_elsewhere", "2026-06-20")
    listed = client.get("/api/v1/slips?status=closed", headers=headers).json
    assert [s["number"] for s in listed] == [slip.number]

    page = client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    assert "令和8年6月20日（土）に金融機関・窓口・口座振替など別の方法で納付済み" in page
    assert "お支払い不要" in page and "<form" not in page and "<button" not in page
    late = client.post(f"/pay/{slip.pay_token}/card", data=form)
    assert late.status_code == 409 and "納付済み" in late.get_data(as_text=True)
    english = client.get(f"/pay/{slip.pay_token}?lang=en").get_data(as_text=True)
    assert "paid on Sat 20 June 2026 another way" in english
    assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_a_cancelled_slip_says_so_on_the_pay_page(client, session, slips) -> None:  # type: ignore[no-untyped-def]
    slip = slips["A-3/1"]
    _import(session, status_file(f"{CODE},A-3,1,cancelled,2026-07-01,"))

    page = client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    assert "この納付書の賦課は令和8年7月1日（水）に取り消されました" in page and "<form" not in page
    result = client.get(f"/pay/{slip.pay_token}/result").get_data(as_text=True)
    assert 'data-state="closed"' in result and "取り消されました" in result


# -- money that still arrives is kept and raised ----------------------------------------------------

def _exceptions(session) -> list[tuple[str, int | None, int]]:  # type: ignore[no-untyped-def]
    """The exceptions raised, but for lateness (the test's due dates may be past on the day it runs)."""
    session.expire_all()
    raised = session.scalars(select(ReconException).order_by(ReconException.id))
    return [(e.kind, e.payment_id, e.amount) for e in raised if not e.kind.startswith("paid_after_")]


def test_a_card_success_for_a_checkout_opened_before_the_close_is_kept_and_raised_as_a_double_payment(  # type: ignore[no-untyped-def]
        app, client, session, slips) -> None:
    slip = slips["A-1/1"]
    started = open_card_payment(app, session, slip)
    _import(session, status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank"))
    stripe = app.extensions["kokin.adapters"]["stripe"]
    ref = started.attempt.provider_ref
    stripe.simulator.simulate_payment(ref, "paid")
    for delivery_headers, body in stripe.simulator.events_for(ref, utcnow()):  # the notification path
        assert client.post("/webhooks/stripe", data=body, headers=delivery_headers).status_code == 200

    session.expire_all()
    payment = by_id(session, Payment, started.payment.id)
    assert (payment.status, payment.applied, payment.overpaid) == ("succeeded", False, False)
    assert _exceptions(session) == [("double_payment", payment.id, 5_000)]
    assert session.scalar(select(func.count()).select_from(Refund)) == 0  # the core system decides 充当 or 還付
    assert by_id(session, Slip, slip.id).status == "closed"
    kept = session.scalar(select(Event).where(Event.kind == "payment.closed_slip"))
    assert kept is not None and kept.data["flags"][0] == "double_payment" and not kept.data["overpaid"]


def test_a_card_success_for_a_cancelled_claim_is_kept_as_a_payment_on_a_void_slip(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    slip = slips["A-3/1"]
    started = open_card_payment(app, session, slip)
    _import(session, status_file(f"{CODE},A-3,1,cancelled,2026-06-25,"))
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stripe.simulator.simulate_payment(started.attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(started.attempt.provider_ref), actor="test")  # polling

    session.expire_all()
    payment = by_id(session, Payment, started.payment.id)
    assert (payment.status, payment.applied) == ("succeeded", False)
    assert _exceptions(session) == [("payment_on_void_slip", payment.id, 5_000)]
    details = session.scalar(select(ReconException.details).where(ReconException.kind == "payment_on_void_slip"))
    assert details["slip_status"] == "closed"


def test_an_agency_preliminary_report_for_a_closed_slip_is_kept_and_raised(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    slip = slips["A-2/1"]
    _import(session, status_file(f"{CODE},A-2,1,paid_elsewhere,2026-06-20,cashier"))
    agency = app.extensions["kokin.agencies"]["agency-csv"]
    paid_at = datetime.combine(slip.due_date - timedelta(days=3), datetime.min.time()).replace(hour=10)
    (data,) = files_by_day(agency, [s for s in schedule([StorePayment(slip.barcode, paid_at, "0001234", "820")])
                                    if s.kind == "preliminary"], client_code=CLIENT).values()
    result = import_agency_file(session, agency, data, municipality_code=CODE, filename="sokuho.csv", source="test",
                                actor="test")

    assert result.booked == 0 and result.exceptions == Counter(double_payment=1)
    session.expire_all()
    payment = session.scalar(select(Payment))
    assert (payment.channel, payment.amount, payment.applied, payment.overpaid) == ("agency", 6_000, False, False)
    assert by_id(session, Slip, slip.id).status == "closed"
    assert session.scalar(select(func.count()).select_from(Refund)) == 0
    # ... and reaches the core system in the next file as an overpayment of a closed slip
    sent = export_next(session, CODE, actor="test")
    assert sent is not None
    ((kind, reason, amount, key),) = [(r.values["record_kind"], r.values["reason"], r.values["amount"],
                                        r.values["assessment_id"])
                                       for r in layouts.read(load_receipts_layout("receipts-csv"), sent.data)[0]]
    assert (kind, reason, amount, key) == ("overpayment", "closed_slip", 6_000, "A-2")
    exception = session.scalar(select(ReconException).where(ReconException.kind == "double_payment"))
    assert exception.resolution == "handed_to_core_system"  # the core system applies it (充当) or refunds it
    assert balance(session, CODE).difference == 0


def test_paid_elsewhere_after_the_gateway_applied_a_payment_is_recorded_and_raised_on_that_payment(  # type: ignore[no-untyped-def]
        app, session, slips) -> None:
    slip = slips["A-1/1"]
    paid = pay_by_card(app, session, slip)
    data = status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-21,direct_debit")
    result = _import(session, data)

    assert (result.closed, result.closed_slips) == (1, 0)  # the slip stays paid: the gateway's payment stands
    assert result.raised == Counter(double_payment=1)
    session.expire_all()
    assessment = by_id(session, Assessment, slip.assessment_id)
    assert (assessment.closed_reason, assessment.closed_on) == ("paid_elsewhere", date(2026, 6, 21))
    assert by_id(session, Slip, slip.id).status == "paid"
    assert _exceptions(session) == [("double_payment", paid.payment.id, 5_000)]
    exception = session.scalar(select(ReconException).where(ReconException.kind == "double_payment"))
    assert exception.business_date == date(2026, 6, 21) and exception.details["channel"] == "direct_debit"
    assert session.scalar(select(func.count()).select_from(Refund)) == 0
    assert _import(session, data, name="again.csv").already_imported
    assert len(_exceptions(session)) == 1


def test_a_store_cancel_after_the_close_leaves_the_slip_closed_not_payable(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    """Paid at a store (速報), closed as paid elsewhere, then the store cancels: the slip must not reopen.

    Found by the conservation state machine: the cancel put the paid slip back to `issued`, and
    the closed instalment's slip looked payable while the pay path refused it.
    """
    slip = slips["A-2/1"]
    agency = app.extensions["kokin.agencies"]["agency-csv"]
    paid_at = datetime.combine(slip.due_date - timedelta(days=3), datetime.min.time()).replace(hour=10)
    payment = StorePayment(slip.barcode, paid_at, "0001234", "820", records=("preliminary", "cancel"))
    files = files_by_day(agency, schedule([payment]), client_code=CLIENT)
    first, *later = sorted(files)
    import_agency_file(session, agency, files[first], municipality_code=CODE, filename="sokuho.csv", source="test",
                       actor="test")
    session.expire_all()
    assert by_id(session, Slip, slip.id).status == "paid"
    _import(session, status_file(f"{CODE},A-2,1,paid_elsewhere,2026-06-20,cashier"))
    for n, day in enumerate(later):
        import_agency_file(session, agency, files[day], municipality_code=CODE, filename=f"later-{n}.csv",
                           source="test", actor="test")
    session.expire_all()
    assert session.scalar(select(Payment.status)) == "cancelled"
    assert by_id(session, Slip, slip.id).status == "closed"


def test_cancelled_after_the_gateway_applied_a_payment_raises_a_payment_on_a_void_slip(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    paid = pay_by_card(app, session, slips["A-3/1"])
    assert _import(session, status_file(f"{CODE},A-3,1,cancelled,2026-07-01,")).raised == Counter(
        payment_on_void_slip=1)
    assert _exceptions(session) == [("payment_on_void_slip", paid.payment.id, 5_000)]


def test_the_command_imports_a_status_file_once(app, session, slips, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "status-20260701.csv"
    path.write_bytes(status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,bank", f"{CODE},A-3,1,cancelled,2026-06-30,"))
    runner = app.test_cli_runner()

    first = runner.invoke(cli, ["ledger", "import", str(path), "--layout", "kokin-status-csv"])
    assert first.exit_code == 0, first.output
    assert "2 status changes (2 instalments closed, 0 corrected, 0 unchanged; 2 slips closed" in first.output
    again = runner.invoke(cli, ["ledger", "import", str(path), "--layout", "kokin-status-csv"])
    assert again.exit_code == 0 and "already imported (2 status changes); nothing changed" in again.output

    bad = tmp_path / "bad.csv"
    bad.write_bytes(status_file(f"{CODE},A-1,1,paid_elsewhere,2026-06-20,"))
    refused = runner.invoke(cli, ["ledger", "import", str(bad), "--layout", "kokin-status-csv"])
    assert refused.exit_code != 0
    assert "line 2, field channel" in refused.output and "nothing was applied" in refused.output
