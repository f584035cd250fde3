"""The queue in a browser: filter, pick rows by keyboard, resolve them in bulk, a second person approves in bulk."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from domain.calendar import business_date
from gateway.db import utcnow
from gateway.models import Municipality, ReconException
from gateway.services.staff_accounts import create_user
from tests.browser.a11y import axe_violations
from tests.browser.screens import sign_in
from tests.ward_day import PASSWORD


def _plant(session: Any) -> list[int]:
    ward = session.scalar(select(Municipality.id))
    today = business_date(utcnow())
    items = [ReconException(municipality_id=ward, kind="remittance_mismatch", subject_key=f"t:{n}", amount=-100 * n,
                            business_date=today - timedelta(days=n), details={}) for n in (1, 2, 9)]
    session.add_all(items)
    session.add(ReconException(municipality_id=ward, kind="fee_netted", subject_key="t:f", amount=-60,
                               business_date=today, details={}))
    create_user(session, "131075", "acct", "accounting", PASSWORD, actor="test")
    create_user(session, "131075", "approver", "approver", PASSWORD, actor="test")
    session.commit()
    ids = [item.id for item in items]
    session.rollback()
    return ids


def test_a_clerk_picks_rows_by_keyboard_resolves_them_in_bulk_and_an_approver_approves_in_bulk(
        live_server, desktop, session) -> None:  # type: ignore[no-untyped-def]
    page, base = desktop, live_server
    ids = _plant(session)
    sign_in(page, base, "acct")
    page.goto(f"{base}/staff/exceptions")
    assert page.locator("#counts").is_visible()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "f-kind"
    page.get_by_label("種類", exact=True).select_option(label="入金額の相違")
    page.get_by_role("button", name="絞り込む").click()
    assert not axe_violations(page)
    page.locator("body").click()
    for _ in range(2):  # the two oldest rows: j to move, x to pick
        page.keyboard.press("j")
        page.keyboard.press("x")
    picked = page.locator("#exceptions input[name=ids]:checked").evaluate_all("boxes => boxes.map(b => +b.value)")
    assert sorted(picked) == sorted(ids[1:])  # oldest first: the 9-day and the 2-day ones
    page.keyboard.press("?")
    assert page.locator("#shortcuts").get_attribute("open") is not None
    page.get_by_label("処理", exact=True).select_option("write_off")
    page.get_by_label("理由", exact=True).fill("少額のため")
    page.get_by_role("button", name="まとめて処理する").click()
    assert "2件の例外を処理しました。" in page.locator(".flash").inner_text()

    sign_in(page, base, "approver")
    page.goto(f"{base}/staff/exceptions?status=pending_approval")
    page.get_by_label("表示中をすべて選択").check()
    page.get_by_role("button", name="まとめて承認").click()
    assert "2件の例外を処理しました。" in page.locator(".flash").inner_text()
    statuses = dict(session.execute(select(ReconException.id, ReconException.status)
                                    .where(ReconException.id.in_(ids))).all())
    assert statuses == {ids[0]: "open", ids[1]: "resolved", ids[2]: "resolved"}
