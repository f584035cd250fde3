"""The schema comes from the migrations, matches the models, and the head file is current."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from gateway import migrate
from gateway.db import Database
from gateway.models import Base


def test_migrations_build_a_schema_identical_to_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations drifted apart: {diff}"


def test_checked_in_head_file_names_the_newest_migration(database: Database) -> None:
    head = migrate.script_head(database.engine)
    assert migrate.HEAD_FILE.read_text().strip() == head
    assert migrate.current_revision(database.engine) == head


def test_downgrade_to_empty_and_upgrade_again_round_trips(database: Database) -> None:
    migrate.downgrade(database.engine, "base")
    tables = set(inspect(database.engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(database.engine)
    assert {"slips", "assessments", "events"} <= set(inspect(database.engine).get_table_names())


def test_the_event_record_refuses_updates_and_deletes(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO events (kind, subject_type, subject_id, data, actor, recorded_at) "
                          "VALUES ('test', 'test', '1', '{}', 'test', CURRENT_TIMESTAMP)"))
    for statement in ("UPDATE events SET kind = 'changed'", "DELETE FROM events"):
        try:
            with database.engine.begin() as conn:
                conn.execute(text(statement))
        except Exception as exc:  # driver-specific error types
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")
