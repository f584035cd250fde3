"""The README's "try this" list, done in a browser on the demo's own data (`kokin demo --no-serve`).

The demo fills the test's database (SQLite or PostgreSQL) as a newcomer's run does and prints the
list with the staff password and a payable slip. A person then opens the front page, signs in as
demo-accounting, opens the slip's pay page and every report, and each report adds up: its rows
sum to its totals line, column by column.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from domain.calendar import TOKYO
from gateway.cli import cli
from tests.browser.screens import sign_in
from tests.ward_day import number, table

PAYERS = "60"
CARD = "4242 4242 4242 4242"  # Stripe's test card: always succeeds


@dataclass(frozen=True)
class Demo:
    password: str
    pay_path: str  # the slip's pay page, as item 3 of the list names it
    items: list[str]  # the list's addresses, in order


@pytest.fixture
def demo(app: Any) -> Demo:
    result = app.test_cli_runner().invoke(cli, ["demo", "--payers", PAYERS, "--no-serve"])
    assert result.exit_code == 0, result.output
    printed = result.output.split("==> try this\n", 1)[1]
    items = re.findall(r"^\s+\d\. (\S+)$", printed, re.M)
    password = re.search(r"password: (\S+)$", printed, re.M)
    assert len(items) == 5 and password is not None, printed
    pay = re.search(r"http://127\.0\.0\.1:\d+(/pay/[A-Za-z0-9_-]{16,})$", items[2])
    assert pay is not None, items[2]
    return Demo(password.group(1), pay.group(1), [re.sub(r"^http://127\.0\.0\.1:\d+", "", i) for i in items])


def _adds_up(html: str, table_id: str) -> int:
    """Check the table's rows against its totals line; return how many columns were checked."""
    rows, totals = table(html, table_id)
    assert len(totals) == 1 and totals[0][0] == "合計", (table_id, totals)
    assert rows and all(len(row) == len(rows[0]) for row in rows), (table_id, rows)
    total, checked = totals[0], 0
    for offset in range(1, len(total)):  # from the right: the label may span several columns
        if total[-offset] == "":
            continue  # a column that is not added up (a source, a code)
        column = len(rows[0]) - offset
        assert sum(number(row[column]) for row in rows) == number(total[-offset]), (table_id, column, rows, total)
        checked += 1
    assert checked, (table_id, total)
    return checked


def _open_report(page: Any, link: Any) -> str:
    link.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).is_visible()
    return str(page.content())


def test_a_newcomer_follows_the_try_this_list_and_every_report_adds_up(live_server, desktop, demo) -> None:  # type: ignore[no-untyped-def]
    page = desktop
    front, login, pay, console, reports = demo.items
    assert (front, login, console, reports) == ("/", "/staff/login", "/sandbox/", "/staff/reports")
    assert pay == demo.pay_path

    page.goto(f"{live_server}{front}")  # 1. the front page leads to the staff screens and the API document
    assert page.get_by_role("link", name="API 仕様書").is_visible()
    page.get_by_role("link", name="職員のサインイン").click()
    page.wait_for_url(f"{live_server}{login}")

    sign_in(page, live_server, "demo-accounting", demo.password)  # 2. with the printed password
    assert page.url == f"{live_server}/staff/exceptions"
    assert page.locator("#exceptions tbody tr").count() >= 1  # the demo plants one exception of each kind

    page.goto(f"{live_server}{pay}")  # 3. a slip payable today by card
    assert page.get_by_text("未納").is_visible()
    assert page.get_by_role("button", name="クレジットカードで支払う").is_visible()

    page.goto(f"{live_server}{reports}")  # 5. every report on the index, and each adds up
    index = page.locator("ul.reports > li > a:first-child")
    titles = index.all_inner_texts()
    assert len(titles) == 5, titles  # four reports and the receipts feed
    checked = {}
    for title in titles:
        page.goto(f"{live_server}{reports}")
        html = _open_report(page, page.locator("ul.reports > li > a:first-child", has_text=title))
        if "/staff/reports/usage" in page.url:  # the council's page: each of its tables with one totals line
            checked[title] = min(_adds_up(html, f"usage-{key}") for key in ("trend", "change", "tenders"))
        else:
            checked[title] = _adds_up(html, "balance" if "/staff/feed" in page.url else "report")
    today = datetime.now(TOKYO).date().isoformat()
    _open_report(page, page.get_by_role("navigation", name="職員メニュー").get_by_role("link", name="歳入日計"))
    page.get_by_label("日付").fill(today)  # the counter's day: the demo sold certificates today
    page.get_by_role("button", name="表示").click()
    page.wait_for_url(f"{live_server}/staff/revenue?date={today}")
    checked["歳入日計"] = _adds_up(page.content(), "revenue-lines")
    assert checked["歳入日計"] == 2 and min(checked.values()) >= 2, checked

    _open_report(page, page.get_by_role("navigation", name="職員メニュー").get_by_role("link", name="日計表"))
    sold = sum(number(cells[-1]) for cells in table(page.content(), "close-rows")[0])
    recorded = sum(number(cells[2]) for cells in table(page.content(), "close-terminals")[0])
    assert sold == recorded > 0  # the daily close: the sales by item add up to what the terminal recorded


def _card_count(page: Any, base: str, day: str) -> int:
    page.goto(f"{base}/staff/reports/daily?date={day}")
    rows, _ = table(page.content(), "report")
    return sum(number(row[1]) for row in rows if row[0] == "クレジットカード")


def test_a_newcomer_pays_the_slip_by_card_on_the_sandbox_hosted_page_and_staff_see_it_paid(
        live_server, desktop, demo) -> None:  # type: ignore[no-untyped-def]
    page = desktop
    today = datetime.now(TOKYO).date().isoformat()
    sign_in(page, live_server, "demo-accounting", demo.password)
    cards_before = _card_count(page, live_server, today)

    page.goto(f"{live_server}{demo.pay_path}")
    amount = page.get_by_test_id("amount").inner_text()
    page.get_by_role("button", name="クレジットカードで支払う").click()
    page.wait_for_url(re.compile(rf"^{re.escape(live_server)}/sandbox/"))  # the gateway's own checkout page
    charged = int(re.sub(r"\D", "", page.locator(".amount .num").inner_text()))
    assert charged >= int(re.sub(r"\D", "", amount))  # the slip's amount, with the card's usage fee on top
    page.get_by_label(re.compile("カード番号|Card number")).fill(CARD)
    page.get_by_label(re.compile("有効期限|Expir")).fill("12 / 34")
    page.get_by_label(re.compile("セキュリティコード|CVC")).fill("123")
    page.get_by_role("button", name=re.compile("支払う|Pay")).click()

    page.wait_for_url(f"{live_server}{demo.pay_path}/result**")
    assert page.locator("[data-state=paid]").is_visible()
    page.goto(f"{live_server}{demo.pay_path}")
    assert page.get_by_text("この納付書はお支払い済みです。").is_visible()
    assert page.get_by_role("button").count() == 0

    page.goto(f"{live_server}{demo.items[3]}")  # 4. the console shows the notification the gateway received
    assert page.get_by_role("cell", name="checkout.session.completed").first.is_visible()

    assert _card_count(page, live_server, today) == cards_before + 1  # paid on the staff side
    _adds_up(page.content(), "report")
