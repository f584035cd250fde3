"""Hostile inputs at every door answer 4xx with a clear reason, never a 500 (issue 16, "Inputs").

Each case here was a 500 on PostgreSQL (most on SQLite too): NUL bytes in paths, query
strings, forms, JSON and headers; lone surrogates in JSON; ids, page numbers and amounts
beyond 64 bits; JSON nested 10,000 deep. The API answers with the error envelope, the staff
and pay pages with their HTML error page.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.calendar import TOKYO
from gateway.services.apikeys import create_api_key
from gateway.services.staff_accounts import create_user
from tests.staff import PASSWORD, log_in

CODE = "131075"
HUGE = 2**64  # beyond any database integer
ALL_SCOPES = ("slips:read", "payments:read", "reconciliation:read", "payments:write", "slips:reissue",
              "deposits:write", "personal-data:read", "agency:import:agency-csv", "agency:import:agency-fixed120")
DEPOSITS = "/api/v1/agency/agency-csv/deposits"
TODAY = datetime.now(TOKYO).date()  # statement dates are business dates in Asia/Tokyo


@pytest.fixture
def headers(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {create_api_key(session, 'fuzz', CODE, actor='test', scopes=ALL_SCOPES)}"}


@pytest.fixture
def staff(client, session):  # type: ignore[no-untyped-def]
    create_user(session, CODE, "kaikei", "accounting", PASSWORD, actor="test")
    create_user(session, CODE, "madoguchi", "counter_supervisor", PASSWORD, actor="test")
    return client


def _refused(response: Any, status: int = 400, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def _page(response: Any, status: int = 400) -> str:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)  # type: ignore[no-any-return]


def _deposit(**changes: Any) -> dict[str, Any]:
    return {"deposited_on": TODAY.isoformat(), "amount": 12_300, "reference": "FURIKOMI 0001", **changes}


# -- NUL bytes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/slips/1234%00", "/api/v1/slips/%00/pdf", "/api/v1/slips/%00/barcode.svg",
                                  "/api/v1/reconciliation/2026-04-01%00", "/api/v1/agency/%00/deposits"])
def test_a_nul_byte_in_an_api_path_is_refused_with_the_envelope(client, headers, path: str) -> None:  # type: ignore[no-untyped-def]
    method = client.post if path.endswith("deposits") else client.get
    error = _refused(method(path, headers=headers, json=_deposit()), code="invalid_characters")
    assert "NUL" in error["message"] and error["details"] == {"where": "path"}


@pytest.mark.parametrize("query", ["fund_code=01%00", "assessment_id=%00", "status=issued%00"])
def test_a_nul_byte_in_a_query_string_is_refused(client, headers, query: str) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.get(f"/api/v1/slips?{query}", headers=headers), code="invalid_characters")
    assert error["details"] == {"where": "query", "field": query.split("=")[0]}


def test_a_nul_byte_in_the_import_file_name_is_refused(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/agency/agency-csv/imports?filename=a%00.csv", headers=headers, data=b"x",
                           content_type="application/octet-stream")
    _refused(response, code="invalid_characters")


def test_a_nul_byte_in_a_json_string_is_refused(client, headers) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.post(DEPOSITS, headers=headers, json=_deposit(reference="FURIKOMI\x000001")),
                     code="invalid_characters")
    assert error["details"] == {"where": "json", "field": "reference"}


def test_a_nul_byte_in_a_header_is_refused(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/payments", headers={**headers, "Idempotency-Key": "k\x001"},
                           json={"slip_number": "0" * 16, "channel": "card", "return_url": "https://example.jp/"})
    assert _refused(response, code="invalid_characters")["details"] == {"where": "header", "field": "Idempotency-Key"}


def test_a_nul_byte_in_the_sign_in_form_answers_the_staff_error_page(staff) -> None:  # type: ignore[no-untyped-def]
    page = _page(log_in(staff, "kaikei\x00", PASSWORD))
    assert "送信できませんでした" in page


def test_a_nul_byte_in_a_pay_page_address_answers_the_pay_error_page(client) -> None:  # type: ignore[no-untyped-def]
    _page(client.get("/pay/abc%00def"))
    _page(client.get("/pay/abc%00def/result"))


def test_a_nul_byte_in_a_staff_page_query_answers_the_staff_error_page(staff) -> None:  # type: ignore[no-untyped-def]
    assert log_in(staff, "kaikei").status_code == 302
    _page(staff.get("/staff/exceptions?kind=unknown_slip%00"))


# -- lone surrogates ------------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc80b"])
def test_a_lone_surrogate_in_json_is_refused(client, headers, escape: str) -> None:  # type: ignore[no-untyped-def]
    body = f'{{"deposited_on": "{TODAY}", "amount": 100, "reference": "{escape}"}}'
    error = _refused(client.post(DEPOSITS, headers=headers, data=body, content_type="application/json"),
                     code="invalid_characters")
    assert "surrogate" in error["message"] and error["details"] == {"where": "json", "field": "reference"}


def test_a_surrogate_pair_is_an_ordinary_character(client, headers) -> None:  # type: ignore[no-untyped-def]
    body = f'{{"deposited_on": "{TODAY}", "amount": 100, "reference": "\\ud842\\udfb7 0001"}}'  # 𠮷
    response = client.post(DEPOSITS, headers=headers, data=body, content_type="application/json")
    assert response.status_code == 200 and response.json == {"recorded": True}


# -- integers beyond 64 bits ----------------------------------------------------------------------


@pytest.mark.parametrize("payment_id", [2**31, 2**63, HUGE, 10**30])
def test_a_payment_id_beyond_the_database_is_not_found(client, headers, payment_id: int) -> None:  # type: ignore[no-untyped-def]
    _refused(client.get(f"/api/v1/payments/{payment_id}", headers=headers), status=404)


@pytest.mark.parametrize("path", ["/staff/exceptions/{}", "/staff/feed/{}", "/staff/revenue/files/{}"])
def test_a_staff_page_id_beyond_the_database_is_not_found(staff, path: str) -> None:  # type: ignore[no-untyped-def]
    assert log_in(staff, "kaikei").status_code == 302
    _page(staff.get(path.format(HUGE)), status=404)


def test_a_sale_id_beyond_the_database_is_not_found(staff) -> None:  # type: ignore[no-untyped-def]
    assert log_in(staff, "madoguchi").status_code == 302
    _page(staff.get(f"/staff/counter/sales/{HUGE}"), status=404)


@pytest.mark.parametrize("page", [HUGE, 2**62, 10**30])
def test_a_page_number_beyond_any_list_is_refused(client, headers, page: int) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.get(f"/api/v1/slips?page={page}", headers=headers), status=422, code="validation_failed")
    assert "page" in error["details"]["fields"]["query"]


def test_a_page_size_beyond_the_maximum_is_refused(client, headers) -> None:  # type: ignore[no-untyped-def]
    _refused(client.get(f"/api/v1/slips?page_size={HUGE}", headers=headers), status=422)


@pytest.mark.parametrize("amount", [HUGE, 2**63, 100_000_000_000])
def test_a_deposit_amount_beyond_the_largest_plausible_one_is_refused(client, headers, amount: int) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.post(DEPOSITS, headers=headers, json=_deposit(amount=amount)), status=422)
    assert "amount" in error["details"]["fields"]["json"]


def test_the_largest_plausible_deposit_is_recorded(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post(DEPOSITS, headers=headers, json=_deposit(amount=99_999_999_999))
    assert response.status_code == 200 and response.json == {"recorded": True}


# -- deposits: integers and dates as a bank statement has them ------------------------------------


@pytest.mark.parametrize("amount", [1.5, "1.5", "１２３００", "12300", True, 0, -1])
def test_a_deposit_amount_that_is_not_a_whole_positive_number_of_yen_is_refused(client, headers, amount: Any) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.post(DEPOSITS, headers=headers, json=_deposit(amount=amount)), status=422)
    assert "amount" in error["details"]["fields"]["json"]


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "２０２６-０４-０１", "2026-04-01T00:00:00",
                                 (TODAY + timedelta(days=2)).isoformat(),
                                 (TODAY - timedelta(days=6 * 366)).isoformat()])
def test_a_deposit_date_outside_a_plausible_range_is_refused(client, headers, day: str) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.post(DEPOSITS, headers=headers, json=_deposit(deposited_on=day)), status=422)
    assert "deposited_on" in error["details"]["fields"]["json"]


def test_the_message_for_an_absurd_deposit_date_names_the_range(client, headers) -> None:  # type: ignore[no-untyped-def]
    error = _refused(client.post(DEPOSITS, headers=headers, json=_deposit(deposited_on="9999-12-31")), status=422)
    (message,) = error["details"]["fields"]["json"]["deposited_on"]
    assert "between" in message and str(TODAY) in message


def test_a_deposit_of_a_past_business_day_is_recorded(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post(DEPOSITS, headers=headers, json=_deposit(deposited_on=str(TODAY - timedelta(days=400))))
    assert response.status_code == 200 and response.json == {"recorded": True}


# -- nested JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 10_000])
def test_json_nested_deeper_than_the_limit_is_refused_before_it_is_parsed(client, headers, depth: int) -> None:  # type: ignore[no-untyped-def]
    body = '{"reference": ' + "[" * depth + "]" * depth + "}"
    error = _refused(client.post(DEPOSITS, headers=headers, data=body, content_type="application/json"),
                     code="json_too_deep")
    assert "32" in error["message"]


def test_brackets_inside_json_strings_do_not_count_as_nesting(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post(DEPOSITS, headers=headers, json=_deposit(reference="[[[[" * 20 + '\\"{{{{' * 20))
    assert response.status_code == 422  # too long a reference: the schema's answer, not the depth limit
    assert response.json["error"]["code"] == "validation_failed"


def test_json_that_does_not_parse_is_a_400_with_the_envelope(client, headers) -> None:  # type: ignore[no-untyped-def]
    _refused(client.post(DEPOSITS, headers=headers, data=b'{"amount": ', content_type="application/json"))
    _refused(client.post(DEPOSITS, headers=headers, data=b'\xff\xfe{}', content_type="application/json"))
