"""Every statement the gateway sends names its ward: the queries' half of the distribution rule (issue 17, point 8).

The schema half is `test_migrations.py::test_the_schema_keeps_the_distribution_rule`. This one
plays days of a ward through the real services (`kokin demo --days`: ledger, slips, online and
store payments, agency files, the counter, refunds, deposits, the nightly jobs, the receipts
feed), records every statement sent, and reads each one as scripts/ward_queries.py does: an
INSERT writes the ward's column, any other statement names the ward in its WHERE, and a join
of two tenant tables joins on the ward as well as the id. On Citus, such a statement runs on
the ward's node alone (docs/scaling.md).

On PostgreSQL the hot paths send some statements straight to the driver (`gateway.db.Statements`,
the receipts export's and the agency import's binary cursors), past SQLAlchemy's events: there
the statements are recorded at the driver's cursor instead (`recording`), so that both runs
read every statement.

Only tokens made before the tokens named their ward still arrive with nothing else, and are
routed by the token on the coordinator; they are named below (`BY_TOKEN`), each with what carries
it. None of them occurs in days played now.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from domain.calendar import business_date
from gateway.cli import cli
from gateway.db import utcnow

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ward_queries", ROOT / "scripts" / "ward_queries.py")
assert _spec and _spec.loader
ward_queries = importlib.util.module_from_spec(_spec)
sys.modules["ward_queries"] = ward_queries
_spec.loader.exec_module(ward_queries)
recording = ward_queries.recording

# Looked up by a token made before the tokens named their ward, which arrives alone (docs/scaling.md,
# "Keys looked up without knowing the ward"): each a unique index's lookup, routed on the coordinator.
BY_TOKEN = {
    # a provider's notification names its payment by the provider's id, or by our reference: without
    # its ward only for a reference made before references named their ward, or a caller that does
    # not say it (gateway/services/outcomes.py, webhooks.py)
    "attempts by provider reference": re.compile(
        r"^(select|update) .*\bpayment_attempts\b.* where payment_attempts\.adapter = \? "
        r"and payment_attempts\.(provider_ref|reference) = \?"),
    # a pay link printed before links named their ward (gateway/services/slips.py, get_slip_by_token)
    "a slip by a pay token made before": re.compile(r"^select .* from slips where slips\.pay_token = \? limit \?$"),
    # a provider account shared by wards: which references made before references named their ward
    # are another ward's (gateway/services/payments.py, other_wards_references)
    "another ward's references": re.compile(
        r"^select .* from payment_attempts join payments on .* where .*payments\.municipality_id != \? .*"
        r"payment_attempts\.reference in "),
}


# Statements that still name no ward (docs/scaling.md, migration plan step 2), by the start of
# their text: the list only shrinks. A new statement that names no ward fails the test; one that
# is fixed comes off the list.
LEFT: tuple[str, ...] = ()  # none left


@pytest.fixture
def statements(app, database, monkeypatch) -> Counter[str]:  # type: ignore[no-untyped-def]
    from gateway.services import payments

    monkeypatch.setattr(payments, "business_today", lambda: business_date(utcnow()))
    with recording(database.engine) as executed:
        result = app.test_cli_runner().invoke(cli, ["demo", "--days", "6", "--payers", "400", "--no-serve"])
    assert result.exit_code == 0, result.output
    return executed


def read(statements: Counter[str] | set[str]) -> tuple[list[str], list[str], set[str]]:
    """(statements naming no ward, joins of tenant tables not on the ward, the LEFT prefixes seen).

    A lookup by a token (BY_TOKEN) is not counted; one of LEFT is counted apart.
    """
    tenants = ward_queries.tenant_tables()
    unrouted, joins = set(), set()
    for statement in statements:
        found = ward_queries.classify(statement, tenants)
        if found is None:
            continue
        verdict, unaligned = found
        text = ward_queries.normalized(statement)
        joins |= {f"{table}: {text}" for table in unaligned}
        if verdict == "not routed" and not any(p.search(text.lower()) for p in BY_TOKEN.values()):
            unrouted.add(text)
    left = {prefix for prefix in LEFT for text in unrouted if text.lower().startswith(prefix)}
    return sorted(text for text in unrouted if not text.lower().startswith(LEFT)), sorted(joins), left


def test_every_statement_of_played_days_names_its_ward(statements: Counter[str], database: Any) -> None:
    unrouted, joins, left = read(statements)
    assert sum(statements.values()) > 1_000  # the days were played
    assert not joins, "joins of tenant tables not on the ward:\n" + "\n".join(joins)
    assert not unrouted, "statements that name no ward:\n" + "\n".join(unrouted)
    assert left == set(LEFT), f"named here, and now naming their ward: take them off LEFT: {set(LEFT) - left}"
