"""No axe-core violations of WCAG 2.1 A/AA (JIS X 8341-3:2016 AA) on the pay pages and the staff screens.

Every page is checked in the states a person meets: a slip to pay, in Japanese and English; the
PayPay QR; a paid slip and its result; an unknown address; the front page and the API document;
every staff screen of every role with a realistic ward day behind it, a sale waiting for the
terminal, a failed sign-in and a staff error page.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import start_payment
from gateway.services.slips import issue_slips
from tests.browser.a11y import axe_violations
from tests.browser.screens import StaffWard, build_staff_ward, sign_in
from tests.staff import second_factor
from tests.ward_day import PASSWORD

CODE = "131075"
TAXES = [dict(municipality_code=CODE, assessment_id=f"01-2026-000000000{n}", fund_code="01", fiscal_year=2026,
              installment=1, payer_ref=f"000000000{n}", payer_name="墨田　花子", amount=12_300,
              due_date=date(2026, 6, 30)) for n in (1, 2)]


@pytest.fixture
def slips(app: Any, session: Any, cipher: Any) -> tuple[str, str]:
    """Two slips' pay tokens: one to pay, one paid by card."""
    import_ledger(session, cipher, ledger_file_bytes(TAXES, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    to_pay, paid = session.scalars(select(Slip).order_by(Slip.id)).all()
    stripe = app.extensions["kokin.adapters"]["stripe"]
    started = start_payment(session, {"card": stripe}, municipality_id=paid.municipality_id, slip_number=paid.number,
                            channel="card", return_url="https://ward.test/r", cancel_url="https://ward.test/c",
                            fee_schedules=app.config["FEE_SCHEDULES"], actor="resident")
    stripe.simulator.simulate_payment(started.attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(started.attempt.provider_ref), actor="test")
    tokens = (to_pay.pay_token, paid.pay_token)
    session.rollback()
    return tokens


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def _check(page: Any, found: dict[str, list[str]], name: str) -> None:
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") in ("ja", "en"), name
    found[name] = axe_violations(page)


def _assert_none(found: dict[str, list[str]]) -> None:
    report = "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in found.items() if lines)
    assert not report, f"WCAG 2.1 AA violations:\n{report}"


def test_the_resident_pages_have_no_wcag_21_aa_violations(live_server, desktop, slips) -> None:  # type: ignore[no-untyped-def]
    to_pay, paid = slips
    page, found = desktop, {}
    for path in ("/", "/api/v1/docs", f"/pay/{to_pay}", f"/pay/{to_pay}?lang=en", f"/pay/{to_pay}/result",
                 f"/pay/{paid}", f"/pay/{paid}?lang=en", f"/pay/{paid}/result", f"/pay/{paid}/result?lang=en",
                 "/pay/no-such-slip", "/pay/no-such-slip?lang=en"):
        page.goto(f"{live_server}{path}")
        _check(page, found, path)
    assert len(found) == 11
    for lang, button in (("", "PayPayで支払う"), ("?lang=en", "Pay by PayPay")):
        page.goto(f"{live_server}/pay/{to_pay}{lang}")
        page.get_by_role("button", name=button).click()
        page.locator("[data-testid=paypay-qr] svg").wait_for()
        _check(page, found, f"PayPay QR page{lang}")
    _assert_none(found)


def test_every_staff_screen_has_no_wcag_21_aa_violations(live_server, desktop, staff_ward) -> None:  # type: ignore[no-untyped-def]
    page, found = desktop, {}
    page.goto(f"{live_server}/staff/login")
    _check(page, found, "sign-in")
    page.get_by_label("ユーザー名").fill("acct")
    page.get_by_label("パスワード").fill("wrong password")
    page.get_by_role("button", name="サインイン").click()
    page.get_by_role("alert").wait_for()
    _check(page, found, "sign-in refused")
    page.get_by_label("ユーザー名").fill("acct")  # accounting: the second factor, enrolled first
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(f"{live_server}/staff/mfa/enrol")
    _check(page, found, "authenticator enrolment")
    second_factor(page, live_server, "acct")
    page.goto(f"{live_server}/staff/account")
    _check(page, found, "own account")
    page.context.clear_cookies()
    page.goto(f"{live_server}/staff/login")
    page.get_by_label("ユーザー名").fill("acct")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(f"{live_server}/staff/mfa")
    _check(page, found, "second factor")
    page.get_by_label("確認コード").fill("000000")
    page.get_by_role("button", name="確認").click()
    page.get_by_role("alert").wait_for()
    _check(page, found, "second factor refused")
    for username, paths in staff_ward.screens().items():
        sign_in(page, live_server, username)
        for path in paths:
            page.goto(f"{live_server}{path}")
            _check(page, found, f"{path} ({username})")
            if path == f"/staff/exceptions/{staff_ward.exception_id}":  # an agency's: its records as received
                assert page.locator("pre.raw-line").count() >= 1
    # A sale waiting for the terminal, with the sandbox's terminal buttons.
    sign_in(page, live_server, "clerk")
    page.locator("#qty-juminhyo").fill("1")
    page.locator("#charge").click()
    page.wait_for_url(re.compile(r"/staff/counter/sales/\d+$"))
    assert page.locator("#status").get_attribute("data-status") == "waiting"
    _check(page, found, "a sale waiting for the terminal")
    assert sum(len(paths) for paths in staff_ward.screens().values()) + 7 == len(found)
    _assert_none(found)


def test_the_sandbox_pages_have_no_wcag_21_aa_violations(live_server, desktop, slips) -> None:  # type: ignore[no-untyped-def]
    to_pay, _ = slips
    page, found = desktop, {}
    page.goto(f"{live_server}/pay/{to_pay}")
    page.get_by_role("button", name="クレジットカードで支払う").click()
    page.wait_for_url(f"{live_server}/sandbox/stripe/checkout/**")
    _check(page, found, "Checkout")
    for name, card in (("Checkout, card declined", "4000 0000 0000 0002"), ("3-D Secure", "4000 0025 0000 3155")):
        page.get_by_label(re.compile("カード番号")).fill(card)
        page.get_by_label(re.compile("有効期限")).fill("12 / 34")
        page.get_by_label(re.compile("セキュリティコード")).fill("123")
        page.get_by_role("button", name=re.compile("支払う")).click()
        _check(page, found, name)
    page.get_by_role("button", name=re.compile("認証する")).click()
    page.wait_for_url(f"{live_server}/pay/{to_pay}/result**")
    page.goto(f"{live_server}/sandbox/")
    _check(page, found, "console")
    _assert_none(found)


def test_the_sandbox_paypay_app_page_has_no_wcag_21_aa_violations(live_server, desktop, slips) -> None:  # type: ignore[no-untyped-def]
    to_pay, _ = slips
    page, found = desktop, {}
    page.goto(f"{live_server}/pay/{to_pay}")
    page.get_by_role("button", name="PayPayで支払う").click()
    page.locator("[data-testid=paypay-qr] svg").wait_for()
    page.goto(f"{live_server}/sandbox/")
    page.locator("tr[data-code] a").first.click()
    _check(page, found, "PayPay app")
    _assert_none(found)
