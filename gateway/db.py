"""Engine, sessions and the one way services commit: `with transaction(session)`."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ClauseElement, DateTime, Engine, Executable, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

from domain import clock

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC; SQLite gives it back aware too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: attach a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC (the wall clock, or the day `kokin demo --days` plays)."""
    return clock.now()


POOLERS = (None, "transaction")


def make_engine(url: str, pooler: str | None = None, **kwargs: Any) -> Engine:
    """Create the engine for `url`; SQLite gets foreign keys, WAL and a busy timeout.

    `pooler="transaction"`: `url` is a connection pooler in transaction mode (PgBouncer), which
    hands each transaction whatever server connection is free. Then nothing may live in a
    server session across transactions: psycopg's prepared statements are turned off (it
    prepares a statement run five times, on one server connection), and the code holds no
    other session state (SET LOCAL, temporary tables ON COMMIT DROP, transaction-level locks;
    the scheduler's session-level leader lock connects to KOKIN_DATABASE_DIRECT_URL).
    """
    if pooler not in POOLERS:
        raise RuntimeError(f"database pooler {pooler!r} is not one of {', '.join(map(str, POOLERS))}")
    if pooler == "transaction":
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "prepare_threshold": None}
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # No ping on checkout: it is a round trip on every request. A connection the server has
    # dropped fails its request instead (503 database_unavailable, the whole pool is
    # invalidated, the next request connects afresh), and none lives longer than 30 minutes.
    return create_engine(url, pool_recycle=1800, **kwargs)


def refuse_naive_datetimes(params: dict[str, Any]) -> None:
    """What UTCDateTime refuses through the session, refused on the paths straight to the driver."""
    for name, value in params.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(f"{name}: naive datetimes are refused: attach a timezone")


class Database:
    """The engine and session factory of one app (or one CLI or scheduler process)."""

    def __init__(self, url: str, pooler: str | None = None, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, pooler, **engine_kwargs)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.scoped = scoped_session(self.session_factory)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        """Return a new session, not bound to a request (CLI, scheduler, tests)."""
        return self.session_factory()

    def dispose(self) -> None:
        self.scoped.remove()
        self.engine.dispose()


class ReadReplica:
    """Where long reads (reports) go: the replica when one is set and answers, else the primary.

    A replica that does not answer is not asked again for `retry_after` seconds: reports then
    read the primary (a warning is logged once a time). A replica lags its primary by a moment;
    reports of past days do not mind.
    """

    def __init__(self, primary: Database, url: str | None, pooler: str | None = None,
                 retry_after: float = 30.0) -> None:
        self.primary = primary
        self.replica = None if not url else Database(url, pooler, connect_args=_quick_connect(url))
        self.retry_after = retry_after
        self._down_until = 0.0

    def session(self) -> Session:
        """The request's reading session (scoped: removed with the request's other sessions)."""
        if self.replica is None or time.monotonic() < self._down_until:
            return self.primary.scoped()
        session = self.replica.scoped()
        try:
            session.connection()
        except DBAPIError as exc:
            self.replica.scoped.remove()
            self._down_until = time.monotonic() + self.retry_after
            log.warning("the read replica does not answer (%s); reading the primary for %.0f s",
                        type(exc).__name__, self.retry_after)
            return self.primary.scoped()
        return session

    def remove(self) -> None:
        if self.replica is not None:
            self.replica.scoped.remove()

    def dispose(self) -> None:
        if self.replica is not None:
            self.replica.dispose()


def _quick_connect(url: str) -> dict[str, Any]:
    return {} if url.startswith("sqlite") else {"connect_timeout": 3}


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit on success, roll back on any error; the only way services commit."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


# A named parameter in the SQL psycopg is given, or an escaped percent sign (left as it is).
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")


def _prefixed(sql: str, prefix: str) -> str:
    """`sql` with each named parameter renamed `prefix` + its name."""
    return _PLACEHOLDER.sub(lambda m: m[0] if m[1] is None else f"%({prefix}{m[1]})s", sql)


class Statements:
    """Run prebuilt Core statements in the session's transaction, for hot paths.

    On PostgreSQL they go straight to the driver: compiled once per statement, prepared on
    the server, and a batch travels in one pipeline (one round trip; the transaction's
    BEGIN rides along). Elsewhere they run through the session's connection one by one.
    Parameters are passed as the driver takes them: aware datetimes, dicts for JSON
    columns (wrapped here), plain values otherwise. Rows answer by column name.
    """

    # (id, dialect) -> (the statement, kept so that its id stays its own; SQL; default parameters)
    _compiled: dict[tuple[int, str], tuple[Executable, str, dict[str, Any]]] = {}
    # the statements' ids -> the SQL of `write` (PostgreSQL); the statements are kept in _compiled
    _combined: dict[tuple[int, ...], str] = {}

    def __init__(self, session: Session) -> None:
        self._connection = session.connection()
        dialect = self._connection.dialect
        self.postgresql = dialect.name == "postgresql"
        self._driver = self._connection.connection.driver_connection if self.postgresql else None

    def first(self, statement: Executable, params: dict[str, Any]) -> Any | None:
        """The first row the statement returns (None when it returns none)."""
        return self.batch([(statement, params)])[0]

    def batch(self, items: list[tuple[Executable, dict[str, Any]]]) -> list[Any | None]:
        """Run the statements in order; the first row of each (None for no rows or no RETURNING)."""
        if self._driver is None:
            results = [self._connection.execute(statement, params) for statement, params in items]
            return [result.first() if result.returns_rows else None for result in results]
        from psycopg.pq import TransactionStatus
        from psycopg.rows import namedtuple_row
        from psycopg.types.json import Json

        driver = self._driver

        def send(statement: Executable, params: dict[str, Any]) -> Any:
            refuse_naive_datetimes(params)
            sql, defaults = self._sql(statement)
            values = {**defaults, **{k: Json(v) if isinstance(v, dict) else v for k, v in params.items()}}
            cursor = driver.cursor(row_factory=namedtuple_row)
            return cursor.execute(sql, values, prepare=True)

        if len(items) == 1 and driver.info.transaction_status == TransactionStatus.INTRANS:
            cursors = [send(*items[0])]  # nothing to ride along: a pipeline would only cost
        else:
            with driver.pipeline():
                cursors = [send(statement, params) for statement, params in items]
        return [cursor.fetchone() if cursor.description is not None else None for cursor in cursors]

    def write(self, items: list[tuple[Executable, dict[str, Any]]]) -> None:
        """Run writes of which none depends on another's effect; on PostgreSQL as one statement.

        Each write becomes a data-modifying CTE of a single statement, so the server parses,
        plans and executes once and the driver sends once, instead of once a write. The writes
        share one snapshot: none may read what another writes, and no row may be written
        twice. Elsewhere they run in order, as `batch` runs them. RETURNING is not read.
        """
        if self._driver is None:
            self.batch(items)
            return
        from psycopg.rows import namedtuple_row
        from psycopg.types.json import Json

        key = tuple(id(statement) for statement, _ in items)
        sql = self._combined.get(key)
        if sql is None:
            parts = [_prefixed(self._sql(statement)[0], f"w{n}_") for n, (statement, _) in enumerate(items)]
            sql = self._combined[key] = ("WITH " + ", ".join(f"w{n} AS ({part})" for n, part in enumerate(parts))
                                         + " SELECT 1")
        values: dict[str, Any] = {}
        for n, (statement, params) in enumerate(items):
            refuse_naive_datetimes(params)
            for name, value in {**self._sql(statement)[1], **params}.items():
                values[f"w{n}_{name}"] = Json(value) if isinstance(value, dict) else value
        self._driver.cursor(row_factory=namedtuple_row).execute(sql, values, prepare=True)

    def _sql(self, statement: Executable) -> tuple[str, dict[str, Any]]:
        key = (id(statement), self._connection.dialect.name)
        found = self._compiled.get(key)
        if found is None:
            compiled = cast(ClauseElement, statement).compile(dialect=self._connection.dialect)
            found = self._compiled[key] = (statement, str(compiled), dict(compiled.params))
        return found[1], found[2]
