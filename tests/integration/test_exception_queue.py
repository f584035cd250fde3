"""The exception queue: assign, comment, resolve with a reason, money needs a second person; all audited."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.errors import GatewayError
from gateway.models import Event, Municipality, ReconException
from gateway.services.exceptions import (
    assign_exception,
    comment_exception,
    comments_of,
    decide_resolution,
    raise_exceptions,
    resolve_exception,
)
from gateway.services.staff_accounts import create_user
from tests.rows import by_id
from tests.staff import csrf_token, log_in

PASSWORD = "queue-pass-2026"


@pytest.fixture
def exception_id(session) -> int:  # type: ignore[no-untyped-def]
    municipality_id = session.scalar(select(Municipality.id))
    raise_exceptions(session, municipality_id, [dict(kind="double_payment", subject_key="payment:9001",
                                                     business_date=date(2026, 7, 1), amount=4_000,
                                                     details={"reason": "paid twice"})])
    session.commit()
    return int(session.scalar(select(ReconException.id)))


def _events(session, exception_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return list(session.scalars(select(Event.kind).where(Event.subject_type == "recon_exception",
                                                         Event.subject_id == str(exception_id)).order_by(Event.id)))


def test_a_refund_resolution_waits_for_a_second_person_and_every_step_is_audited(session, exception_id) -> None:  # type: ignore[no-untyped-def]
    municipality_id = session.scalar(select(Municipality.id))
    assign_exception(session, municipality_id, exception_id, "accountant-a", actor="lead")
    comment_exception(session, municipality_id, exception_id, "the resident paid in an app and at a bank",
                      actor="accountant-a")
    proposed = resolve_exception(session, municipality_id, exception_id, "refund", "refund the app payment",
                                 actor="accountant-a")
    assert (proposed.status, proposed.proposed_by, proposed.resolved_by) == ("pending_approval", "accountant-a", None)

    with pytest.raises(GatewayError) as own:
        decide_resolution(session, municipality_id, exception_id, approve=True, actor="accountant-a")
    assert own.value.code == "four_eyes_required"

    done = decide_resolution(session, municipality_id, exception_id, approve=True, actor="approver-b")
    assert (done.status, done.resolution, done.resolved_by) == ("resolved", "refund", "approver-b")
    assert [c.text for c in comments_of(session, municipality_id,
                                        exception_id)] == ["the resident paid in an app and at a bank"]
    assert _events(session, exception_id) == ["exception.assigned", "exception.commented",
                                              "exception.resolution_proposed", "exception.resolution_approved"]
    with pytest.raises(GatewayError):
        resolve_exception(session, municipality_id, exception_id, "write_off", "again", actor="approver-b")


def test_a_resolution_that_moves_no_money_is_final_at_once_and_a_sent_back_one_reopens(session, exception_id) -> None:  # type: ignore[no-untyped-def]
    municipality_id = session.scalar(select(Municipality.id))
    resolve_exception(session, municipality_id, exception_id, "apply_to_other_instalment", "the next instalment",
                      actor="a")
    back = decide_resolution(session, municipality_id, exception_id, approve=False, actor="b")
    assert (back.status, back.resolution, back.proposed_by) == ("open", None, None)
    final = resolve_exception(session, municipality_id, exception_id, "handed_to_core_system", "the core decides",
                              actor="a")
    assert (final.status, final.resolved_by) == ("resolved", "a")


@pytest.mark.parametrize(("resolution", "note", "code"), [("no_such", "x", "unknown_resolution"),
                                                          ("refund", "  ", "empty_note")])
def test_a_resolution_needs_a_known_reason_and_a_note(session, exception_id, resolution, note, code) -> None:  # type: ignore[no-untyped-def]
    municipality_id = session.scalar(select(Municipality.id))
    with pytest.raises(GatewayError) as refused:
        resolve_exception(session, municipality_id, exception_id, resolution, note, actor="a")
    assert refused.value.code == code
    session.expire_all()
    assert by_id(session, ReconException, exception_id).status == "open"


def test_the_database_refuses_a_resolution_decided_by_its_proposer(session, exception_id) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError):
        session.execute(update(ReconException).where(ReconException.id == exception_id)
                        .values(status="resolved", proposed_by="a", resolved_by="a"))
        session.flush()
    session.rollback()


def _login(client, username: str) -> str:  # type: ignore[no-untyped-def]
    """Sign in (the second factor too, for accounting); the CSRF token of the signed-in session."""
    assert log_in(client, username, PASSWORD).status_code == 302
    return csrf_token(client, "/staff/account")


def test_accounting_works_the_queue_on_the_page_and_an_auditor_only_reads(app, session, exception_id) -> None:  # type: ignore[no-untyped-def]
    create_user(session, "131075", "acc", "accounting", PASSWORD, actor="test")
    create_user(session, "131075", "aud", "auditor", PASSWORD, actor="test")
    client = app.test_client()
    token = _login(client, "acc")
    assert "double_payment" in client.get("/staff/exceptions?kind=double_payment").text
    answer = client.post(f"/staff/exceptions/{exception_id}/comment", data={"csrf_token": token, "text": "called"})
    assert answer.status_code == 302
    assert "called" in client.get(f"/staff/exceptions/{exception_id}").text

    auditor = app.test_client()
    token = _login(auditor, "aud")
    assert auditor.get(f"/staff/exceptions/{exception_id}").status_code == 200
    refused = auditor.post(f"/staff/exceptions/{exception_id}/resolve",
                           data={"csrf_token": token, "resolution": "write_off", "note": "x"})
    assert refused.status_code == 403
    session.expire_all()
    assert by_id(session, ReconException, exception_id).status == "open"


def test_a_proposal_waiting_for_its_second_person_cannot_be_replaced(session, exception_id) -> None:  # type: ignore[no-untyped-def]
    municipality_id = session.scalar(select(Municipality.id))
    resolve_exception(session, municipality_id, exception_id, "refund", "refund the app payment", actor="a")
    for who, resolution in (("a", "handed_to_core_system"), ("q", "apply_to_other_instalment")):
        with pytest.raises(GatewayError) as refused:
            resolve_exception(session, municipality_id, exception_id, resolution, "instead", actor=who)
        assert refused.value.code == "exception_not_open"
    session.expire_all()
    item = by_id(session, ReconException, exception_id)
    assert (item.status, item.resolution, item.proposed_by) == ("pending_approval", "refund", "a")


def test_many_exceptions_at_once_are_raised_once_each_and_counted_by_kind(session) -> None:  # type: ignore[no-untyped-def]
    # More than BULK_EXCEPTIONS: PostgreSQL takes the COPY path; SQLite the multi-row insert.
    municipality_id = session.scalar(select(Municipality.id))
    many = [dict(kind="unknown_slip" if n % 3 else "amount_mismatch", subject_key=f"agency_report:{n}",
                 business_date=date(2026, 7, 1), amount=n + 1, details={"reason": f"case {n}: \\ \t \"quoted\" 〜"})
            for n in range(2_500)]
    first = raise_exceptions(session, municipality_id, many[:1_500] + many[:10])  # ten repeated within the call
    again = raise_exceptions(session, municipality_id, many)  # the first 1,500 recorded before
    assert first == {"unknown_slip": 1_000, "amount_mismatch": 500}
    assert again == {"unknown_slip": 666, "amount_mismatch": 334}
    stored = session.scalars(select(ReconException).where(ReconException.subject_key == "agency_report:7")).one()
    assert (stored.kind, stored.status, stored.amount) == ("unknown_slip", "open", 8)
    assert stored.details == {"reason": "case 7: \\ \t \"quoted\" 〜"}
