"""The JSON API: API keys, the contract's slip fields, filters, PDF and barcode images, errors."""
from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from domain import barcode as gs1
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

CODE = "131075"
SLIP_SCOPES = ("slips:read", "slips:reissue", "personal-data:read")
CONTRACT_FIELDS = {"number", "barcode", "amount", "due_date", "store_deadline", "reissue", "status",
                   "fund_code", "fiscal_year", "installment", "pay_url"}


@pytest.fixture
def headers(session, cipher) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = list(ward_rows(CODE, 2026, 25, seed=3))
    big = dict(rows[0], assessment_id="BIG-1", installment=1, amount=450_000)
    import_ledger(session, cipher, ledger_file_bytes([*rows, big], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, CODE)
    return {"Authorization": f"Bearer {create_api_key(session, 'test client', CODE, actor='test', scopes=SLIP_SCOPES)}"}


def _all_slips(client: Any, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/slips", headers=headers, query_string={"page_size": 500, **params})
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def test_requests_without_a_valid_api_key_are_refused_in_the_error_envelope(client, headers) -> None:  # type: ignore[no-untyped-def]
    for sent in ({}, {"Authorization": "Bearer kk_not-a-key"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/funds", headers=sent)
        assert response.status_code == 401
        assert set(response.json["error"]) == {"code", "message", "details"}
        assert response.json["error"]["code"] in {"missing_api_key", "invalid_api_key"}


def test_funds_list_code_name_and_channels(client, headers) -> None:  # type: ignore[no-untyped-def]
    funds = {f["code"]: f for f in client.get("/api/v1/funds", headers=headers).json}
    assert funds["01"]["name"] == "特別区民税・都民税（普通徴収）"
    assert "agency" in funds["01"]["channels"]
    assert funds["51"]["channels"] == ["emoney", "card"]


def test_slip_lookup_returns_every_contract_field_matching_the_barcode(client, headers) -> None:  # type: ignore[no-untyped-def]
    slip = next(s for s in _all_slips(client, headers) if s["barcode"])
    response = client.get(f"/api/v1/slips/{slip['number']}", headers=headers)
    body = response.json
    assert response.status_code == 200 and CONTRACT_FIELDS <= set(body)
    decoded = gs1.decode(body["barcode"])
    assert decoded.amount == body["amount"] and isinstance(body["amount"], int)
    assert decoded.store_deadline is not None and decoded.store_deadline.isoformat() == body["store_deadline"]
    assert decoded.slip_number == body["number"] and decoded.reissue == body["reissue"]
    assert body["pay_url"].startswith("http") and "/pay/" in body["pay_url"]
    assert body["status"] == "issued"


def test_a_slip_above_the_barcode_limit_has_a_null_barcode_and_no_image(client, headers) -> None:  # type: ignore[no-untyped-def]
    big = _all_slips(client, headers, assessment_id="BIG-1")
    assert len(big) == 1 and big[0]["barcode"] is None and big[0]["amount"] == 450_000
    response = client.get(f"/api/v1/slips/{big[0]['number']}/barcode.svg", headers=headers)
    assert response.status_code == 404 and response.json["error"]["code"] == "no_barcode"


def test_slip_listing_filters_and_paginates(client, headers) -> None:  # type: ignore[no-untyped-def]
    every = _all_slips(client, headers)
    resident = _all_slips(client, headers, fund_code="01")
    assert resident and all(s["fund_code"] == "01" for s in resident)
    assert _all_slips(client, headers, fiscal_year=2025) == []
    assert len(_all_slips(client, headers, status="issued")) == len(every)
    first = every[0]
    same = _all_slips(client, headers, assessment_id=first["assessment_id"])
    assert all(s["assessment_id"] == first["assessment_id"] for s in same) and first in same
    page = client.get("/api/v1/slips", headers=headers, query_string={"page": 2, "page_size": 5})
    assert page.status_code == 200 and page.json == every[5:10]
    assert json.loads(page.headers["X-Pagination"])["total"] == len(every)


def test_bad_query_parameters_are_refused_with_the_field_named(client, headers) -> None:  # type: ignore[no-untyped-def]
    for params, field in (({"status": "lost"}, "status"), ({"fiscal_year": "abc"}, "fiscal_year"),
                          ({"colour": "red"}, "colour")):
        response = client.get("/api/v1/slips", headers=headers, query_string=params)
        assert response.status_code == 422, params
        assert response.json["error"]["code"] == "validation_failed"
        assert field in str(response.json["error"]["details"])


def test_an_unknown_slip_is_a_404_in_the_envelope(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/slips/2600000000009999", headers=headers)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_pdf_and_barcode_images_are_served(client, headers) -> None:  # type: ignore[no-untyped-def]
    slip = next(s for s in _all_slips(client, headers) if s["barcode"])
    pdf = client.get(f"/api/v1/slips/{slip['number']}/pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    svg = client.get(f"/api/v1/slips/{slip['number']}/barcode.svg", headers=headers)
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    png = client.get(f"/api/v1/slips/{slip['number']}/barcode.png", headers=headers)
    assert png.status_code == 200 and png.mimetype == "image/png"
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    assert found and found[0].symbology_identifier == "]C1"


def test_reissue_through_the_api_returns_the_new_issue(client, headers) -> None:  # type: ignore[no-untyped-def]
    slip = next(s for s in _all_slips(client, headers) if s["barcode"])
    response = client.post(f"/api/v1/slips/{slip['number']}/reissue", headers=headers, json={"reason": "lost"})
    assert response.status_code == 201
    assert response.json["number"] == slip["number"] and response.json["reissue"] == 1
    again = client.get(f"/api/v1/slips/{slip['number']}", headers=headers).json
    assert again["reissue"] == 1 and again["barcode"] != slip["barcode"]
    refused = client.post(f"/api/v1/slips/{slip['number']}/reissue", headers=headers, json={"why": "x"})
    assert refused.status_code == 422 and refused.json["error"]["code"] == "validation_failed"


def test_openapi_document_describes_the_contract_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/funds", "/api/v1/slips", "/api/v1/slips/{number}", "/api/v1/slips/{number}/pdf"):
        assert path in spec["paths"], path
    assert "bearerAuth" in spec["components"]["securitySchemes"]


def test_a_wrong_method_keeps_the_allow_header(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.delete("/api/v1/funds", headers=headers)
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


def test_a_slip_shows_its_eltax_data_and_its_additions_apart(client, headers, session, cipher) -> None:  # type: ignore[no-untyped-def]
    row = dict(list(ward_rows(CODE, 2026, 25, seed=3))[0], assessment_id="EL-1", installment=1, amount=13_900,
               el_number="0123456789012345678901234567", el_qr="ELQR 地方税 \\ ,\"payload\"", late_fee=1_000,
               dunning_fee=100)
    import_ledger(session, cipher, ledger_file_bytes([row], "kokin-csv", date(2026, 4, 1)), filename="el.csv")
    issue_slips(session, CODE)
    [listed] = _all_slips(client, headers, assessment_id="EL-1")
    plain = next(s for s in _all_slips(client, headers) if s["assessment_id"] != "EL-1")

    body = client.get(f"/api/v1/slips/{listed['number']}", headers=headers).json
    other = client.get(f"/api/v1/slips/{plain['number']}", headers=headers).json

    assert {k: body[k] for k in ("amount", "principal", "late_fee", "dunning_fee", "el_number", "el_qr")} == {
        "amount": 13_900, "principal": 12_800, "late_fee": 1_000, "dunning_fee": 100,
        "el_number": row["el_number"], "el_qr": row["el_qr"]}
    assert (other["el_number"], other["el_qr"], other["late_fee"], other["dunning_fee"]) == (None, None, 0, 0)
    assert other["principal"] == other["amount"]
    pdf = client.get(f"/api/v1/slips/{listed['number']}/pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
