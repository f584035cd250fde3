"""The certificate counter in a real browser: sell, play the simulated terminal, print, close the day.

The issue's flow: log in as counter staff, sell two certificates, complete the simulated
terminal payment, print the receipt, see the sale in the daily close.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.services.staff_accounts import create_user

CODE = "131075"
USERNAME = "clerk"
PASSWORD = "counter-pass-2026"  # a throwaway test account
WAIT_MS = 10_000  # the sale page polls every 1.5 s; a status change shows within a few polls
# window.print blocks in headless chromium: record the call instead.
PRINT_STUB = "window.__printed = 0; window.print = () => { window.__printed += 1; };"


@pytest.fixture
def clerk(session) -> str:  # type: ignore[no-untyped-def]
    """A counter-staff account at the resident counter (reference data is seeded by the conftest)."""
    create_user(session, CODE, USERNAME, "counter_staff", PASSWORD, counter_code="resident", actor="test")
    return USERNAME


@pytest.fixture
def desk(browser: Any) -> Any:
    """A desktop-sized page with a Japanese locale."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/staff/login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(f"{base}/staff/counter")


def _start_sale(page: Any) -> str:
    """Type 2 x 住民票の写し and 1 x 印鑑登録証明書, check the live total, charge; return the sale page URL."""
    total = page.locator("#total")
    charge = page.locator("#charge")
    assert total.inner_text() == "0円"
    assert charge.is_disabled()  # nothing to charge yet
    page.locator("#qty-juminhyo").fill("2")
    assert total.inner_text() == "600円"
    page.locator("#qty-inkan").fill("1")
    assert total.inner_text() == "900円"  # computed in the page, before anything is sent
    assert charge.is_enabled()
    page.locator("input[name=brand][value=FELICA_ID]").check()
    assert page.locator("select[name=terminal] option").count() >= 1
    charge.click()
    page.wait_for_url(re.compile(r"/staff/counter/sales/\d+$"))
    status = page.locator("#status")
    assert status.get_attribute("data-status") == "waiting"
    assert "端末でのお支払いを待っています" in status.inner_text()
    assert page.locator("#receipt").count() == 0
    return str(page.url)


def test_counter_staff_sell_two_certificates_print_and_close(clerk, live_server, desk) -> None:  # type: ignore[no-untyped-def]
    page = desk
    page.add_init_script(PRINT_STUB)
    _log_in(page, live_server)
    sale_url = _start_sale(page)
    assert "900円" in page.locator("table.items tfoot").inner_text()

    page.get_by_role("button", name="支払い完了").click()
    page.wait_for_url(sale_url)
    status = page.locator("#status")
    status.and_(page.locator("[data-status=paid]")).wait_for()
    assert "お支払いが完了しました" in status.inner_text()
    number = page.locator("h1").inner_text().removeprefix("会計").strip()
    assert number

    page.locator("#receipt").click()
    page.wait_for_url(re.compile(r"/staff/counter/sales/\d+/receipt$"))
    assert page.locator("#receipt-number").inner_text() == number
    receipt = page.locator("article.receipt").inner_text()
    assert "住民票の写し" in receipt and "印鑑登録証明書" in receipt
    assert "300円 × 2" in receipt and "600円" in receipt and "300円 × 1" in receipt
    assert "900円" in page.locator("article.receipt tr.total").inner_text()
    assert "取り消されました" not in receipt
    assert page.evaluate("window.__printed") == 0
    page.locator("#print").click()
    assert page.evaluate("window.__printed") == 1

    page.goto(f"{live_server}/staff/close")
    rows = [row.inner_text() for row in page.locator("#close-rows tbody tr").all()]
    assert len(rows) == 2, rows
    juminhyo = next(r for r in rows if "住民票の写し" in r)
    inkan = next(r for r in rows if "印鑑登録証明書" in r)
    assert re.search(r"\b2\s+600円", juminhyo), juminhyo
    assert re.search(r"\b1\s+300円", inkan), inkan
    assert all("iD" in r and "区民課 住民記録係" in r for r in rows), rows
    terminals = [row.inner_text() for row in page.locator("#close-terminals tbody tr").all()]
    assert len(terminals) == 1, terminals
    assert "sandbox-device-resident-1" in terminals[0] and "900円" in terminals[0], terminals
    assert terminals[0].rstrip().endswith("一致"), terminals  # the simulated settlement report has it
    sales = [row.inner_text() for row in page.locator("#close-sales tbody tr").all()]
    assert len(sales) == 1 and number in sales[0] and "900円" in sales[0] and "支払い済み" in sales[0], sales
    assert page.locator("ul.differences").count() == 0


def test_the_resident_cancels_on_the_terminal(clerk, live_server, desk) -> None:  # type: ignore[no-untyped-def]
    page = desk
    _log_in(page, live_server)
    sale_url = _start_sale(page)

    page.get_by_role("button", name="端末で取消").click()
    page.wait_for_url(sale_url)
    status = page.locator("#status")
    status.and_(page.locator("[data-status=cancelled]")).wait_for()
    assert "端末で取り消されました" in status.inner_text()
    assert page.locator("#receipt").count() == 0
    assert page.get_by_role("button", name="支払い完了").count() == 0
    page.wait_for_timeout(2000)  # no poll left running to reload the page into another state
    assert status.get_attribute("data-status") == "cancelled"
    assert page.request.get(f"{sale_url}/receipt").status == 404

    page.goto(f"{live_server}/staff/close")
    assert page.locator("#close-rows tbody").inner_text().strip() == "この日の会計はありません。"
    for row in page.locator("#close-terminals tbody tr").all():
        text = row.inner_text()
        assert "900円" not in text, text
    sales = [row.inner_text() for row in page.locator("#close-sales tbody tr").all()]
    assert len(sales) == 1 and "取消" in sales[0], sales
    assert page.locator("ul.differences").count() == 0


def test_the_counter_screen_works_on_a_phone(clerk, live_server, phone) -> None:  # type: ignore[no-untyped-def]
    phone.set_default_timeout(WAIT_MS)
    _log_in(phone, live_server)
    phone.locator("#qty-juminhyo").fill("2")
    phone.locator("#qty-inkan").fill("1")
    assert phone.locator("#total").inner_text() == "900円"
    charge = phone.locator("#charge")
    charge.scroll_into_view_if_needed()
    assert charge.is_visible() and charge.is_enabled()
    box = charge.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # inside the screen
    assert box["height"] >= 44, box  # a tap target
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    charge.tap()
    phone.wait_for_url(re.compile(r"/staff/counter/sales/\d+$"))
    assert phone.locator("#status").get_attribute("data-status") == "waiting"
