"""No 500 from any input: the classes of input that gave 500s on PostgreSQL, each answered with a clear 4xx.

NUL bytes and lone surrogates in paths, query strings, forms and JSON; ids and page numbers
beyond 64 bits; deposit amounts beyond 64 bits, fractions, full-width digits and absurd
dates; JSON nested 10,000 deep; a correctly signed notification that is not an event.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.stripe import signature
from adapters.stripe.simulator import SANDBOX_WEBHOOK_SECRET
from gateway.models import AgencyDeposit, Event
from gateway.services.apikeys import SCOPES, create_api_key

CODE = "131075"
HUGE = str(2**64 + 1)


@pytest.fixture
def headers(session: Any) -> dict[str, str]:
    scopes = [s for s in SCOPES if "<" not in s] + ["agency:import:agency-csv"]
    return {"Authorization": f"Bearer {create_api_key(session, 'client', CODE, actor='test', scopes=scopes)}"}


def _refused(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_json()
    assert body is not None and set(body["error"]) == {"code", "message", "details"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", [
    "/api/v1/slips/12%0034",
    "/api/v1/slips?fund_code=0%001",
    "/api/v1/slips?assessment_id=%ED%A0%80",
    "/api/v1/exceptions?kind=a%00b",
    "/api/v1/reconciliation/2026-04-0%001",
])
def test_nul_bytes_and_lone_surrogates_in_paths_and_query_strings_are_refused(client: Any, headers: dict[str, str],
                                                                              path: str) -> None:
    error = _refused(client.get(path, headers=headers))
    assert error["code"] == "invalid_characters"


def test_a_lone_surrogate_or_nul_in_json_is_refused(client: Any, headers: dict[str, str]) -> None:
    for text in ('"\\ud800"', '"a\\u0000b"'):
        body = '{"slip_number": ' + text + ', "channel": "card", "return_url": "https://a.example/r"}'
        response = client.post("/api/v1/payments", data=body, content_type="application/json",
                               headers={**headers, "Idempotency-Key": f"k-{len(text)}"})
        assert _refused(response)["code"] == "invalid_characters"


def test_a_nul_byte_in_a_staff_form_is_refused_and_said_so_on_the_staff_screen(client: Any) -> None:
    response = client.post("/staff/login", data={"username": "a\x00b", "password": "x"}, follow_redirects=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "contains a NUL byte" in page and 'name="password"' in page  # back at the sign-in, told why


@pytest.mark.parametrize("path", ["/api/v1/payments/" + HUGE, "/api/v1/payments/9223372036854775808"])
def test_ids_beyond_64_bits_are_not_found(client: Any, headers: dict[str, str], path: str) -> None:
    _refused(client.get(path, headers=headers), 404)


def test_staff_ids_beyond_64_bits_are_not_found(client: Any) -> None:
    assert client.get(f"/staff/exceptions/{HUGE}").status_code in (302, 404)  # the sign-in first, never a 500


@pytest.mark.parametrize("page", [HUGE, "9223372036854775807", "0", "-1"])
def test_page_numbers_out_of_range_are_refused(client: Any, headers: dict[str, str], page: str) -> None:
    _refused(client.get(f"/api/v1/slips?page={page}", headers=headers), 422)


@pytest.mark.parametrize(("amount", "why"), [
    (2**64 + 1, "too large"), (1.5, "fraction"), ("１２３", "full-width digits"), ("100", "a string"), (0, "zero"),
])
def test_deposit_amounts_must_be_whole_yen_in_range(client: Any, headers: dict[str, str], session: Any,
                                                    amount: Any, why: str) -> None:
    deposit = {"deposited_on": "2026-06-05", "amount": amount, "reference": "statement 1"}
    error = _refused(client.post("/api/v1/agency/agency-csv/deposits", json=deposit, headers=headers), 422)
    assert "amount" in error["details"]["fields"]["json"], why
    assert session.scalar(select(func.count()).select_from(AgencyDeposit)) == 0


@pytest.mark.parametrize("day", ["9999-12-31", "1900-01-01"])
def test_deposit_dates_must_be_plausible(client: Any, headers: dict[str, str], day: str) -> None:
    deposit = {"deposited_on": day, "amount": 1000, "reference": "statement 1"}
    error = _refused(client.post("/api/v1/agency/agency-csv/deposits", json=deposit, headers=headers), 422)
    assert "deposited_on" in error["details"]["fields"]["json"]


def test_deeply_nested_json_is_refused(client: Any, headers: dict[str, str]) -> None:
    body = "[" * 10_000 + "]" * 10_000
    response = client.post("/api/v1/payments", data=body, content_type="application/json",
                           headers={**headers, "Idempotency-Key": "deep"})
    assert _refused(response)["code"] == "invalid_json"
    webhook = client.post("/webhooks/stripe", data=body, content_type="application/json")
    assert webhook.status_code == 400


def test_a_signed_notification_that_is_not_an_event_stops_retries_and_is_recorded(client: Any, session: Any) -> None:
    """Stripe retries any non-2xx for three days: a verified but unusable notification is answered 200 and kept."""
    body = json.dumps({"id": "evt_x", "object": "event", "type": "checkout.session.completed",
                       "data": {"object": "not an object"}}).encode()
    headers = {signature.HEADER: signature.signature_header(body, SANDBOX_WEBHOOK_SECRET, int(time.time())),
               "Content-Type": "application/json"}
    response = client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"received": "rejected"}
    kinds = list(session.scalars(select(Event.kind).where(Event.kind == "webhook.rejected")))
    assert kinds == ["webhook.rejected"]
