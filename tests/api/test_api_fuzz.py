"""The whole API under schemathesis: every operation, a key of every scope, no 5xx and no answer off its schema.

In-process (WSGI), on the suite's database (SQLite or PostgreSQL), with a slip issued so that
lookups can hit something. Derandomized and bounded, so a run is the same every time and short.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.apikeys import SCOPES, create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

CODE = "131075"
ALL_SCOPES = [s for s in SCOPES if "<" not in s] + ["agency:import:agency-csv", "agency:import:agency-fixed120",
                                                    "agency:import:eltax-csv"]


@pytest.fixture
def api_schema(app: Any, session: Any, cipher: Any) -> Any:
    rows = [dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
                 installment=1, payer_ref="0000000001", payer_name="墨田　花子", amount=12_300,
                 due_date=date(2026, 6, 30))]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_off_its_schema(case: Any, session: Any) -> None:
    key = create_api_key(session, "fuzz", CODE, actor="test", scopes=ALL_SCOPES)
    case.call_and_validate(headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "fuzz-key"},
                           checks=[not_a_server_error, response_schema_conformance, status_code_conformance])
