"""How scripts/ward_queries.py reads a statement: routed to one ward's node or not (the statement gates' reader)."""
from __future__ import annotations

import pytest

from tests.integration.test_ward_routing import ward_queries

TENANTS = ward_queries.tenant_tables()


@pytest.mark.parametrize(("statement", "verdict"), [
    ("SELECT slips.id FROM slips WHERE slips.municipality_id = ? AND slips.pay_token = ?", "routed"),
    ("SELECT slips.id FROM slips WHERE slips.pay_token = %(token)s", "not routed"),
    ("INSERT INTO payments (municipality_id, slip_id) VALUES (?, ?)", "routed"),
    ("INSERT INTO payments (slip_id) VALUES (?)", "not routed"),
    ("UPDATE idempotency_keys SET response_status=? WHERE idempotency_keys.id = ?", "not routed"),
    ("DELETE FROM idempotency_keys WHERE idempotency_keys.municipality_id = $1 AND expires_at < $2", "routed"),
    # a ward given in a join's ON restricts that table only: a tenant table read first is not routed by it
    ("SELECT payments.id FROM payments JOIN slips ON slips.id = payments.slip_id AND slips.municipality_id = ?",
     "not routed"),
    ("SELECT payments.id FROM payments LEFT OUTER JOIN slips ON slips.id = payments.slip_id "
     "AND slips.municipality_id = ?", "not routed"),
    # a staged file (a temporary table, no ward) joined to the ward's slips by a ward given in the ON
    ("SELECT st.seq FROM agency_stage st LEFT JOIN slips s ON s.municipality_id = ? AND s.number = st.slip_number",
     "routed"),
])
def test_a_statement_is_routed_when_it_names_the_ward_of_what_it_reads(statement: str, verdict: str) -> None:
    found = ward_queries.classify(statement, TENANTS)
    assert found is not None and found[0] == verdict


def test_a_join_of_tenant_tables_on_their_ids_alone_is_named() -> None:
    found = ward_queries.classify("SELECT 1 FROM payments JOIN slips ON slips.id = payments.slip_id "
                                  "WHERE payments.municipality_id = ?", TENANTS)
    assert found == ("routed", ["slips"])


def test_a_statement_on_reference_tables_alone_is_not_read() -> None:
    assert ward_queries.classify("SELECT municipalities.id FROM municipalities WHERE code = ?", TENANTS) is None
