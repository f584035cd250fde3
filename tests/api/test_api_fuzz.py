"""schemathesis over the whole JSON API, in process: no 5xx and every answer as the OpenAPI document says.

Every operation (SCOPE_OF names them all; a test checks the document has no other) gets
EXAMPLES generated requests that fit its schema and EXAMPLES that do not, signed with a
key holding every scope, against a municipality with real slips. Generation is
derandomized, so a run is the same run on every machine and in CI. The error answers
are checked against the document's Error schema too, which must be the real envelope.
"""
from __future__ import annotations

import os
import re
from datetime import date
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.api.auth import SCOPE_OF
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

CODE = "131075"
EXAMPLES = int(os.environ.get("KOKIN_FUZZ_EXAMPLES", "25"))  # per operation and mode; raise it for a deeper run
ALL_SCOPES = ("slips:read", "payments:read", "reconciliation:read", "payments:write", "slips:reissue",
              "deposits:write", "personal-data:read", "agency:import:agency-csv", "agency:import:agency-fixed120",
              "agency:import:eltax-csv")
_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture
def authorization(session, cipher) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = [dict(municipality_code=CODE, assessment_id=f"01-2026-{n:010d}", fund_code="01", fiscal_year=2026,
                 installment=1, payer_ref=f"{n:010d}", payer_name="墨田　花子", amount=amount,
                 due_date=date(2026, 6, 30)) for n, amount in ((1, 12_300), (2, 450_000))]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    return {"Authorization": f"Bearer {create_api_key(session, 'fuzz', CODE, actor='test', scopes=ALL_SCOPES)}"}


def _operation(app: Any, endpoint: str) -> tuple[str, str]:
    (rule,) = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    (method,) = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    return method, _PARAMETER.sub(r"{\1}", rule.rule)


def test_the_fuzzed_operations_are_every_operation_of_the_document(app, client) -> None:  # type: ignore[no-untyped-def]
    document = client.get("/api/v1/openapi.json").json
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item
                  if method != "parameters"}
    assert documented == {_operation(app, endpoint) for endpoint in SCOPE_OF}


@pytest.mark.parametrize("endpoint", sorted(SCOPE_OF))
def test_no_generated_request_is_a_server_error_or_an_undocumented_answer(
        app, authorization: dict[str, str], endpoint: str) -> None:  # type: ignore[no-untyped-def]
    method, path = _operation(app, endpoint)
    operation = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)[path][method]

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink],
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        def run(case: Any) -> None:
            case.call_and_validate(headers=authorization, checks=[not_a_server_error, response_schema_conformance])

        run()


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "anonymous"), [
    ("get", "/api/v1/slips/0000000000000000", {}, 404, 401),
    ("get", "/api/v1/slips?page=0", {}, 422, 401),
    ("get", "/api/v1/slips/%00", {}, 400, 400),
    ("post", "/api/v1/agency/agency-csv/deposits", {"json": {"amount": 1.5}}, 422, 401),
    ("post", "/api/v1/agency/agency-csv/deposits", {"data": "[" * 40, "content_type": "application/json"}, 400, 400),
    ("post", "/api/v1/agency/agency-csv/deposits", {"data": "{", "content_type": "application/json"}, 400, 400),
    ("delete", "/api/v1/funds", {}, 405, 405),
    ("get", "/api/v1/nowhere", {}, 404, 404),
])
def test_real_error_answers_fit_the_documented_error_schema(  # type: ignore[no-untyped-def]
        client, authorization, method: str, path: str, kwargs: dict[str, Any], status: int, anonymous: int) -> None:
    document = client.get("/api/v1/openapi.json").json
    default = document["paths"]["/api/v1/funds"]["get"]["responses"]["default"]
    assert default == {"$ref": "#/components/responses/DEFAULT_ERROR"}
    error = document["components"]["responses"]["DEFAULT_ERROR"]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft4Validator({**error, "components": document["components"]})

    for headers in (authorization, {}):  # and without a key: 401, in the same envelope
        response = getattr(client, method)(path, headers=headers, **kwargs)
        assert response.status_code == (status if headers else anonymous), response.json
        validator.validate(response.json)
        assert not validator.is_valid({"code": 404, "status": "Not Found", "message": "x"})  # flask-smorest's own
