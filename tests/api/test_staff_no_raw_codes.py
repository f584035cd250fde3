"""No staff screen shows a code the database keeps where a word belongs (issue 18: Japanese throughout).

Every screen of every role, with a realistic ward day behind it (tests/browser/screens.py), is
read as a person sees it: the text of the page without its markup, scripts and styles, with the
texts of options and buttons. A code of gateway.i18n.CODE_LABELS (an exception kind, a status, a
role, a channel, a tender, a resolution) or any snake_case word in it fails the test.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.i18n import CODE_LABELS
from tests.browser.screens import StaffWard, build_staff_ward
from tests.page_text import visible_text
from tests.ward_day import log_in

SNAKE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
CODES = {code for names in CODE_LABELS.values() for code in names}


def raw_codes(text: str) -> set[str]:
    words = set(re.findall(r"(?<![A-Za-z0-9_.-])[A-Za-z][A-Za-z0-9_]*(?![A-Za-z0-9_-])", text))
    return {w for w in words if w in CODES or SNAKE.fullmatch(w)}


@pytest.fixture
def staff_ward(app: Any, session: Any, cipher: Any) -> StaffWard:
    return build_staff_ward(app, session, cipher)


def test_every_staff_screen_of_every_role_names_its_codes_in_words(app: Any, staff_ward: StaffWard) -> None:
    names = set(staff_ward.day.staff) | {"admin"}  # the test's staff are named after their roles: data, not codes
    found: dict[str, set[str]] = {}
    for username, paths in staff_ward.screens().items():
        client = app.test_client()
        log_in(client, username)
        for path in paths:
            answer = client.get(path)
            codes = raw_codes(visible_text(answer.get_data(as_text=True))) - names
            if codes:
                found[f"{username} {path}"] = codes
    assert not found, "\n".join(f"{where}: {sorted(codes)}" for where, codes in found.items())
