"""A newcomer pays a slip by hand in a browser: the card button, the simulated Checkout, the webhook."""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import Slip, WebhookDelivery
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from tests.rows import by_id

RESIDENT_TAX = dict(municipality_code="131075", assessment_id="01-2026-0000000001", fund_code="01",
                    fiscal_year=2026, installment=1, payer_ref="0000000001", payer_name="墨田　花子",
                    amount=12_300, due_date=date(2026, 6, 30))


@pytest.fixture
def slip(session, cipher) -> Slip:  # type: ignore[no-untyped-def]
    import_ledger(session, cipher, ledger_file_bytes([RESIDENT_TAX], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, "131075")
    found = session.scalar(select(Slip))
    assert found is not None
    return found  # type: ignore[no-any-return]


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def test_a_resident_pays_by_card_on_the_simulated_checkout_and_the_slip_is_paid(  # type: ignore[no-untyped-def]
        live_server, phone, session, slip, tmp_path) -> None:
    phone.goto(f"{live_server}/pay/{slip.pay_token}")
    phone.get_by_role("button", name="クレジットカードで支払う").click()
    phone.wait_for_url(re.compile(r".*/sandbox/stripe/checkout/cs_test_\w+$"))
    assert phone.get_by_role("heading", level=1).inner_text().startswith("カードでのお支払い")
    phone.get_by_label("カード番号").fill("4242 4242 4242 4242")
    phone.get_by_label("有効期限").fill("12 / 34")
    phone.get_by_label("セキュリティコード").fill("123")
    _shot(phone, tmp_path, "sandbox-checkout")
    phone.get_by_role("button", name=re.compile("支払う")).click()
    phone.wait_for_url(re.compile(rf".*/pay/{slip.pay_token}/result$"))
    assert phone.locator('[data-state="paid"]').is_visible()
    session.expire_all()
    assert by_id(session, Slip, slip.id).status == "paid"
    assert "checkout.session.completed" in set(session.scalars(select(WebhookDelivery.event_type)))

    phone.goto(f"{live_server}/sandbox/")
    assert phone.get_by_role("heading", name=re.compile("Stripe Checkout")).is_visible()
    assert phone.get_by_text("checkout.session.completed").first.is_visible()
    _shot(phone, tmp_path, "sandbox-console")


def test_the_3ds_card_shows_the_challenge_and_a_failure_keeps_the_slip_payable(  # type: ignore[no-untyped-def]
        live_server, phone, session, slip, tmp_path) -> None:
    phone.goto(f"{live_server}/pay/{slip.pay_token}")
    phone.get_by_role("button", name="クレジットカードで支払う").click()
    phone.wait_for_url(re.compile(r".*/sandbox/stripe/checkout/cs_test_\w+$"))
    phone.get_by_label("カード番号").fill("4000 0025 0000 3155")
    phone.get_by_label("有効期限").fill("12 / 34")
    phone.get_by_label("セキュリティコード").fill("123")
    phone.get_by_role("button", name=re.compile("支払う")).click()
    phone.wait_for_url(re.compile(r".*/authenticate$"))
    _shot(phone, tmp_path, "sandbox-3ds")
    phone.get_by_role("button", name=re.compile("認証に失敗させる")).click()
    phone.wait_for_url(re.compile(r".*error=authentication_failed$"))
    assert phone.get_by_role("alert").inner_text().startswith("本人認証に失敗")
    session.expire_all()
    assert by_id(session, Slip, slip.id).status == "issued"

