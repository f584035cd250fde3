"""Keyboard alone: a resident reaches and presses the card button, staff sign in, and the focus shows.

Tab and Enter only, as a person without a mouse does; at every stop the focused element must
show a focus ring (an outline at least 2 px wide), never the browser's invisible default.
"""
from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import PaymentAttempt, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from tests.staff import enrolled

CODE = "131075"
TAX = dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
           installment=1, payer_ref="0000000001", payer_name="墨田　花子", amount=12_300, due_date=date(2026, 6, 30))
PASSWORD = "keyboard-pass-2026"  # noqa: S105 - a throwaway test account
MAX_TABS = 15
FOCUSED = """() => {
  const e = document.activeElement, s = getComputedStyle(e), box = e.getBoundingClientRect();
  return {tag: e.tagName, id: e.id, name: e.getAttribute("name"), text: (e.innerText || "").trim(),
          outline: s.outlineStyle, width: parseFloat(s.outlineWidth) || 0,
          inside: box.width > 0 && box.height > 0 && box.top >= 0 && box.bottom <= innerHeight};
}"""
# The card provider's hosted page is elsewhere (no network here): the gateway's redirect to it is
# answered with a stand-in page. A page the gateway serves itself is followed as it is.
STAND_IN = "<!doctype html><html lang='en'><title>Checkout</title><main><h1>Checkout</h1></main></html>"


@pytest.fixture
def token(session: Any, cipher: Any) -> str:
    import_ledger(session, cipher, ledger_file_bytes([TAX], "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    slip = session.scalar(select(Slip))
    session.rollback()
    return str(slip.pay_token)


def _focused(page: Any) -> dict[str, Any]:
    focused: dict[str, Any] = page.evaluate(FOCUSED)
    assert focused["tag"] != "BODY", "the focus was lost"
    assert focused["outline"] != "none" and focused["width"] >= 2, f"no visible focus ring on {focused}"
    assert focused["inside"], f"the focused element is off screen: {focused}"
    return focused


def _tab_to(page: Any, text: str) -> list[dict[str, Any]]:
    """Press Tab until the element reading `text` has the focus; return every stop on the way."""
    stops = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        stops.append(_focused(page))
        if stops[-1]["text"] == text:
            return stops
    raise AssertionError(f"{text!r} not reached in {MAX_TABS} presses of Tab: {stops}")


def _pending_card_attempt(session: Any, timeout: float = 10.0) -> PaymentAttempt:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.rollback()  # the server commits from its own connection
        attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.status == "pending"))
        if attempt is not None:
            return attempt  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("Enter on the card button opened no checkout")


def test_a_resident_reaches_and_presses_the_card_button_with_tab_and_enter(live_server, desktop, session,
                                                                           token) -> None:  # type: ignore[no-untyped-def]
    page = desktop
    redirects: list[str] = []

    def checkout(route: Any) -> None:  # Playwright routes only the first request of a redirect
        answer = route.fetch(max_redirects=0)
        redirects.append(answer.headers.get("location", ""))
        if redirects[-1].startswith((live_server, "/")):
            route.fulfill(response=answer)
        else:
            route.fulfill(status=200, content_type="text/html", body=STAND_IN)

    page.route(f"{live_server}/pay/{token}/card", checkout)
    pay_page = f"{live_server}/pay/{token}"
    page.goto(pay_page)

    stops = _tab_to(page, "クレジットカードで支払う")
    assert stops[0]["text"] == "English"  # the language switch first, then the pay buttons in reading order
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url != pay_page)

    attempt = _pending_card_attempt(session)
    assert attempt.adapter == "stripe" and attempt.amount >= 12_300
    assert len(redirects) == 1 and attempt.provider_ref and attempt.provider_ref in redirects[0]


def test_staff_sign_in_and_skip_to_the_content_with_tab_and_enter(live_server, desktop, session) -> None:  # type: ignore[no-untyped-def]
    create_user(session, CODE, "acct", "accounting", PASSWORD, actor="test")
    page = desktop
    page.goto(f"{live_server}/staff/login")
    assert _focused(page)["name"] == "username"  # the form takes the focus on arrival
    page.keyboard.type("acct")
    page.keyboard.press("Tab")
    assert _focused(page)["name"] == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    assert _focused(page)["text"] == "サインイン"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/staff/mfa/enrol")  # accounting needs a second factor: enrol one
    page.locator("input[name=code]").focus()
    page.keyboard.type(enrolled("acct", page.locator("#mfa-secret").inner_text()))
    page.keyboard.press("Enter")  # the form is sent from its field, as a keyboard user does
    page.wait_for_url(f"{live_server}/staff/exceptions")

    page.keyboard.press("Tab")
    skip = _focused(page)
    assert skip["text"] == "本文へ移動"  # first stop, shown on focus, past the menu
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert _focused(page)["name"] == "kind"  # the first control of the content, not the menu
