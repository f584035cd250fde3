"""Collection-agency data over the API: staff upload agency files, enter deposits, read remittances and exceptions."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.agency.simulator import StorePayment, files_by_day, schedule, write_file
from gateway.models import AgencyDeposit, AgencyImport, AgencyReport, Payment, ReconException, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

CODE = "131075"
CLIENT_CODE = "13107"
ADAPTER = "agency-csv"
# agency-nowhere too: an adapter that is not configured is a 404 even for a key that names it
AGENCY_SCOPES = (f"agency:import:{ADAPTER}", "agency:import:agency-nowhere", "deposits:write", "reconciliation:read",
                 "slips:read")
PAID_AT = datetime(2026, 6, 1, 10, 30)  # a Monday, well before the due date and the store deadline


def _row(n: int, amount: int) -> dict[str, Any]:
    return dict(municipality_code=CODE, assessment_id=f"01-2026-{n:010d}", fund_code="01", fiscal_year=2026,
                installment=1, payer_ref=f"{n:010d}", payer_name="墨田　花子", amount=amount,
                due_date=date(2026, 6, 30))


@pytest.fixture
def slips(session, cipher) -> list[Slip]:  # type: ignore[no-untyped-def]
    rows = [_row(1, 12_300), _row(2, 4_500), _row(3, 8_000)]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    found = list(session.scalars(select(Slip).order_by(Slip.amount)))
    assert len(found) == 3 and all(s.barcode for s in found)
    return found


@pytest.fixture
def headers(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    key = create_api_key(session, 'accounting', CODE, actor='test', scopes=AGENCY_SCOPES)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def agency(app):  # type: ignore[no-untyped-def]
    return app.extensions["kokin.agencies"][ADAPTER]


def _payment(slip: Slip, store: str = "1234567", chain: str = "010", at: datetime = PAID_AT) -> StorePayment:
    assert slip.barcode is not None
    return StorePayment(slip.barcode, at, store, chain)


def _one_file(agency: Any, payments: list[StorePayment]) -> bytes:
    """Every record of these payments (速報 and 確報) in one file, as the simulator writes it."""
    return write_file(agency, schedule(payments), created_on=date(2026, 6, 15), client_code=CLIENT_CODE)


def _upload(client: Any, headers: dict[str, str], data: bytes, adapter: str = ADAPTER,
            filename: str = "agency.csv") -> Any:
    return client.post(f"/api/v1/agency/{adapter}/imports?filename={filename}", data=data, headers={
        **headers, "Content-Type": "application/octet-stream"})


def _count(session: Any, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_an_uploaded_file_books_its_payments_and_the_same_bytes_again_change_nothing(  # type: ignore[no-untyped-def]
        client, headers, slips, agency, session) -> None:
    paid = slips[:2]
    files = files_by_day(agency, schedule([_payment(s) for s in paid]), client_code=CLIENT_CODE)
    first_day = min(files)
    data = files[first_day]  # the 速報 file, the next business day
    response = _upload(client, headers, data, filename=f"sokuho-{first_day:%Y%m%d}.csv")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["adapter"] == ADAPTER and body["already_imported"] is False and body["import_id"] is not None
    assert body["records"] == 2 and body["booked"] == 2 and body["total_amount"] == sum(s.amount for s in paid)
    assert body["confirmed"] == 0 and body["cancelled"] == 0 and body["repeated"] == 0 and body["exceptions"] == {}
    for slip in paid:
        shown = client.get(f"/api/v1/slips/{slip.number}", headers=headers)
        assert shown.status_code == 200 and shown.json["status"] == "paid"
    assert client.get(f"/api/v1/slips/{slips[2].number}", headers=headers).json["status"] == "issued"

    counts = (_count(session, Payment), _count(session, AgencyReport), _count(session, AgencyImport))
    again = _upload(client, headers, data, filename="renamed.csv")
    assert again.status_code == 200, again.json
    assert again.json["already_imported"] is True and again.json["booked"] == 0 and again.json["import_id"] is None
    assert (_count(session, Payment), _count(session, AgencyReport), _count(session, AgencyImport)) == counts
    assert counts == (2, 2, 1)


def test_a_file_with_a_record_cut_short_is_rejected_whole_naming_the_record_and_field(  # type: ignore[no-untyped-def]
        client, headers, slips, agency, session) -> None:
    data = _one_file(agency, [_payment(s) for s in slips])
    lines = data.split(b"\r\n")
    assert len(lines) > 3
    cut = lines[1].rsplit(b",", 3)[0]  # the second record loses its last three columns
    bad = b"\r\n".join([lines[0], cut, *lines[2:]])
    response = _upload(client, headers, bad)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "agency_file_rejected" and "nothing was applied" in error["message"]
    assert error["details"]["errors"] == ["record 2: has 10 columns, expected 13 (truncated or shifted line?)"]

    field = lines[1].split(b",")
    field[7] = b"12x00"  # the amount column
    response = _upload(client, headers, b"\r\n".join([lines[0], b",".join(field), *lines[2:]]))
    assert response.status_code == 422, response.json
    errors = response.json["error"]["details"]["errors"]
    assert errors == ["record 2, field amount: must be a whole number, got '12x00'"], errors
    assert (_count(session, AgencyImport), _count(session, AgencyReport), _count(session, Payment)) == (0, 0, 0)
    assert _count(session, ReconException) == 0
    assert {s.status for s in session.scalars(select(Slip))} == {"issued"}


def test_an_unknown_adapter_an_empty_body_and_a_missing_key_are_refused(client, headers, slips, agency) -> None:  # type: ignore[no-untyped-def]
    data = _one_file(agency, [_payment(slips[0])])
    unknown = _upload(client, headers, data, adapter="agency-nowhere")
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "unknown_adapter"
    empty = _upload(client, headers, b"")
    assert empty.status_code == 422 and empty.json["error"]["code"] == "empty_file"
    anonymous = _upload(client, {}, data)
    assert anonymous.status_code == 401, anonymous.json
    assert client.get("/api/v1/agency/remittances").status_code == 401
    assert client.get("/api/v1/exceptions").status_code == 401


def test_a_deposit_is_recorded_once_and_a_zero_amount_is_a_schema_error(client, headers, session) -> None:  # type: ignore[no-untyped-def]
    deposit = {"deposited_on": "2026-06-15", "amount": 12_300, "reference": "stmt-0001"}
    first = client.post(f"/api/v1/agency/{ADAPTER}/deposits", json=deposit, headers=headers)
    assert first.status_code == 200 and first.json == {"recorded": True}, first.json
    again = client.post(f"/api/v1/agency/{ADAPTER}/deposits", json=deposit, headers=headers)
    assert again.status_code == 200 and again.json == {"recorded": False}, again.json
    assert _count(session, AgencyDeposit) == 1
    zero = client.post(f"/api/v1/agency/{ADAPTER}/deposits", json={**deposit, "amount": 0, "reference": "z"},
                       headers=headers)
    assert zero.status_code == 422, zero.json
    assert zero.json["error"]["code"] == "validation_failed"
    assert "amount" in str(zero.json["error"]["details"]), zero.json
    assert _count(session, AgencyDeposit) == 1
    unknown = client.post("/api/v1/agency/agency-nowhere/deposits", json=deposit, headers=headers)
    assert unknown.status_code == 404


def test_a_deposit_may_name_its_bank_account_written_bank_branch_type_number(client, headers, session) -> None:  # type: ignore[no-untyped-def]
    deposit = {"deposited_on": "2026-06-15", "amount": 12_300, "reference": "stmt-0002",
               "account": "0001-001-1-0100011"}
    recorded = client.post(f"/api/v1/agency/{ADAPTER}/deposits", json=deposit, headers=headers)
    malformed = client.post(f"/api/v1/agency/{ADAPTER}/deposits", headers=headers,
                            json={**deposit, "reference": "stmt-0003", "account": "0001-001-0100011"})

    assert recorded.status_code == 200 and recorded.json == {"recorded": True}, recorded.json
    assert session.scalar(select(AgencyDeposit.account)) == "0001-001-1-0100011"
    assert malformed.status_code == 422 and malformed.json["error"]["code"] == "invalid_bank_account", malformed.json
    assert "BBBB-SSS-T-NNNNNNN" in malformed.json["error"]["message"]
    assert _count(session, AgencyDeposit) == 1


def test_remittances_show_what_the_final_reports_announce_and_what_the_deposits_brought(  # type: ignore[no-untyped-def]
        client, headers, slips, agency) -> None:
    payments = [_payment(s) for s in slips]
    scheduled = schedule(payments)
    for day, data in files_by_day(agency, scheduled, client_code=CLIENT_CODE).items():
        assert _upload(client, headers, data, filename=f"{day:%Y%m%d}.csv").status_code == 200
    planned: dict[date, int] = {}
    for record in scheduled:
        if record.kind == "final":
            assert record.remittance_on is not None
            planned[record.remittance_on] = planned.get(record.remittance_on, 0) + record.payment.amount
    before = client.get("/api/v1/agency/remittances", headers=headers)
    assert before.status_code == 200, before.json
    rows = {r["remittance_on"]: r for r in before.json}
    assert {d: r["expected"] for d, r in rows.items()} == {d.isoformat(): a for d, a in planned.items()}
    assert all(r["adapter"] == ADAPTER and r["received"] == 0 and r["difference"] == -r["expected"]
               for r in rows.values())
    assert sum(r["payments"] for r in rows.values()) == 3

    day, amount = next(iter(sorted(planned.items())))
    deposit = {"deposited_on": day.isoformat(), "amount": amount, "reference": "stmt-1"}
    assert client.post(f"/api/v1/agency/{ADAPTER}/deposits", json=deposit, headers=headers).json["recorded"]
    after = {r["remittance_on"]: r for r in client.get("/api/v1/agency/remittances", headers=headers).json}
    assert after[day.isoformat()]["received"] == amount and after[day.isoformat()]["difference"] == 0


def test_the_exception_queue_lists_a_double_payment_and_refuses_an_unknown_kind(  # type: ignore[no-untyped-def]
        client, headers, slips, agency) -> None:
    twice = slips[1]
    payments = [_payment(twice), _payment(twice, store="0000001", chain="020", at=PAID_AT.replace(minute=37)),
                _payment(slips[0])]
    response = _upload(client, headers, _one_file(agency, payments))
    assert response.status_code == 200, response.json
    assert response.json["booked"] == 2 and response.json["exceptions"] == {"double_payment": 1}

    listed = client.get("/api/v1/exceptions?kind=double_payment", headers=headers)
    assert listed.status_code == 200, listed.json
    assert len(listed.json) == 1
    exception = listed.json[0]
    assert exception["kind"] == "double_payment" and exception["status"] == "open"
    assert exception["slip_number"] == twice.number and exception["amount"] == twice.amount
    assert exception["payment_id"] is not None and exception["agency_report_id"] is not None
    assert client.get("/api/v1/exceptions?kind=unknown_slip", headers=headers).json == []
    assert len(client.get("/api/v1/exceptions?status=open&limit=5", headers=headers).json) == 1

    unknown = client.get("/api/v1/exceptions?kind=no_such_kind", headers=headers)
    assert unknown.status_code == 422 and unknown.json["error"]["code"] == "validation_failed"
    assert client.get("/api/v1/exceptions?limit=0", headers=headers).status_code == 422
