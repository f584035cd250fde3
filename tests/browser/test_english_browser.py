"""The workbench on the English switch in a browser: the queue, then an exception's page, in English and accessible."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.a11y import axe_violations
from tests.browser.screens import StaffWard, build_staff_ward, sign_in
from tests.page_text import english_catalogue, untranslated, ward_data


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def test_a_clerk_switches_to_english_and_walks_from_the_queue_to_an_exception(
        live_server, desktop, session, staff_ward) -> None:  # type: ignore[no-untyped-def]
    data = ward_data(session)
    session.rollback()
    page, base = desktop, live_server
    sign_in(page, base, "acct")
    page.goto(f"{base}/staff/exceptions")
    page.get_by_role("link", name="English").click()  # the header's switch, back to the same page
    page.wait_for_url(f"{base}/staff/exceptions")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text() == english_catalogue()["照合の例外"]
    assert untranslated(page.content(), data) == set()
    assert not axe_violations(page)

    page.locator("#exceptions a[href*='/staff/exceptions/']").first.click()
    page.wait_for_url(lambda url: "/staff/exceptions/" in url)
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text().startswith("Exception #")
    assert untranslated(page.content(), data) == set()
    assert not axe_violations(page)
    assert page.get_by_role("link", name="日本語").get_attribute("hreflang") == "ja"
