"""The test databases themselves: every test starts from the migrated, seeded state."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

BACKEND = os.environ.get("KOKIN_TEST_DATABASE", "sqlite")


def _state(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, and every sequence, as text."""
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        state = {t: list(conn.execute(text(f'SELECT r::text FROM public."{t}" AS r ORDER BY 1')).scalars())
                 for t in tables}
        state["sequences"] = list(conn.execute(text(
            "SELECT format('%s %s', sequencename, last_value) FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
        )).scalars())
    return state


@pytest.mark.skipif(BACKEND != "postgresql", reason="SQLite gives every test a fresh copy of a template file")
def test_the_postgresql_baseline_puts_back_every_row_and_sequence_a_test_changed(  # type: ignore[no-untyped-def]
        db_url, postgres_baseline) -> None:
    engine = create_engine(db_url, poolclass=NullPool)
    seeded = _state(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE municipalities SET name = name || ' (changed)'"))
        conn.execute(text("DELETE FROM fee_prices WHERE id = (SELECT min(id) FROM fee_prices)"))
        conn.execute(text("INSERT INTO events (kind, subject_type, subject_id, data, actor, recorded_at, chain, "
                          "chain_seq, prev_hash, hash) VALUES ('test', 'test', '1', '{}', 'test', CURRENT_TIMESTAMP, "
                          "0, 1, 'x', 'y')"))
        conn.execute(text("SELECT nextval(pg_get_serial_sequence('payments', 'id'))"))
    changed = _state(engine)
    assert {t for t in seeded if seeded[t] != changed[t]} == {"municipalities", "fee_prices", "events", "sequences"}

    postgres_baseline.restore()

    assert _state(engine) == seeded
