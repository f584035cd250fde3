"""A clerk who reads no code takes every exception kind the demo plants from the queue to a resolution,
on the screen only, in Japanese; what moves money is approved by a second person on the screen too.

The demo (`kokin demo`) plants its anomalies: an agency's amount mismatch, an unknown slip, a double
payment, a payment on a void slip, the eLTAX channel's own. For each kind found open, the clerk
filters the queue by the kind, opens the oldest, reads its evidence and playbook, takes the first
resolution the playbook offers with a reason, and, when the resolution moves money, the approver
approves it. At the end every one of them is resolved, each by the screen's own forms.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from gateway.cli import cli
from gateway.i18n import CODE_LABELS
from gateway.models import ReconException
from tests.browser.a11y import axe_violations
from tests.browser.screens import sign_in


@pytest.fixture
def demo(app: Any) -> str:
    """The demo's ward on the app's database; the staff accounts' sandbox password."""
    result = app.test_cli_runner().invoke(cli, ["demo", "--payers", "60", "--no-serve"])
    assert result.exit_code == 0, result.output
    password = re.search(r"password \(sandbox, shown once\): (\S+)", result.output)
    assert password is not None, result.output
    return password.group(1)


def _open_by_kind(session: Any) -> dict[str, int]:
    rows = session.execute(select(ReconException.kind, ReconException.id).where(ReconException.status == "open")
                           .order_by(ReconException.id)).all()
    first: dict[str, int] = {}
    for kind, exception_id in rows:
        first.setdefault(kind, exception_id)
    session.rollback()
    return first


def test_every_kind_the_demo_plants_is_resolved_on_the_screen(live_server, desktop, demo, session) -> None:  # type: ignore[no-untyped-def]
    page, base = desktop, live_server
    planted = _open_by_kind(session)
    assert {"amount_mismatch", "unknown_slip"} <= set(planted), planted
    waiting: list[int] = []
    sign_in(page, base, "demo-accounting", demo)
    for kind, exception_id in planted.items():
        name = str(CODE_LABELS["exception_kind"][kind])
        page.goto(f"{base}/staff/exceptions")
        page.get_by_label("種類", exact=True).select_option(label=name)
        page.get_by_role("button", name="絞り込む").click()
        page.locator("#exceptions").get_by_role("link", name=str(exception_id), exact=True).click()
        page.wait_for_url(f"**/staff/exceptions/{exception_id}")
        assert name in page.locator("h1").inner_text()
        assert not axe_violations(page), kind
        page.get_by_label("処理", exact=True).select_option(index=0)
        page.get_by_label("理由").fill("画面の証跡を確認した")
        page.get_by_role("button", name="処理する").click()
        status = page.locator("#status").inner_text()
        assert "処理済み" in status or "承認待ち" in status, (kind, status)
        if "承認待ち" in status:
            waiting.append(exception_id)
    sign_in(page, base, "demo-approver", demo)
    for exception_id in waiting:
        page.goto(f"{base}/staff/exceptions/{exception_id}")
        page.get_by_role("button", name="承認").click()
        assert "処理済み" in page.locator("#status").inner_text()
    resolved = dict(session.execute(select(ReconException.id, ReconException.status)
                                    .where(ReconException.id.in_(planted.values()))).all())
    assert set(resolved.values()) == {"resolved"}, resolved
