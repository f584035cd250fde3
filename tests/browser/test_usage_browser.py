"""The usage report in a browser: the chart, its table, the year chosen by keyboard, no WCAG 2.1 AA violations.

A realistic ward day (card, PayPay, agency files, payments made elsewhere, counter sales) is
behind it; the page is checked in Japanese, in English and with a wrong fiscal year.
"""
from __future__ import annotations

from typing import Any

import pytest

from domain.fiscal import fiscal_year_of
from tests.browser.a11y import axe_violations
from tests.browser.screens import StaffWard, build_staff_ward, sign_in


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def test_the_usage_report_reads_and_works_without_a_mouse(live_server, desktop, staff_ward) -> None:  # type: ignore[no-untyped-def]
    page = desktop
    year = fiscal_year_of(staff_ward.day.today)
    sign_in(page, live_server, "acct")
    page.goto(f"{live_server}/staff/reports/usage")

    assert page.get_by_role("heading", level=1).inner_text().startswith(f"収納経路の利用状況 {year}年度")
    chart = page.get_by_role("img", name="月別・経路別の金額（積み上げ）")
    assert chart.count() == 1
    assert page.locator("svg desc").first.text_content().startswith(f"{year}年度")
    trend = page.get_by_role("table", name="月別・経路別の件数と金額")
    assert trend.get_by_role("cell", name="金融機関窓口").count() >= 1
    assert page.get_by_role("table", name="窓口の電子マネー・QR決済（支払方法別・月別）").get_by_role(
        "cell", name="iD").count() >= 1
    assert axe_violations(page) == []

    page.get_by_label("年度", exact=True).focus()  # the year by keyboard: the year before
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/usage?fy=*")
    assert f"{year - 1}年度" in page.get_by_role("heading", level=1).inner_text()
    assert axe_violations(page) == []

    page.goto(f"{live_server}/staff/reports/usage?lang=en")
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"How residents pay, FY {year}")
    assert page.get_by_role("table", name="Payments and yen per month and channel").get_by_role(
        "cell", name="Bank counter").count() >= 1
    assert axe_violations(page) == []

    page.goto(f"{live_server}/staff/reports/usage?fy=abc")
    assert "年度の指定が正しくありません" in page.get_by_role("alert").inner_text()
    assert axe_violations(page) == []
