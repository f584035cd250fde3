"""The tamper-evident audit record: hash chains per municipality, `kokin audit verify`, the runtime role.

Tampering is done as the database owner would (the triggers that refuse UPDATE and DELETE
lifted first): `kokin audit verify` must then exit 1 naming the first broken entry.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from domain.audit import GENESIS
from gateway import migrate
from gateway.cli import cli
from gateway.db import Database, transaction
from gateway.models import AuditChainHead, Event, Municipality
from gateway.services.events import record_event
from tests.conftest import BACKEND, RUNTIME_ROLE


def _record(session: Session, count: int, municipality_id: int | None, kind: str = "test.happened") -> None:
    for n in range(count):
        with transaction(session):
            record_event(session, kind, "thing", n, municipality_id=municipality_id, data={"n": n, "名前": "なし"})


def _verify(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(cli, ["audit", "verify", *args])


@pytest.fixture
def muni(session: Session) -> int:
    return int(session.scalars(select(Municipality.id).where(Municipality.code == "131075")).one())


@pytest.fixture
def owner(owner_url: str) -> Iterator[Connection]:
    """A connection as the database owner, the append-only triggers lifted: an attacker with the owner's rights."""
    engine = create_engine(owner_url, poolclass=NullPool)
    with engine.connect() as conn:
        if BACKEND == "postgresql":
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        else:
            conn.execute(text("DROP TRIGGER events_no_update"))
            conn.execute(text("DROP TRIGGER events_no_delete"))
        conn.commit()
        yield conn
        conn.rollback()
        if BACKEND == "postgresql":
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
        conn.commit()
    engine.dispose()


def _ids(session: Session, chain: int) -> list[int]:
    session.rollback()
    return list(session.scalars(select(Event.id).where(Event.chain == chain).order_by(Event.chain_seq)))


def test_events_form_one_chain_per_municipality_and_verify_intact(app: Any, session: Session, muni: int) -> None:
    _record(session, 3, muni)
    _record(session, 2, None)
    rows = session.execute(select(Event.chain, Event.chain_seq, Event.prev_hash, Event.hash)
                           .where(Event.kind == "test.happened").order_by(Event.id)).all()
    mine = [r for r in rows if r.chain == muni]
    assert [r.chain_seq for r in mine][-3:] == [mine[-3].chain_seq, mine[-3].chain_seq + 1, mine[-3].chain_seq + 2]
    for earlier, later in zip(mine, mine[1:], strict=False):
        assert later.prev_hash == earlier.hash
    assert {r.chain for r in rows} == {muni, 0}
    head = session.get(AuditChainHead, muni)
    assert head is not None and (head.seq, head.hash) == (mine[-1].chain_seq, mine[-1].hash)

    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert "municipality 131075: " in result.output and "intact" in result.output
    assert "BROKEN" not in result.output


def test_a_rolled_back_transaction_leaves_no_event_and_no_gap(app: Any, session: Session, muni: int) -> None:
    _record(session, 1, muni)
    with pytest.raises(RuntimeError):
        with transaction(session):
            record_event(session, "test.rolled_back", "thing", 1, municipality_id=muni)
            raise RuntimeError("the change failed")
    _record(session, 1, muni)
    assert session.scalar(select(func.count()).select_from(Event).where(Event.kind == "test.rolled_back")) == 0
    assert _verify(app).exit_code == 0


def test_verify_names_an_edited_event(app: Any, session: Session, muni: int, owner: Connection) -> None:
    _record(session, 4, muni)
    victim = _ids(session, muni)[-2]
    owner.execute(text("UPDATE events SET data = :d WHERE id = :id"), {"d": '{"n": 99}', "id": victim})
    owner.commit()
    result = _verify(app, "--municipality", "131075")
    assert result.exit_code == 1
    assert f"event {victim} was changed after it was recorded" in result.output


def test_verify_names_a_deleted_event(app: Any, session: Session, muni: int, owner: Connection) -> None:
    _record(session, 4, muni)
    ids = _ids(session, muni)
    owner.execute(text("DELETE FROM events WHERE id = :id"), {"id": ids[-3]})
    owner.commit()
    result = _verify(app)
    assert result.exit_code == 1
    assert f"missing before event {ids[-2]} (deleted?)" in result.output


def test_verify_notices_the_newest_event_deleted(app: Any, session: Session, muni: int, owner: Connection) -> None:
    _record(session, 3, muni)
    owner.execute(text("DELETE FROM events WHERE id = :id"), {"id": _ids(session, muni)[-1]})
    owner.commit()
    result = _verify(app)
    assert result.exit_code == 1 and "its newest entries were deleted or changed" in result.output


def test_verify_names_reordered_events(app: Any, session: Session, muni: int, owner: Connection) -> None:
    _record(session, 4, muni)
    first, second = _ids(session, muni)[-3:-1]
    seqs = dict(owner.execute(text("SELECT id, chain_seq FROM events WHERE id IN (:a, :b)"),
                              {"a": first, "b": second}).all())
    owner.execute(text("UPDATE events SET chain_seq = -1 WHERE id = :id"), {"id": first})
    owner.execute(text("UPDATE events SET chain_seq = :s WHERE id = :id"), {"s": seqs[first], "id": second})
    owner.execute(text("UPDATE events SET chain_seq = :s WHERE id = :id"), {"s": seqs[second], "id": first})
    owner.commit()
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {second} does not follow its predecessor" in result.output


def test_the_migration_chains_events_recorded_before_it(owner_url: str, session: Session, muni: int) -> None:
    _record(session, 3, muni)
    session.close()
    database = Database(owner_url)
    migrate.downgrade(database.engine, "0017")
    migrate.upgrade(database.engine)
    if BACKEND == "postgresql":
        migrate.grant_runtime(database.engine, RUNTIME_ROLE)
    with database.session() as fresh:
        heads = {h.chain: (h.seq, h.hash) for h in fresh.scalars(select(AuditChainHead))}
        assert heads[muni][0] == fresh.scalar(select(func.count()).select_from(Event).where(Event.chain == muni))
        assert heads[muni][1] != GENESIS
    database.dispose()


@pytest.mark.skipif(BACKEND != "postgresql", reason="concurrent writers are PostgreSQL's; SQLite has one writer")
def test_concurrent_writers_leave_one_unbroken_chain(app: Any, database: Database, muni: int) -> None:
    threads, each = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with database.session() as session:
                barrier.wait()
                _record(session, each, muni, kind="test.concurrent")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=write) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    with database.session() as session:
        seqs = list(session.scalars(select(Event.chain_seq).where(Event.chain == muni).order_by(Event.chain_seq)))
        assert seqs == list(range(1, len(seqs) + 1))
        assert session.scalar(select(func.count()).select_from(Event).where(Event.kind == "test.concurrent")) == \
            threads * each
    assert _verify(app).exit_code == 0


# -- the runtime role ------------------------------------------------------------------------------------

@pytest.fixture
def runtime(database: Database) -> Database:
    """The app's own database connection: on PostgreSQL the tests' app runs as the runtime role (tests/conftest.py)."""
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == RUNTIME_ROLE
    return database


@pytest.mark.skipif(BACKEND != "postgresql", reason="roles are PostgreSQL's")
@pytest.mark.parametrize("statement", [
    "UPDATE events SET kind = 'changed'",
    "DELETE FROM events",
    "TRUNCATE events",
    "DROP TRIGGER events_append_only ON events",
    "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "DROP TABLE events",
    "UPDATE alembic_version SET version_num = '0001'",
])
def test_the_runtime_role_cannot_touch_the_audit_record(runtime: Database, session: Session, muni: int,
                                                        statement: str) -> None:
    _record(session, 2, muni)
    with runtime.engine.connect() as conn:
        with pytest.raises(DBAPIError) as refused:
            conn.execute(text(statement))
        assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value)
        conn.rollback()


@pytest.mark.skipif(BACKEND != "postgresql", reason="roles are PostgreSQL's")
def test_the_runtime_role_records_events_that_verify(app: Any, runtime: Database, muni: int) -> None:
    with runtime.session() as session:
        _record(session, 3, muni, kind="test.as_runtime")
        assert session.scalar(select(func.count()).select_from(Event).where(Event.kind == "test.as_runtime")) == 3
    result = _verify(app)
    assert result.exit_code == 0, result.output
