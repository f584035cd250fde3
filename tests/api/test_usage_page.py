"""The usage report's page: Japanese, English on the switch, only the staff member's own ward's figures.

Two wards in one deployment, each with a card payment; ward A also has an instalment its core
system reports paid at a bank. Ward A's accounting staff see A's figures and never B's; B's
staff see B's. A report that does not exist answers 404; a fiscal year that is not one is
refused with a clear message and the current year shown.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.fiscal import fiscal_year_of
from gateway.models import Municipality, Payment, Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.scheduler.guard import tokyo_today
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from gateway.services.status_import import import_status_changes
from tests.api.test_ward_isolation import _ward_b, app_config  # noqa: F401 - the two wards' settings
from tests.card import pay_by_card
from tests.rows import by_id
from tests.staff import PASSWORD, log_in
from tests.ward_day import table

A, B = "131075", "131083"
HEADER = "municipality_code,assessment_id,installment,status,changed_on,channel"


def _first_slip(session: Session, code: str) -> Slip:
    ward = session.scalar(select(Municipality.id).where(Municipality.code == code))
    slip = session.scalars(select(Slip).where(Slip.municipality_id == ward, Slip.barcode.is_not(None))
                           .order_by(Slip.id)).first()
    assert slip is not None
    return slip


@pytest.fixture
def wards(app: Flask, session: Session, cipher: Any) -> dict[str, int]:
    """Each ward a card payment; ward A a bank payment its status feed reports. The yen of each card payment."""
    seed_reference_data(session, [_ward_b()])
    paid = {}
    for code, name in ((A, "sumida.csv"), (B, "koto.csv")):
        rows = list(ward_rows(code, 2026, payers=3))
        import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename=name)
        issue_slips(session, code)
        paid[code] = pay_by_card(app, session, _first_slip(session, code)).payment.id
        create_user(session, code, f"acct-{code}", "accounting", PASSWORD, counter_code="resident", actor="test")
    figures = {code: by_id(session, Payment, pid).amount for code, pid in paid.items()}
    elsewhere = session.scalars(select(Slip).where(Slip.municipality_id == _first_slip(session, A).municipality_id,
                                                   Slip.status == "issued", Slip.barcode.is_not(None))
                                .order_by(Slip.id.desc())).first()
    assert elsewhere is not None
    line = (f"{A},{elsewhere.assessment.source_key},{elsewhere.assessment.installment},paid_elsewhere,"
            f"{tokyo_today().isoformat()},bank")
    assert import_status_changes(session, f"{HEADER}\n{line}\n".encode(), filename="status.csv").closed == 1
    figures["bank"] = elsewhere.assessment.amount
    session.commit()
    return figures


def _trend(client: FlaskClient, path: str = "/staff/reports/usage") -> tuple[str, list[list[str]]]:
    answer = client.get(path)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    body, foot = table(html, "usage-trend")
    return html, body + foot


def test_each_ward_sees_only_its_own_figures(client: FlaskClient, wards: dict[str, int]) -> None:
    log_in(client, f"acct-{A}")
    html, rows = _trend(client)
    assert f"収納経路の利用状況 {fiscal_year_of(tokyo_today())}年度" in html and 'lang="ja"' in html
    month = tokyo_today().strftime("%Y-%m")
    gateway, elsewhere = "キャッシュレス（ゲートウェイ）", "他の経路（基幹システムの報告）"
    assert rows == [[month, gateway, "クレジットカード", "1", f"{wards[A]:,}"],
                    [month, elsewhere, "金融機関窓口", "1", f"{wards['bank']:,}"],
                    ["合計", "", "", "2", f"{wards[A] + wards['bank']:,}"]]
    client.get("/staff/logout")


def test_the_other_wards_staff_see_theirs(client: FlaskClient, wards: dict[str, int]) -> None:
    log_in(client, f"acct-{B}")
    _, rows = _trend(client)
    assert rows[-1] == ["合計", "", "", "1", f"{wards[B]:,}"]
    assert not any("金融機関窓口" in row for row in rows)


def test_english_on_the_switch_and_clear_errors(client: FlaskClient, wards: dict[str, int]) -> None:
    log_in(client, f"acct-{A}")
    html, rows = _trend(client, "/staff/reports/usage?lang=en")
    assert "How residents pay, FY" in html and "Credit card" in html and "Bank counter" in html
    assert "収納経路" not in html and "クレジットカード" not in html
    assert rows[0][1] == "Cashless (gateway)"
    html, rows = _trend(client, "/staff/reports/usage?fy=20x6")
    assert "年度の指定が正しくありません" in html and rows[-1][3] == "2"  # the current year shown
    assert client.get("/staff/reports/nosuch").status_code == 404
    csv = client.get("/staff/reports/usage?format=csv&lang=en").data.decode("utf-8")
    assert "Credit card" in csv and f"{wards[A]:,}" in csv


def test_staff_without_the_reports_role_are_refused(client: FlaskClient, session: Session,
                                                    wards: dict[str, int]) -> None:
    create_user(session, A, "clerk-a", "counter_staff", PASSWORD, counter_code="resident", actor="test")
    log_in(client, "clerk-a")
    assert client.get("/staff/reports/usage").status_code in (302, 403)
