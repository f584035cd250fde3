"""Reflow (WCAG 1.4.10): on a 360 px phone and in a window zoomed to 200 %, nothing scrolls sideways.

The page itself never scrolls sideways; a wide table or chart scrolls inside its own region,
which is named and takes the keyboard focus (role=region, tabindex=0), the accepted pattern.
A 1280 px wide window at 200 % is a 640 CSS px viewport drawn at two device pixels per CSS pixel.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import Slip
from tests.browser.a11y import page_scrolls_sideways
from tests.browser.screens import StaffWard, build_staff_ward, sign_in

WINDOWS = {
    "phone-360": dict(viewport={"width": 360, "height": 740}, device_scale_factor=3, is_mobile=True, has_touch=True),
    "zoom-200": dict(viewport={"width": 640, "height": 450}, device_scale_factor=2),
}
REGIONS = """() => [...document.querySelectorAll("main *")]
  .filter(e => e.scrollWidth > e.clientWidth + 1 && ["auto", "scroll"].includes(getComputedStyle(e).overflowX))
  .map(e => ({tag: e.tagName, role: e.getAttribute("role"), tabindex: e.getAttribute("tabindex"),
              named: !!(e.getAttribute("aria-label") || e.getAttribute("aria-labelledby"))}))"""


@pytest.fixture(params=sorted(WINDOWS))
def window(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="ja-JP", **WINDOWS[request.param])
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def _sideways(page: Any, found: dict[str, Any], name: str) -> None:
    page.wait_for_load_state()
    width = page.evaluate("document.scrollingElement.clientWidth")
    assert width in (360, 640), width
    if page_scrolls_sideways(page):
        found[name] = page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    for region in page.evaluate(REGIONS):
        if not (region["role"] == "region" and region["tabindex"] == "0" and region["named"]):
            found[f"{name}: a {region['tag']} scrolls without being a named, focusable region"] = region


def test_the_pay_pages_and_the_staff_reports_do_not_scroll_sideways(live_server, window, session,
                                                                    staff_ward) -> None:  # type: ignore[no-untyped-def]
    page, found = window, {}
    token = session.scalar(select(Slip.pay_token).where(Slip.status == "issued", Slip.due_date > date.today())
                           .order_by(Slip.id.desc()).limit(1))
    session.rollback()
    for path in (f"/pay/{token}", f"/pay/{token}?lang=en", f"/pay/{token}/result", "/", "/api/v1/docs",
                 "/staff/login"):
        page.goto(f"{live_server}{path}")
        _sideways(page, found, path)
    page.goto(f"{live_server}/pay/{token}")
    box = page.get_by_role("button", name="クレジットカードで支払う").bounding_box()  # all of it on the screen
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
    page.get_by_role("button", name="クレジットカードで支払う").click()  # the sandbox's own Checkout, then its console
    page.wait_for_url(f"{live_server}/sandbox/stripe/checkout/**")
    _sideways(page, found, "sandbox Checkout")
    page.goto(f"{live_server}/sandbox/")
    _sideways(page, found, "/sandbox/")

    for username, paths in {**{"acct": staff_ward.report_screens()}, "clerk": ["/staff/counter"],
                            "admin": ["/staff/users"]}.items():
        sign_in(page, live_server, username)
        for path in paths:
            page.goto(f"{live_server}{path}")
            _sideways(page, found, path)
    assert not found, f"sideways scrolling: {found}"
