"""/sandbox: a newcomer pays a slip by hand on the simulated Stripe Checkout and PayPay app pages."""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from domain.calendar import TOKYO
from gateway import create_app
from gateway.models import PaymentAttempt, SandboxObject, Slip, WebhookDelivery
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from tests.conftest import TEST_DATA_KEY
from tests.rows import by_id

CODE = "131075"
RESIDENT_TAX = dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
                    installment=2, payer_ref="0000000001", payer_name="墨田　花子", amount=12_300,
                    due_date=date(2026, 6, 30))


@pytest.fixture
def slip(session, cipher) -> Slip:  # type: ignore[no-untyped-def]
    import_ledger(session, cipher, ledger_file_bytes([RESIDENT_TAX], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, CODE)
    found = session.scalar(select(Slip))
    assert found is not None
    return found  # type: ignore[no-any-return]


def _fields(html: str, action: str | None = None) -> dict[str, str]:
    where = rf'action="[^"]*{re.escape(action)}"' if action else ""
    pattern = rf"<form[^>]*{where}[^>]*>(.*?)</form>"
    form = re.search(pattern, html, re.S)
    assert form is not None, f"no form {action or ''} on the page"
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))


def _open(client: Any, session: Any, slip: Slip, channel: str) -> tuple[Any, PaymentAttempt]:
    """Start paying from the slip's pay page; return the response and the attempt it opened."""
    fields = _fields(client.get(f"/pay/{slip.pay_token}").get_data(as_text=True), f"/{channel}")
    response = client.post(f"/pay/{slip.pay_token}/{channel}", data=fields)
    attempt = session.scalar(select(PaymentAttempt).order_by(PaymentAttempt.id.desc()).limit(1))
    session.rollback()
    return response, attempt


def _checkout(client: Any, session: Any, slip: Slip) -> tuple[str, dict[str, str]]:
    """Follow the card button to the simulated Checkout page; return its path and form fields."""
    response, attempt = _open(client, session, slip, "card")
    path = f"/sandbox/stripe/checkout/{attempt.provider_ref}"
    assert response.status_code == 303 and response.headers["Location"] == f"http://localhost{path}"
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<html lang="ja">' in html and "12,423" in html
    assert "4242 4242 4242 4242" in html and "保存されず" in html and '<label for="card_number">' in html
    return path, _fields(html, path)


def _slip_status(session: Any, slip: Slip) -> str:
    session.expire_all()
    return str(by_id(session, Slip, slip.id).status)


def test_the_test_card_4242_pays_the_slip_through_the_gateways_own_webhook(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _checkout(client, session, slip)
    response = client.post(path, data={**fields, "card_number": "4242 4242 4242 4242", "expiry": "12 / 34",
                                       "cvc": "123"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"http://localhost/pay/{slip.pay_token}/result"
    assert _slip_status(session, slip) == "paid"
    events = set(session.scalars(select(WebhookDelivery.event_type).where(WebhookDelivery.adapter == "stripe")))
    assert "checkout.session.completed" in events
    console = client.get("/sandbox/").get_data(as_text=True)
    assert "/webhooks/stripe" in console and "checkout.session.completed" in console and "complete / paid" in console
    assert "visa …4242" in console
    again = client.post(path, data={**fields, "card_number": "4242424242424242", "expiry": "12/34", "cvc": "123"})
    assert again.status_code == 409  # a completed checkout takes no second payment


def test_the_card_number_is_never_stored_nor_shown_again(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _checkout(client, session, slip)
    declined = client.post(path, data={**fields, "card_number": "4000000000000002", "expiry": "12/34", "cvc": "123"})
    assert "4000000000000002" not in declined.get_data(as_text=True)
    stored = " ".join(session.scalars(select(SandboxObject.value)))
    assert "4000000000000002" not in stored and "0002" in stored  # the last four digits only


def test_the_declining_card_leaves_the_slip_payable_and_the_page_open(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _checkout(client, session, slip)
    response = client.post(path, data={**fields, "card_number": "4000 0000 0000 0002", "expiry": "12/34",
                                       "cvc": "123"})
    html = response.get_data(as_text=True)
    assert response.status_code == 402 and 'data-error="declined"' in html and "カードが拒否されました" in html
    assert _slip_status(session, slip) == "issued"
    assert "payment_intent.payment_failed" in client.get("/sandbox/").get_data(as_text=True)
    retry = client.post(path, data={**_fields(html, path), "card_number": "4242424242424242", "expiry": "12/34",
                                    "cvc": "123"})
    assert retry.status_code == 303 and _slip_status(session, slip) == "paid"  # as on Checkout: try another card


def test_the_3ds_card_asks_for_authentication_and_pays_when_approved(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _checkout(client, session, slip)
    response = client.post(path, data={**fields, "card_number": "4000002500003155", "expiry": "12/34", "cvc": "123"})
    assert response.status_code == 303 and response.headers["Location"] == f"{path}/authenticate"
    assert _slip_status(session, slip) == "issued"  # nothing charged before the challenge
    challenge = client.get(f"{path}/authenticate").get_data(as_text=True)
    assert "本人認証" in challenge and "3-D Secure" in challenge
    approved = client.post(f"{path}/authenticate", data={**_fields(challenge), "action": "approve"})
    assert approved.status_code == 303 and approved.headers["Location"].endswith(f"/pay/{slip.pay_token}/result")
    assert _slip_status(session, slip) == "paid"
    stripe = client.application.extensions["kokin.adapters"]["stripe"].simulator
    charge = stripe.checkout_session(path.rsplit("/", 1)[1])["payment_intent"]["latest_charge"]
    assert charge["payment_method_details"]["card"]["three_d_secure"]["result"] == "authenticated"


def test_a_failed_authentication_declines_and_returns_to_the_checkout(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _checkout(client, session, slip)
    client.post(path, data={**fields, "card_number": "4000002500003155", "expiry": "12/34", "cvc": "123"})
    challenge = client.get(f"{path}/authenticate").get_data(as_text=True)
    failed = client.post(f"{path}/authenticate", data={**_fields(challenge), "action": "fail"})
    assert failed.status_code == 303 and failed.headers["Location"].endswith("?error=authentication_failed")
    assert "本人認証に失敗" in client.get(failed.headers["Location"]).get_data(as_text=True)
    assert _slip_status(session, slip) == "issued"


@pytest.mark.parametrize(("card", "expiry", "cvc", "error"), [
    ("5555555555554444", "12/34", "123", "not_a_test_card"),
    ("4242424242424242", "13/34", "123", "expiry"),
    ("4242424242424242", "01/20", "123", "expired_card"),
    ("4242424242424242", "12/34", "12", "cvc"),
])
def test_a_bad_card_form_is_refused_with_a_reason(client, session, slip, card, expiry, cvc, error) -> None:  # type: ignore[no-untyped-def]
    path, fields = _checkout(client, session, slip)
    response = client.post(path, data={**fields, "card_number": card, "expiry": expiry, "cvc": cvc})
    assert response.status_code == 422 and f'data-error="{error}"' in response.get_data(as_text=True)
    assert _slip_status(session, slip) == "issued"


def test_a_form_without_its_csrf_token_is_refused(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, _ = _checkout(client, session, slip)
    response = client.post(path, data={"csrf_token": "x" * 43, "card_number": "4242424242424242",
                                       "expiry": "12/34", "cvc": "123"})
    assert response.status_code == 400 and _slip_status(session, slip) == "issued"
    assert client.get("/sandbox/stripe/checkout/cs_test_unknown").status_code == 404


def _paypay_page(client: Any, session: Any, slip: Slip) -> tuple[str, dict[str, str]]:
    response, attempt = _open(client, session, slip, "paypay")
    path = f"/sandbox/paypay/codes/{attempt.provider_ref}"
    assert response.status_code == 200 and f"http://localhost{path}" in response.get_data(as_text=True)  # the QR's link
    html = client.get(path).get_data(as_text=True)
    assert "アプリで支払う" in html and "キャンセル" in html and '<html lang="ja">' in html
    return path, _fields(html, path)


def test_pay_in_app_pays_the_slip_and_returns_to_the_ward(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _paypay_page(client, session, slip)
    response = client.post(path, data={**fields, "action": "pay"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/pay/{slip.pay_token}/result")
    assert _slip_status(session, slip) == "paid"
    assert 'data-state="paid"' in client.get(path).get_data(as_text=True)
    console = client.get("/sandbox/").get_data(as_text=True)
    assert "/webhooks/paypay" in console and "COMPLETED" in console


def test_cancel_in_app_leaves_the_slip_payable(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    path, fields = _paypay_page(client, session, slip)
    response = client.post(path, data={**fields, "action": "cancel"})
    assert response.status_code == 303 and _slip_status(session, slip) == "issued"
    attempt = session.scalar(select(PaymentAttempt).order_by(PaymentAttempt.id.desc()).limit(1))
    assert attempt.status == "failed"
    assert client.post(path, data={**fields, "action": "pay"}).status_code == 409  # the code is spent


def test_two_app_instances_on_one_database_share_the_sandbox_providers(app, client, session, slip, db_url,  # type: ignore[no-untyped-def]
                                                                       tmp_path, monkeypatch) -> None:
    path, fields = _checkout(client, session, slip)
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    other = create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "other")})
    try:
        session_id = path.rsplit("/", 1)[1]
        stripe = other.extensions["kokin.adapters"]["stripe"]
        assert stripe.fetch_status(session_id).outcome.value == "pending"  # the other process knows the checkout
        assert other.test_client().get(path).status_code == 200
        client.post(path, data={**fields, "card_number": "4242424242424242", "expiry": "12/34", "cvc": "123"})
        assert stripe.fetch_status(session_id).outcome.value == "succeeded"
        assert stripe.settlement_report(datetime.now(TOKYO).date())[0].amount == 12_423
    finally:
        other.extensions["kokin.db"].dispose()


def test_the_sandbox_pages_exist_only_when_a_simulator_is_configured(db_url, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    production = create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "i"),
                             "ADAPTERS": {}})  # no simulator configured
    try:
        assert production.test_client().get("/sandbox/").status_code == 404
    finally:
        production.extensions["kokin.db"].dispose()
