"""The queue as staff work it: filters, counts per kind and age, and work in bulk, all or nothing."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import BulkRefused, GatewayError, InvalidFilter
from gateway.models import Event, Municipality, ReconException
from gateway.services import queue
from gateway.services.exceptions import resolve_exception
from gateway.services.staff_accounts import create_user
from tests.rows import by_id
from tests.staff import PASSWORD, csrf_token, log_in

TODAY = date(2026, 7, 31)


@pytest.fixture
def planted(session: Session) -> dict[str, list[int]]:
    """Exceptions of three kinds and four ages; one of them assigned."""
    ward = session.scalar(select(Municipality.id))
    plan = [("remittance_mismatch", 0), ("remittance_mismatch", 1), ("remittance_mismatch", 5),
            ("fee_netted", 10), ("fee_netted", 40), ("unknown_slip", 3)]
    ids: dict[str, list[int]] = {}
    for n, (kind, age) in enumerate(plan):
        item = ReconException(municipality_id=ward, kind=kind, subject_key=f"t:{n}", amount=-100 * (n + 1),
                              business_date=TODAY - timedelta(days=age), details={},
                              assigned_to="suzuki" if n == 0 else None)
        session.add(item)
        session.flush()
        ids.setdefault(kind, []).append(item.id)
    session.commit()
    return ids


def _ward(session: Session) -> int:
    return int(session.scalar(select(Municipality.id)))


def _ids(session: Session, **args: str) -> list[int]:
    rows, total = queue.queue(session, _ward(session), queue.parse_filter(args, me="acct"), today=TODAY)
    assert total == len(rows)
    return [row.item.id for row in rows]


def test_filters_by_kind_age_assignee_and_dates(session: Session, planted: dict[str, list[int]]) -> None:
    mismatch = planted["remittance_mismatch"]
    assert _ids(session, kind="remittance_mismatch") == [mismatch[2], mismatch[1], mismatch[0]]  # oldest first
    assert _ids(session, age="0-2") == [mismatch[1], mismatch[0]]
    assert _ids(session, age="31-") == [planted["fee_netted"][1]]
    assert _ids(session, assignee="-", kind="remittance_mismatch") == [mismatch[2], mismatch[1]]
    assert _ids(session, assignee="suzuki") == [mismatch[0]]
    assert _ids(session, **{"from": "2026-07-26", "to": "2026-07-30"}) == [mismatch[2], planted["unknown_slip"][0],
                                                                         mismatch[1]]
    assert _ids(session, channel="card") == []


@pytest.mark.parametrize(("args", "field"), [({"kind": "no_such"}, "kind"), ({"from": "2026-13-01"}, "from"),
                                             ({"from": "2026-07-02", "to": "2026-07-01"}, "to"),
                                             ({"age": "9"}, "age"), ({"status": "closed"}, "status")])
def test_a_bad_filter_names_its_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidFilter) as refused:
        queue.parse_filter(args, me="acct")
    assert refused.value.field == field


def test_counts_per_kind_and_age_are_one_query_of_the_open_work(session: Session,
                                                                planted: dict[str, list[int]]) -> None:
    ward = _ward(session)
    resolve_exception(session, ward, planted["unknown_slip"][0], "corrected_by_agency", "x", actor="acct")
    assert _ids(session, kind="unknown_slip") == []  # the open work unless asked otherwise
    assert _ids(session, kind="unknown_slip", status="all") == planted["unknown_slip"]
    assert queue.counts(session, ward, today=TODAY) == {
        "remittance_mismatch": {"0-2": 2, "3-7": 1}, "fee_netted": {"8-30": 1, "31-": 1}}


def test_bulk_resolution_is_all_or_nothing_and_names_each_refusal(session: Session,
                                                                  planted: dict[str, list[int]]) -> None:
    ward, mismatch = _ward(session), planted["remittance_mismatch"]
    resolve_exception(session, ward, mismatch[0], "booked_correctly", "checked", actor="acct")
    with pytest.raises(BulkRefused) as refused:
        queue.bulk(session, ward, [*mismatch, 999_999], "resolve", resolution="corrected_by_agency", note="re-sent",
                   actor="acct")
    assert refused.value.refusals == [(mismatch[0], "exception_not_open"), (999_999, "unknown_exception")]
    session.expire_all()
    assert [by_id(session, ReconException, i).status for i in mismatch[1:]] == ["open", "open"]
    with pytest.raises(GatewayError) as mixed:
        queue.bulk(session, ward, [mismatch[1], planted["fee_netted"][0]], "resolve", resolution="booked_correctly",
                   note="x", actor="acct")
    assert mixed.value.code == "mixed_kinds"
    assert queue.bulk(session, ward, mismatch[1:], "resolve", resolution="corrected_by_agency", note="re-sent",
                      actor="acct") == 2
    session.expire_all()
    assert {by_id(session, ReconException, i).status for i in mismatch[1:]} == {"resolved"}
    events = session.scalars(select(Event.kind).where(Event.subject_type == "recon_exception",
                                                      Event.subject_id.in_([str(i) for i in mismatch[1:]])))
    assert sorted(events) == ["exception.resolved", "exception.resolved"]


def test_bulk_money_waits_for_a_second_person_who_approves_in_bulk_but_never_their_own(
        session: Session, planted: dict[str, list[int]]) -> None:
    ward, mismatch = _ward(session), planted["remittance_mismatch"]
    assert queue.bulk(session, ward, mismatch, "resolve", resolution="write_off", note="small", actor="acct") == 3
    with pytest.raises(BulkRefused) as own:
        queue.bulk(session, ward, mismatch, "approve", actor="acct")
    assert {code for _i, code in own.value.refusals} == {"four_eyes_required"}
    assert queue.bulk(session, ward, mismatch, "approve", actor="approver") == 3
    session.expire_all()
    assert {(by_id(session, ReconException, i).status, by_id(session, ReconException, i).resolved_by)
            for i in mismatch} == {("resolved", "approver")}


def test_bulk_bounds_and_other_wards(session: Session, planted: dict[str, list[int]]) -> None:
    ward = _ward(session)
    for ids, code in (([], "nothing_selected"), (list(range(1, queue.MAX_BULK + 2)), "too_many_selected")):
        with pytest.raises(GatewayError) as refused:
            queue.bulk(session, ward, ids, "assign", assignee="x", actor="acct")
        assert refused.value.code == code
    with pytest.raises(BulkRefused):  # another ward's numbers are no exceptions of this one
        queue.bulk(session, ward + 1, planted["fee_netted"], "assign", assignee="x", actor="acct")


def test_the_queue_page_filters_counts_and_works_in_bulk(app: Flask, session: Session,
                                                         planted: dict[str, list[int]]) -> None:
    create_user(session, "131075", "acct", "accounting", PASSWORD, actor="test")
    create_user(session, "131075", "aud", "auditor", PASSWORD, actor="test")
    client = app.test_client()
    log_in(client, "acct")
    page = client.get("/staff/exceptions?kind=remittance_mismatch").get_data(as_text=True)
    for text in ('id="counts"', "<td>入金額の相違</td>", "まとめて処理する"):
        assert text in page, text
    assert client.get("/staff/exceptions?from=notadate").status_code == 200  # the page says so, never a 500
    assert "絞り込みの条件が正しくありません" in client.get("/staff/exceptions?from=notadate").get_data(as_text=True)
    token = csrf_token(client, "/staff/exceptions")
    mismatch = planted["remittance_mismatch"]
    answer = client.post("/staff/exceptions/bulk", data={"csrf_token": token, "ids": [str(i) for i in mismatch],
                                                         "action": "assign_me", "back": "kind=remittance_mismatch"})
    assert answer.status_code == 302 and answer.location.endswith("/staff/exceptions?kind=remittance_mismatch")
    assert "3件の例外を処理しました。" in client.get(answer.location).get_data(as_text=True)
    session.expire_all()
    assert {by_id(session, ReconException, i).assigned_to for i in mismatch} == {"acct"}
    refused = client.post("/staff/exceptions/bulk", data={"csrf_token": token, "ids": [str(mismatch[0]), "x"],
                                                          "action": "assign_me"})
    assert refused.status_code == 302
    assert client.post("/staff/exceptions/bulk", data={"ids": [str(mismatch[0])], "action": "assign_me"}
                       ).status_code == 400  # no CSRF token
    auditor = app.test_client()
    log_in(auditor, "aud")
    assert auditor.post("/staff/exceptions/bulk", data={"csrf_token": csrf_token(auditor, "/staff/exceptions"),
                                                        "ids": [str(mismatch[0])], "action": "assign_me"}
                        ).status_code == 403
