"""GET /api/v1/reconciliation/{date}: the run of a business date with its exceptions (CONTRACT.md)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from gateway.models import Municipality
from gateway.services.apikeys import create_api_key
from gateway.services.exceptions import raise_exceptions
from reconciliation.run import reconcile_day

DAY = date(2026, 7, 1)


def _auth(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {create_api_key(session, 'accounting', '131075', actor='test')}"}


def test_a_reconciled_day_is_returned_with_its_exceptions_each_with_a_contract_kind(client, session) -> None:  # type: ignore[no-untyped-def]
    headers = _auth(session)
    municipality_id = session.scalar(select(Municipality.id))
    raise_exceptions(session, municipality_id, [dict(kind="unknown_slip", subject_key="agency_report:1",
                                                     business_date=DAY, amount=5_000, details={"reason": "x"})])
    session.commit()
    reconcile_day(session, "131075", DAY)
    reconcile_day(session, "131075", DAY)

    answer = client.get(f"/api/v1/reconciliation/{DAY.isoformat()}", headers=headers)

    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["business_date"], body["status"], body["runs"]) == ("2026-07-01", "succeeded", 2)
    assert [(e["kind"], e["amount"]) for e in body["exceptions"]] == [("unknown_slip", 5_000)]
    assert body["summary"]["open_exceptions"] == {"unknown_slip": 1}


def test_a_day_never_reconciled_is_not_found_and_a_bad_date_is_refused(client, session) -> None:  # type: ignore[no-untyped-def]
    headers = _auth(session)
    missing = client.get("/api/v1/reconciliation/2026-07-02", headers=headers)
    bad = client.get("/api/v1/reconciliation/2026-02-30", headers=headers)
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_reconciled")
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (422, "invalid_date")
    assert client.get("/api/v1/reconciliation/2026-07-01").status_code == 401
