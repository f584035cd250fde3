"""A playbook per exception kind, as data a ward edits: what is allowed, and who must agree."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import GatewayError
from gateway.models import EXCEPTION_KINDS, RESOLUTIONS, Event, ExceptionPlaybook, Municipality, ReconException
from gateway.services.exceptions import raise_exceptions, resolve_exception
from gateway.services.playbooks import defaults, playbook_of, playbooks_of, reset_playbook, save_playbook
from gateway.services.reference import seed_reference_data
from tests.api.test_ward_isolation import _ward_b
from tests.rows import by_id


def _wards(session: Session) -> tuple[int, int]:
    """The suite's ward and a second one (江東区)."""
    seed_reference_data(session, [_ward_b()])
    session.commit()
    first, second = session.scalars(select(Municipality.id).order_by(Municipality.id)).all()[:2]
    return first, second


def _exception(session: Session, municipality_id: int, kind: str) -> int:
    raise_exceptions(session, municipality_id, [dict(kind=kind, subject_key=f"test:{kind}", amount=-1_000,
                                                     business_date=date(2026, 7, 1), details={})])
    session.commit()
    return int(session.scalar(select(ReconException.id).where(ReconException.municipality_id == municipality_id,
                                                              ReconException.kind == kind)))


def test_every_kind_has_a_default_and_money_always_needs_a_second_person() -> None:
    books = defaults()
    assert set(books) == set(EXCEPTION_KINDS)
    for book in books.values():
        assert book.meaning and book.checks and book.resolutions
        for play in book.resolutions:
            assert play.effect
            if RESOLUTIONS[play.code]:
                assert play.second_person, (book.kind, play.code)
    assert [p.code for p in books["double_payment"].resolutions][0] == "handed_to_core_system"


def test_a_resolution_the_playbook_does_not_allow_is_refused_and_changes_nothing(session: Session) -> None:
    ward, _second = _wards(session)
    exception_id = _exception(session, ward, "fee_netted")
    with pytest.raises(GatewayError) as refused:
        resolve_exception(session, ward, exception_id, "refund", "pay it back", actor="acct")
    assert refused.value.code == "resolution_not_in_playbook" and refused.value.status == 422
    session.expire_all()
    item = by_id(session, ReconException, exception_id)
    assert (item.status, item.resolution) == ("open", None)


def test_a_ward_makes_a_resolution_need_two_people_but_cannot_make_money_need_one(session: Session) -> None:
    ward, second = _wards(session)
    saved = save_playbook(session, ward, "remittance_mismatch", meaning="振込の過不足", checks=["明細を見る", " "],
                          resolutions=[{"code": "booked_correctly", "effect": "過不足なし", "second_person": True},
                                       {"code": "write_off", "effect": "損失", "second_person": False}],
                          actor="admin")
    assert saved.checks == ("明細を見る",) and all(play.second_person for play in saved.resolutions)
    exception_id = _exception(session, ward, "remittance_mismatch")
    proposed = resolve_exception(session, ward, exception_id, "booked_correctly", "明細で確認", actor="acct")
    assert (proposed.status, proposed.proposed_by) == ("pending_approval", "acct")
    with pytest.raises(GatewayError) as refused:  # a proposal waits: nothing else is taken meanwhile
        resolve_exception(session, ward, exception_id, "corrected_by_agency", "x", actor="acct")
    assert refused.value.code == "exception_not_open"
    other = _exception(session, second, "remittance_mismatch")  # the other ward keeps the default
    assert playbook_of(session, second, "remittance_mismatch") == defaults()["remittance_mismatch"]
    assert resolve_exception(session, second, other, "corrected_by_agency", "再送", actor="acct").status == "resolved"
    kinds = [e.kind for e in session.scalars(select(Event).where(Event.subject_type == "exception_playbook"))]
    assert kinds == ["playbook.updated"]


def test_the_edited_playbook_refuses_what_it_no_longer_allows(session: Session) -> None:
    ward, _second = _wards(session)
    save_playbook(session, ward, "fee_netted", meaning="手数料", checks=[],
                  resolutions=[{"code": "booked_correctly", "effect": "総額で計上"}], actor="admin")
    exception_id = _exception(session, ward, "fee_netted")
    with pytest.raises(GatewayError) as refused:
        resolve_exception(session, ward, exception_id, "corrected_by_agency", "x", actor="acct")
    assert refused.value.code == "resolution_not_in_playbook"
    reset_playbook(session, ward, "fee_netted", actor="admin")
    assert playbook_of(session, ward, "fee_netted") == defaults()["fee_netted"]
    assert resolve_exception(session, ward, exception_id, "corrected_by_agency", "x", actor="acct").status == "resolved"


@pytest.mark.parametrize(("fields", "code"), [
    ({"meaning": " "}, "invalid_meaning"),
    ({"resolutions": []}, "no_resolution"),
    ({"resolutions": [{"code": "pay_twice", "effect": "x"}]}, "unknown_resolution"),
    ({"resolutions": [{"code": "refund", "effect": " "}]}, "invalid_effect"),
    ({"resolutions": [{"code": "refund", "effect": "a"}, {"code": "refund", "effect": "b"}]}, "duplicate_resolution"),
    ({"checks": ["x"] * 13}, "invalid_checks"),
])
def test_a_bad_playbook_is_refused_with_its_reason_and_nothing_is_written(session: Session, fields: dict,  # type: ignore[type-arg]
                                                                           code: str) -> None:
    ward, _second = _wards(session)
    values = {"meaning": "意味", "checks": ["確認"], "resolutions": [{"code": "refund", "effect": "返す"}], **fields}
    with pytest.raises(GatewayError) as refused:
        save_playbook(session, ward, "double_payment", actor="admin", **values)
    assert refused.value.code == code
    session.rollback()
    assert session.scalar(select(ExceptionPlaybook.kind)) is None
    assert playbooks_of(session, ward) == [defaults()[kind] for kind in EXCEPTION_KINDS]
