"""The administrator edits the ward's playbooks on the staff screen; clerks meet them on each exception."""
from __future__ import annotations

from datetime import date

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import ExceptionPlaybook, Municipality, ReconException
from gateway.services.playbooks import defaults, playbook_of
from gateway.services.reference import seed_reference_data
from gateway.services.staff_accounts import create_user
from tests.api.test_ward_isolation import B, _ward_b
from tests.staff import PASSWORD, csrf_token, log_in

CODE = "131075"


def _form(token: str, **allowed: tuple[str, bool]) -> dict[str, str]:
    form = {"csrf_token": token, "meaning": "入金が予定と違う", "checks": "明細を見る\n\n業者に聞く\n"}
    for code, (effect, second) in allowed.items():
        form |= {f"allow-{code}": "on", f"effect-{code}": effect}
        if second:
            form[f"second-{code}"] = "on"
    return form


def test_an_administrator_edits_a_playbook_and_the_clerk_meets_it_on_the_exception(app: Flask,
                                                                                   session: Session) -> None:
    seed_reference_data(session, [_ward_b()])
    create_user(session, CODE, "admin", "administrator", PASSWORD, actor="test")
    create_user(session, CODE, "acct", "accounting", PASSWORD, actor="test")
    ward = session.scalar(select(Municipality.id).where(Municipality.code == CODE))
    koto = session.scalar(select(Municipality.id).where(Municipality.code == B))
    item = ReconException(municipality_id=ward, kind="remittance_mismatch", subject_key="t:1",
                          business_date=date(2026, 7, 1), amount=-100, details={})
    session.add(item)
    session.commit()
    admin = app.test_client()
    log_in(admin, "admin")
    listing = admin.get("/staff/playbook").get_data(as_text=True)
    assert "入金額の相違" in listing and "標準" in listing
    page = admin.get("/staff/playbook/remittance_mismatch").get_data(as_text=True)
    assert defaults()["remittance_mismatch"].meaning in page
    token = csrf_token(admin, "/staff/playbook/remittance_mismatch")
    saved = admin.post("/staff/playbook/remittance_mismatch",
                       data=_form(token, booked_correctly=("過不足なし", True), write_off=("損失", False)))
    assert saved.status_code == 302 and saved.location.endswith("/staff/playbook")
    book = playbook_of(session, ward, "remittance_mismatch")
    assert book.checks == ("明細を見る", "業者に聞く") and book.edited_by == "admin"
    assert [(p.code, p.second_person) for p in book.resolutions] == [("booked_correctly", True), ("write_off", True)]
    assert playbook_of(session, koto, "remittance_mismatch") == defaults()["remittance_mismatch"]

    clerk = app.test_client()
    log_in(clerk, "acct")
    shown = clerk.get(f"/staff/exceptions/{item.id}").get_data(as_text=True)
    assert "入金が予定と違う" in shown and "業者に聞く" in shown
    assert 'value="booked_correctly"' in shown and 'value="corrected_by_agency"' not in shown
    assert clerk.get("/staff/playbook").status_code == 403

    token = csrf_token(admin, "/staff/playbook/remittance_mismatch")
    assert admin.post("/staff/playbook/remittance_mismatch/reset", data={"csrf_token": token}).status_code == 302
    session.expire_all()
    assert session.scalar(select(ExceptionPlaybook.kind)) is None


def test_a_bad_playbook_form_says_why_and_changes_nothing(app: Flask, session: Session) -> None:
    create_user(session, CODE, "admin", "administrator", PASSWORD, actor="test")
    admin = app.test_client()
    log_in(admin, "admin")
    path = "/staff/playbook/double_payment"
    token = csrf_token(admin, path)
    bad = (_form(token), _form(token, refund=(" ", False)), {**_form(token, refund=("返す", False)), "meaning": ""})
    for form in bad:
        answer = admin.post(path, data=form, headers={"Referer": f"http://localhost{path}"})
        assert answer.status_code == 302 and answer.location.startswith(path)
        assert 'class="flash error"' in admin.get(path).get_data(as_text=True)
    assert admin.post(path, data={k: v for k, v in _form(token, refund=("x", False)).items()
                                  if k != "csrf_token"}).status_code == 400
    assert admin.get("/staff/playbook/no_such_kind").status_code == 404
    session.expire_all()
    assert session.scalar(select(ExceptionPlaybook.kind)) is None
