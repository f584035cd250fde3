"""Run the Alembic migrations in migrations/ (the schema is never built with create_all)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
HEAD_FILE = MIGRATIONS_DIR / "HEAD"


def built_here(dialect: str) -> Callable[..., bool]:
    """Alembic's include_object: leave out what the models build only on another database.

    The models mark such an object with `ddl_if(dialect=...)` (e.g. SQLite's unique (municipality_id,
    id) indexes, which PostgreSQL's primary keys are); Alembic's comparison does not read the mark.
    """
    def include(obj: object, _name: str | None, _type: str, _reflected: bool, _compare_to: object) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        return ddl_if is None or ddl_if.dialect is None or ddl_if.dialect == dialect
    return include


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head", *, payer_ref_key: bytes | None = None) -> None:
    """Apply migrations up to `revision` on `engine`'s database.

    `payer_ref_key`: the application's payer reference key, for a migration that hashes
    stored references (0019); without it such a migration reads KOKIN_PAYER_REF_KEY.
    """
    with _migrating(engine) as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        config.attributes["payer_ref_key"] = payer_ref_key
        command.upgrade(config, revision)


# The runtime role's rights: every table read and written as the app needs, except the audit
# record, which it may only add to and read. It owns nothing, so it cannot TRUNCATE, ALTER or
# DROP anything nor disable a trigger; migrations run as the owner.
RUNTIME_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON events FROM {role}",
    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


def grant_runtime(engine: Engine, role: str) -> None:
    """Give the PostgreSQL role `role` the runtime rights on the current schema (run after each upgrade)."""
    if engine.dialect.name != "postgresql":
        raise RuntimeError("runtime roles are PostgreSQL's: SQLite has no roles")
    with engine.begin() as connection:
        quoted = connection.dialect.identifier_preparer.quote(role)
        for statement in RUNTIME_GRANTS:
            connection.exec_driver_sql(statement.format(role=quoted))


def downgrade(engine: Engine, revision: str = "base") -> None:
    with _migrating(engine) as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for Alembic, committed at the end.

    On SQLite, foreign keys are off while migrating: changing a table's constraints rebuilds
    it (copy, drop, rename), and dropping a table that other rows reference fails with them
    on. Every reference is checked before the commit instead, and the connection is thrown
    away after, so none with foreign keys off goes back to the pool.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        try:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or it is ignored
                connection.commit()
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration left {len(broken)} broken reference(s), first: "
                                           f"{tuple(broken[0])}; nothing was changed")
        finally:
            if sqlite:
                connection.invalidate()


def script_head(engine: Engine) -> str:
    """Return the head revision of the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
