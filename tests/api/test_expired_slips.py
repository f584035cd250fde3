"""A slip past its store deadline (支払期限) is not payable online: 409 slip_expired, a page that says so."""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.models import Payment, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services import payments
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

PAYING = ("slips:read", "payments:write")  # the API key of a kiosk or an app that takes payments

CODE = "131075"
RESIDENT_TAX = dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
                    installment=1, payer_ref="0000000001", payer_name="墨田　花子", amount=12_300,
                    due_date=date(2026, 6, 30))


@pytest.fixture
def slip(session, cipher) -> Slip:  # type: ignore[no-untyped-def]
    import_ledger(session, cipher, ledger_file_bytes([RESIDENT_TAX], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, CODE)
    found = session.scalar(select(Slip))
    assert found is not None and found.store_deadline is not None
    return found  # type: ignore[no-any-return]


def _on(monkeypatch: pytest.MonkeyPatch, day: date) -> None:
    monkeypatch.setattr(payments, "business_today", lambda: day)


def _pay(client: Any, session: Any, slip: Slip, key: str) -> Any:
    headers = {"Authorization": f"Bearer {create_api_key(session, 'kiosk', CODE, actor='test', scopes=PAYING)}",
               "Idempotency-Key": key}
    return client.post("/api/v1/payments", headers=headers,
                       json={"slip_number": slip.number, "channel": "card", "return_url": "https://ward.test/done"})


def test_a_slip_is_payable_online_until_its_store_deadline_inclusive(client, session, slip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _on(monkeypatch, slip.store_deadline)

    assert _pay(client, session, slip, "k-last-day").status_code == 201


def test_the_day_after_its_store_deadline_the_api_answers_slip_expired(client, session, slip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _on(monkeypatch, slip.store_deadline + timedelta(days=1))

    response = _pay(client, session, slip, "k-late")

    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "slip_expired"
    assert error["details"] == {"store_deadline": slip.store_deadline.isoformat()}
    assert session.scalar(select(func.count()).select_from(Payment)) == 0


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_pay_page_of_an_expired_slip_asks_for_a_new_slip_and_offers_no_checkout(client, session, slip, lang,  # type: ignore[no-untyped-def]
                                                                                     monkeypatch) -> None:
    query = "?lang=en" if lang == "en" else ""
    _on(monkeypatch, slip.store_deadline)
    last_day = client.get(f"/pay/{slip.pay_token}{query}").get_data(as_text=True)
    form = re.search(r'<form[^>]*/card[^"]*">(.*?)</form>', last_day, re.S)
    assert form is not None  # the page opened on the last day, and paid the day after
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))
    _on(monkeypatch, slip.store_deadline + timedelta(days=1))

    html = client.get(f"/pay/{slip.pay_token}{query}").get_data(as_text=True)
    posted = client.post(f"/pay/{slip.pay_token}/card{query}", data=fields)

    assert 'data-testid="expired"' in html and "<form" not in html
    answer = posted.get_data(as_text=True)
    if lang == "ja":
        assert "支払期限" in html and "新しい納付書" in html and "令和8年" in html
        assert "新しい納付書の発行" in answer
    else:
        assert "Please ask the ward office for a new slip" in html and "2026" in html
        assert "ask the ward office for a new slip" in answer
    assert posted.status_code == 409
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
