"""On the English switch no staff screen shows Japanese the catalogue has not translated (issue 18).

Every screen of every role, with a realistic ward day behind it (tests/browser/screens.py), is
read as a person sees it (tests/page_text.py), in English: the language is switched through the
header's link before signing in, so that the messages of the sign-in are English too. What is
left in Japanese must be the ward's own data, as it is written in the database: its name, its
funds and their accounts, counters, terminals, certificates, and its playbooks (data a ward edits:
gateway.services.playbooks). Never a label, a heading, a message, a status or a button.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.screens import StaffWard, build_staff_ward
from tests.page_text import untranslated, ward_data
from tests.ward_day import log_in


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def test_every_staff_screen_of_every_role_is_in_english_on_the_switch(app: Any, session: Any,
                                                                      staff_ward: StaffWard) -> None:
    data = ward_data(session)
    session.rollback()
    found: dict[str, set[str]] = {}
    for username, paths in staff_ward.screens().items():
        client = app.test_client()
        assert client.get("/lang/en").status_code == 302
        log_in(client, username)
        for path in paths:
            answer = client.get(path)
            assert answer.status_code < 500, f"{username} {path}: {answer.status_code}"
            left = untranslated(answer.get_data(as_text=True), data)
            if left:
                found[f"{username} {path}"] = left
    assert not found, "\n".join(f"{where}: {sorted(runs)}" for where, runs in found.items())


def test_a_screen_with_a_message_left_out_of_the_catalogue_is_caught(app: Any, session: Any,
                                                                     staff_ward: StaffWard) -> None:
    data = ward_data(session)
    session.rollback()
    client = app.test_client()
    client.get("/lang/en")
    log_in(client, "acct")
    html = client.get("/staff/exceptions").get_data(as_text=True)
    assert untranslated(html, data) == set()
    assert untranslated(html.replace("</h1>", "<span>未翻訳の見出し</span></h1>", 1), data) == {"未翻訳の見出し"}
