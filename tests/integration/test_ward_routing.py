"""Every statement the gateway sends names its ward: the queries' half of the distribution rule (issue 17, point 8).

The schema half is `test_migrations.py::test_the_schema_keeps_the_distribution_rule`. This one
plays days of a ward through the real services (`kokin demo --days`: ledger, slips, online and
store payments, agency files, the counter, refunds, deposits, the nightly jobs, the receipts
feed), records every statement sent, and reads each one as scripts/ward_queries.py does: an
INSERT writes the ward's column, any other statement names the ward in its WHERE, and a join
of two tenant tables joins on the ward as well as the id. On Citus, such a statement runs on
the ward's node alone (docs/scaling.md).

A few lookups arrive with nothing but a token and are routed by it on the coordinator; they are
named below, each with what carries it.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from domain.calendar import business_date
from gateway.cli import cli
from gateway.db import utcnow

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ward_queries", ROOT / "scripts" / "ward_queries.py")
assert _spec and _spec.loader
ward_queries = importlib.util.module_from_spec(_spec)
sys.modules["ward_queries"] = ward_queries
_spec.loader.exec_module(ward_queries)

# Looked up by a token that arrives alone, before its ward is known (docs/scaling.md, "Keys looked
# up without knowing the ward"): each a unique index's lookup, routed on the coordinator.
BY_TOKEN = {
    # a terminal provider's notification names its device
    "terminals by device": re.compile(r"^select .* from terminals where terminals\.device_id = \?"),
    # a provider's notification names its payment by the provider's id, or by our reference: without
    # its ward only for a reference made before references named their ward, or a caller that does
    # not say it (gateway/services/outcomes.py, webhooks.py)
    "attempts by provider reference": re.compile(
        r"^(select|update) .*\bpayment_attempts\b.* where payment_attempts\.adapter = \? "
        r"and payment_attempts\.(provider_ref|reference) = \?"),
    # a provider account shared by wards: whose are the references of its report that are not ours
    "another ward's references": re.compile(
        r"^select .* from payment_attempts join payments on .* where .*payments\.municipality_id != \? .*"
        r"payment_attempts\.reference in "),
}


# Statements that still name no ward (docs/scaling.md, migration plan step 2), by the start of
# their text: the list only shrinks. A new statement that names no ward fails the test; one that
# is fixed comes off the list.
LEFT = (
    # the ledger import (gateway/services/ledger_import.py, ledger_files.py)
    "select ledger_imports.filename, ledger_imports.layout, ledger_imports.records, ledger_imports.total_amount",
    "select ledger_stage.line, ledger_stage.el_number, assessments.source_key",
    "select ledger_stage.line, ledger_stage.source_key, ledger_stage.fund_type_id != ledger_known.fund_type_id",
    "update assessments set payer_ref_hmac=ledger_stage.payer_ref_hmac",
    "update slips set status=?, voided_at=?, void_reason=? where slips.status = ? and slips.assessment_id in (select",
    "select fund_types.id, fund_types.municipality_id, fund_types.code, fund_types.active from fund_types",
    # issuing slips: the planner is kept off the ward's index on purpose (`municipality_id + 0`)
    "select assessments.id, assessments.fiscal_year, assessments.amount, assessments.due_date, fund_types.company_code",
    "select count(*) as count_1, min(assessments.id) as min_1, max(assessments.id) as max_1 from assessments",
    "select slips.id, slips.assessment_id, slips.number, slips.reissue, slips.status from slips "
    "where slips.assessment_id between",
    "update issue_runs set slip_count=?, finished_at=? where issue_runs.id = ?",
    # the core system's status feed (gateway/services/status_import.py)
    "select assessments.id, assessments.municipality_id, assessments.closed_reason",
    "select payments.assessment_id from payments where payments.assessment_id in (...)",
    "select assessments.id from assessments where assessments.id in (...) order by assessments.id",
    "select payments.id, payments.assessment_id, payments.amount, slips.number from payments join slips",
    "update assessments set closed_reason=?, closed_on=?, closed_channel=?, closed_import_id=?, updated_at=?",
    "update recon_exceptions set status=?, resolution=?, resolution_note=?, resolved_by=?, resolved_at=? "
    "where recon_exceptions.kind",
    "update slips set status=? where slips.assessment_id",
    # the counter's terminals by counter, the agency import's count (gateway/services/counters.py, agency_import.py)
    "select terminals.device_id from terminals where terminals.counter_id = ?",
    "select terminals.id, terminals.municipality_id, terminals.counter_id, terminals.adapter",
    "update agency_imports set new_records=? where agency_imports.id = ?",
)


@pytest.fixture
def statements(app, database, monkeypatch) -> Counter[str]:  # type: ignore[no-untyped-def]
    from gateway.services import payments

    monkeypatch.setattr(payments, "business_today", lambda: business_date(utcnow()))
    executed: Counter[str] = Counter()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        executed[statement] += 1

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        result = app.test_cli_runner().invoke(cli, ["demo", "--days", "6", "--payers", "400", "--no-serve"])
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert result.exit_code == 0, result.output
    return executed


def test_every_statement_of_played_days_names_its_ward(statements: Counter[str]) -> None:
    tenants = ward_queries.tenant_tables()
    unrouted, joins = [], []
    for statement in statements:
        found = ward_queries.classify(statement, tenants)
        if found is None:
            continue
        verdict, unaligned = found
        text = ward_queries.normalized(statement)
        joins += [f"{table}: {text}" for table in unaligned]
        if verdict == "not routed" and not any(p.search(text.lower()) for p in BY_TOKEN.values()):
            unrouted.append(text)
    left = [text for text in unrouted if text.lower().startswith(LEFT)]
    unrouted = [text for text in unrouted if not text.lower().startswith(LEFT)]
    assert sum(statements.values()) > 1_000  # the days were played
    assert not joins, "joins of tenant tables not on the ward:\n" + "\n".join(sorted(set(joins)))
    assert not unrouted, "statements that name no ward:\n" + "\n".join(sorted(set(unrouted)))
    print(f"{len(set(left))} distinct statements of the {len(LEFT)} left still name no ward")
