"""Search by what a clerk has in hand: slip number, assessment id, payer reference, amount, dates; the ward's own."""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.calendar import business_date
from gateway.db import utcnow
from gateway.errors import InvalidSearch
from gateway.models import Municipality, ReconException, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services import search
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from tests.api.test_ward_isolation import B, _ward_b
from tests.card import issue_slips_to_pay, pay_by_card
from tests.staff import PASSWORD, csrf_token, log_in

CODE = "131075"


@pytest.fixture
def ward(app: Flask, session: Session, cipher: Any) -> dict[str, Any]:
    """Three slips of ward A, one paid by card and with an exception; ward B with the same payer references."""
    slips = issue_slips_to_pay(session, cipher, 3)
    paid = slips[1]
    pay_by_card(app, session, paid)
    ward_a = session.scalar(select(Municipality.id).where(Municipality.code == CODE))
    session.add(ReconException(municipality_id=ward_a, kind="missing_in_settlement", subject_key="t:1",
                               business_date=date(2026, 7, 1), amount=paid.amount, slip_number=paid.number,
                               details={}))
    seed_reference_data(session, [_ward_b()])
    rows = [dict(municipality_code=B, assessment_id=f"KOTO-{n}", fund_code="02", fiscal_year=2026, installment=1,
                 payer_ref=f"{n + 1:010d}", payer_name="江東　花子", amount=2_000 + 100 * n, due_date=date(2026, 6, 30))
            for n in range(3)]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="koto.csv")
    issue_slips(session, B)
    session.commit()
    return {"ward": ward_a, "slips": [(s.number, s.amount) for s in slips], "paid": paid.number}


def _find(session: Session, app: Flask, ward: dict[str, Any], **form: str) -> search.Found:
    return search.search(session, app.extensions["kokin.cipher"], ward["ward"], search.parse_criteria(form))


def test_each_criterion_finds_its_rows_and_nothing_of_the_other_ward(app: Flask, session: Session,
                                                                     ward: dict[str, Any]) -> None:
    (first, first_amount), (second, second_amount), _third = ward["slips"]
    by_number = _find(session, app, ward, slip_number=second)
    assert [s.number for s in by_number.slips] == [second]
    assert by_number.payments and {number for _p, number in by_number.payments} == {second}
    assert by_number.exceptions and {e.slip_number for e in by_number.exceptions} == {second}
    assert [s.number for s in _find(session, app, ward, slip_number="２" + second[1:8]).slips] != []  # full width
    by_ref = _find(session, app, ward, payer_ref="0000000002")
    assert [s.number for s in by_ref.slips] == [second] and by_ref.payments == by_number.payments
    by_id = _find(session, app, ward, assessment_id="ONCE-0000")
    assert [s.number for s in by_id.slips] == [first] and by_id.payments == []
    by_amount = _find(session, app, ward, amount=f"{first_amount:,}円")
    assert [s.number for s in by_amount.slips] == [first]
    today = business_date(utcnow()).isoformat()
    assert len(_find(session, app, ward, date_from=today, date_to=today).slips) == 3
    koto = session.scalars(select(Slip).where(Slip.municipality_id != ward["ward"])).all()
    assert {s.amount for s in koto} >= {first_amount}  # the other ward has the same amounts, numbers and references
    assert [s.municipality_id for s in by_amount.slips] == [ward["ward"]]
    assert {s.municipality_id for s in by_ref.slips} == {ward["ward"]}
    assert _find(session, app, ward, assessment_id="KOTO-1").slips == []
    assert _find(session, app, ward, payer_ref="0000000009").slips == []


@pytest.mark.parametrize(("form", "field"), [({}, "criteria"), ({"amount": "12.5"}, "amount"),
                                             ({"amount": "abc"}, "amount"), ({"slip_number": "12a"}, "slip_number"),
                                             ({"date_from": "2026-02-30"}, "date_from"),
                                             ({"date_from": "2026-07-02", "date_to": "2026-07-01"}, "date_to")])
def test_a_bad_criterion_is_named(form: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSearch) as refused:
        search.parse_criteria(form)
    assert refused.value.field == field


def test_the_search_page_keeps_the_payer_reference_out_of_urls_and_speaks_both_languages(
        app: Flask, session: Session, ward: dict[str, Any]) -> None:
    create_user(session, CODE, "acct", "accounting", PASSWORD, actor="test")
    create_user(session, CODE, "clerk", "counter_staff", PASSWORD, counter_code="resident", actor="test")
    client = app.test_client()
    log_in(client, "acct")
    assert "納付者番号" in client.get("/staff/search").get_data(as_text=True)
    token = csrf_token(client, "/staff/search")
    answer = client.post("/staff/search", data={"csrf_token": token, "payer_ref": "0000000002"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and ward["paid"] in page and 'value="0000000002"' not in page
    assert f'href="/staff/slips/{ward["paid"]}"' in page and "クレジットカード" in page
    english = client.post("/staff/search?lang=en", data={"csrf_token": token, "payer_ref": "0000000002"})
    assert "Credit card" in english.get_data(as_text=True)
    refused = client.post("/staff/search", data={"csrf_token": token, "amount": "12.5"}).get_data(as_text=True)
    assert "金額は円単位の整数です" in refused
    assert client.post("/staff/search", data={"payer_ref": "0000000002"}).status_code == 400  # no CSRF token
    clerk = app.test_client()
    log_in(clerk, "clerk")
    assert clerk.get("/staff/search").status_code == 403
