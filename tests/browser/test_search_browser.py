"""Search in a browser: a clerk types a slip number, opens the slip's page from the result, and reads its story."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.a11y import axe_violations
from tests.browser.screens import StaffWard, build_staff_ward, sign_in


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def test_a_clerk_finds_a_slip_by_its_number_and_reads_its_story(live_server, desktop, staff_ward) -> None:  # type: ignore[no-untyped-def]
    page, base = desktop, live_server
    sign_in(page, base, "acct")
    page.get_by_role("link", name="検索").click()
    page.get_by_label("納付書番号").fill(staff_ward.slip_number)
    page.get_by_role("button", name="検索する").click()
    assert not axe_violations(page)
    page.locator("#found-slips").get_by_role("link", name=staff_ward.slip_number).first.click()
    page.wait_for_url(f"**/staff/slips/{staff_ward.slip_number}")
    assert "納付を受付" in page.locator(".timeline").inner_text()
    assert not axe_violations(page)
    page.goto(f"{base}/staff/search")
    page.get_by_label("金額（円）").fill("12.5")
    page.get_by_role("button", name="検索する").click()
    assert "金額は円単位の整数です" in page.get_by_role("alert").inner_text()
