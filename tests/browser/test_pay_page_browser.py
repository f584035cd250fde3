"""The pay page in a real browser at phone size: read the slip, choose PayPay, see the QR code."""
from __future__ import annotations

import os
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import PaymentAttempt, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.slips import issue_slips

CODE = "131075"
RESIDENT_TAX = dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
                    installment=1, payer_ref="0000000001", payer_name="墨田　花子", amount=12_300,
                    due_date=date(2026, 6, 30))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Set to a folder to keep the screenshots for a person to look at.
SHOTS = os.environ.get("KOKIN_SCREENSHOTS")


@pytest.fixture
def slip(session, cipher) -> Slip:  # type: ignore[no-untyped-def]
    import_ledger(session, cipher, ledger_file_bytes([RESIDENT_TAX], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, CODE)
    found = session.scalar(select(Slip))
    assert found is not None
    return found  # type: ignore[no-any-return]


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = Path(SHOTS or tmp_path) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    return path


def _open_attempt_ref(session: Any, timeout: float = 10.0) -> str:
    """Wait until the server has opened the checkout the click asked for; return its provider ref."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.rollback()  # a fresh snapshot: the server commits from another connection
        ref = session.scalar(select(PaymentAttempt.provider_ref).where(PaymentAttempt.status == "pending"))
        if ref is not None:
            return str(ref)
        time.sleep(0.05)
    raise AssertionError("the card click opened no checkout")


def test_a_resident_on_a_phone_opens_the_slip_and_gets_a_paypay_qr(live_server, phone, slip, tmp_path) -> None:  # type: ignore[no-untyped-def]
    phone.goto(f"{live_server}/pay/{slip.pay_token}")
    amount = phone.get_by_test_id("amount")
    assert amount.is_visible() and amount.inner_text() == "12,300"
    card = phone.get_by_role("button", name="クレジットカードで支払う")
    assert card.is_visible()
    box = card.bounding_box()
    assert box is not None and box["height"] >= 48 and box["width"] <= 390  # a tap target, inside the screen
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    _shot(phone, tmp_path, "slip")

    phone.get_by_role("button", name="PayPayで支払う").click()
    phone.wait_for_load_state()
    qr = phone.locator("[data-testid=paypay-qr] svg")
    assert qr.is_visible()
    qr_box = qr.bounding_box()
    assert qr_box is not None and qr_box["width"] >= 160  # big enough to scan from another phone
    assert phone.get_by_text("支払い完了後、このページを更新してください").is_visible()
    assert phone.get_by_role("link", name="PayPayアプリを開く").is_visible()
    shot = _shot(phone, tmp_path, "paypay-qr")
    assert shot.stat().st_size > 1000


def test_a_paid_slip_on_a_phone_says_so_without_buttons(app, live_server, phone, session, slip, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The card checkout is opened outside the browser: the provider's hosted page is not
    # reachable here (no network), and Chromium's error page for it races the next goto.
    client = app.test_client()
    page = client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    form = re.search(r'action="[^"]*/card">(.*?)</form>', page, re.S)
    assert form is not None
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))
    assert client.post(f"/pay/{slip.pay_token}/card", data=fields).status_code == 303
    ref = _open_attempt_ref(session)
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stripe.simulator.simulate_payment(ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(ref), actor="test")

    phone.goto(f"{live_server}/pay/{slip.pay_token}")
    assert phone.get_by_text("この納付書はお支払い済みです。").is_visible()
    assert phone.get_by_role("button").count() == 0
    _shot(phone, tmp_path, "paid")
    phone.goto(f"{live_server}/pay/{slip.pay_token}/result?lang=en")
    assert phone.get_by_text("Your payment is complete.").is_visible()
    _shot(phone, tmp_path, "result-en")
