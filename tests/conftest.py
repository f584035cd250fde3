"""Test databases: the whole suite runs on SQLite or PostgreSQL (KOKIN_TEST_DATABASE).

The schema is built by the migrations, never create_all. Each test starts from the
migrated, seeded schema: a fresh copy of a template file on SQLite; on PostgreSQL the
tables a test wrote to are emptied and the seeded rows and every sequence put back as they
were after seeding (see PostgresBaseline). Tests commit for real (services own their
transactions), so concurrency tests see what production sees.

Under pytest-xdist (`-n`) every worker has a database of its own: its own template file
(each worker has its own temporary directory) and its own PostgreSQL database.

On PostgreSQL the tests use the database as production does: migrated by its owner, and the
app (and every command a test starts) connected as the runtime role RUNTIME_ROLE, which owns
nothing and may only add to and read the audit record (`kokin db grant-runtime`). `db_url` is
the runtime role's URL; `owner_url` the owner's, for the few tests that migrate or tamper.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from gateway import create_app, migrate
from gateway.config import DEFAULTS_FILE, load_settings
from gateway.db import Database
from gateway.services.reference import seed_reference_data

BACKEND = os.environ.get("KOKIN_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get("KOKIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # gw0, gw1, ... under xdist
TEST_DATA_KEY = Fernet.generate_key().decode()
TEST_PAYER_REF_KEY = "test-payer-reference-key-" + "0" * 32  # 32 bytes or more (gateway.crypto)
RUNTIME_ROLE = "kokin_runtime_test"
# The suite's deployment serves one ward (the defaults' first): commands find it without
# --municipality. Tests of several wards configure and seed the second themselves
# (tests/api/test_ward_isolation.py), as the defaults' second ward is seeded by `kokin db upgrade`.
MUNICIPALITIES = load_settings()["MUNICIPALITIES"][:1]


def one_ward_config(path: Path, instance_path: Path) -> Path:
    """Write a KOKIN_CONFIG for a process a test starts: its instance folder and the suite's one ward."""
    defaults = DEFAULTS_FILE.read_text(encoding="utf-8")
    first = defaults[defaults.index("[[municipalities]]"):]
    second = first.find("\n[[municipalities]]")
    ward = first if second < 0 else first[:second]
    path.write_text(f'instance_path = "{instance_path}"\n\n{ward}\n', encoding="utf-8")
    return path


# The business day online payments are checked against (store deadlines, 支払期限): the
# synthetic ward's files are dated 2026-04-01 and every slip they make is payable that day,
# whatever the machine's clock says. A test of expiry sets its own day.
BUSINESS_DAY = date(2026, 4, 1)


@pytest.fixture(autouse=True)
def business_day() -> Iterator[date]:
    from gateway.services import payments

    with pytest.MonkeyPatch.context() as patch:  # its own: a test's monkeypatch.undo() leaves it
        patch.setattr(payments, "business_today", lambda: BUSINESS_DAY)
        yield BUSINESS_DAY


def pytest_report_header(config: pytest.Config) -> str:
    return f"kokin database backend: {BACKEND}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Create a migrated, seeded database for this test session (or xdist worker); yield its URL."""
    if BACKEND == "sqlite":
        template = tmp_path_factory.mktemp("db") / "template.sqlite3"  # each worker has its own temp folder
        url = f"sqlite:///{template}"
        _migrate_and_seed(url)
        yield url
        return
    if BACKEND != "postgresql":
        pytest.exit(f"KOKIN_TEST_DATABASE={BACKEND!r}: use sqlite or postgresql", returncode=4)
    name = f"kokin_test_{WORKER}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # Commits do not wait for the disk: what a commit makes visible, and when, is
            # unchanged; only a crash of the server could lose the last ones of this
            # throwaway database. On a busy disk the wait was most of the suite's time.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception as exc:  # never skip: a missing PostgreSQL is a failure
        pytest.exit(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}", returncode=3)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    _migrate_and_seed(url)
    _make_runtime_role(admin)
    grant_runtime_rights(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _make_runtime_role(admin: Engine) -> None:
    with admin.connect() as conn:
        try:
            conn.execute(text(f"CREATE ROLE {RUNTIME_ROLE} LOGIN"))
        except DBAPIError as exc:  # made by another worker or an earlier run
            if "already exists" not in str(exc):
                raise


def grant_runtime_rights(owner_url: str) -> None:
    engine = create_engine(owner_url, poolclass=NullPool)
    migrate.grant_runtime(engine, RUNTIME_ROLE)
    engine.dispose()


def runtime_url(owner_url: str) -> str:
    return make_url(owner_url).set(username=RUNTIME_ROLE).render_as_string(hide_password=False)


def _migrate_and_seed(url: str) -> None:
    database = Database(url)
    migrate.upgrade(database.engine)
    seed_reference_data(database.session(), MUNICIPALITIES)
    database.dispose()


@pytest.fixture(scope="session")
def postgres_baseline(database_url: str) -> Iterator[PostgresBaseline]:
    baseline = PostgresBaseline(database_url)
    yield baseline
    baseline.engine.dispose()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database in the state right after `kokin db upgrade`, private to this test."""
    if BACKEND == "sqlite":
        copy = tmp_path / "kokin.sqlite3"
        shutil.copyfile(database_url.removeprefix("sqlite:///"), copy)
        yield f"sqlite:///{copy}"
        return
    baseline: PostgresBaseline = request.getfixturevalue("postgres_baseline")
    yield runtime_url(database_url)
    baseline.restore()


@pytest.fixture
def owner_url(db_url: str, database_url: str) -> str:
    """The same database as `db_url`, as its owner (migrations, tampering as an attacker with the owner's rights)."""
    return db_url if BACKEND == "sqlite" else database_url


class PostgresBaseline:
    """The PostgreSQL test database as migrated and seeded, and the cheap way back to it.

    TRUNCATE makes new files for every table and index and syncs them at commit (up to
    seconds a test on a busy disk), and most tests write to a few tables. So after a test
    one query finds the tables that differ from the seeded state: any row in a table that
    seeding leaves empty, another digest of a seeded table's rows. Only those are emptied
    (DELETE) and the seeded ones refilled from copies in the schema kokin_baseline; every
    sequence is set back to where seeding left it. Triggers and foreign keys are off while
    restoring (session_replication_role = replica: events refuse deletes, and a parent is
    refilled with its unchanged children in place), which needs a superuser, as the test
    cluster's postgres is. A schema that is not at head with the same tables is migrated
    first (a migration test that failed half-way).
    """

    SCHEMA = "kokin_baseline"
    others = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)  # no idle connection of its own between tests
        with self.engine.begin() as conn:
            self.head = self._revision(conn)
            self.tables = self._tables(conn)
            seeded = [t for t in self.tables if conn.execute(text(f'SELECT EXISTS (SELECT FROM "{t}")')).scalar()]
            conn.execute(text(f"CREATE SCHEMA {self.SCHEMA}"))
            for table in seeded:
                conn.execute(text(f'CREATE TABLE {self.SCHEMA}."{table}" AS TABLE public."{table}"'))
            digests = conn.execute(text("SELECT " + ", ".join(map(self._digest, seeded)))).one()
            sequences = conn.execute(text(
                "SELECT format('%I.%I', schemaname, sequencename), start_value, last_value "
                "FROM pg_sequences WHERE schemaname = 'public'"
            )).all()
        self.seeded = set(seeded)
        expected = dict(zip(seeded, digests, strict=True))
        self.find_changed = text("SELECT " + ", ".join(
            f"{self._digest(t)} IS DISTINCT FROM '{expected[t]}'" if t in expected
            else f'EXISTS (SELECT FROM public."{t}")'
            for t in self.tables
        ))
        self.reset_sequences = text("SELECT " + ", ".join(
            f"setval('{name}', {start if last is None else last}, {last is not None})"
            for name, start, last in sequences
        ))

    @staticmethod
    def _digest(table: str) -> str:
        return f"(SELECT md5(string_agg(r::text, E'\\n' ORDER BY r::text)) FROM public.\"{table}\" AS r)"

    @staticmethod
    def _revision(conn: Connection) -> str | None:
        return conn.execute(text("SELECT max(version_num) FROM alembic_version")).scalar()

    @staticmethod
    def _tables(conn: Connection) -> list[str]:
        return list(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' "
            "ORDER BY tablename"
        )).scalars())

    def restore(self) -> None:
        """Put the database back as it was after seeding; fail the test that left connections open."""
        with self.engine.connect() as conn:
            # A connection a test leaked "idle in transaction" would block the restore for ever.
            # The app's connections, closed a moment ago, may not have quit yet: give them time.
            deadline = time.monotonic() + 5
            while conn.execute(self.others).first() is not None and time.monotonic() < deadline:
                conn.commit()  # a transaction sees one snapshot of pg_stat_activity
                time.sleep(0.005)
            leaked = conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({self.others}) AS others")).all()
            if self._revision(conn) != self.head or self._tables(conn) != self.tables:
                conn.commit()
                migrate.upgrade(self.engine)
                migrate.grant_runtime(self.engine, RUNTIME_ROLE)  # the tables made again are the owner's alone
                assert self._tables(conn) == self.tables, "the test left tables the migrations do not make"
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            changed = [t for t, differs in zip(self.tables, conn.execute(self.find_changed).one(), strict=True)
                       if differs]
            if changed:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for table in changed:
                    conn.execute(text(f'DELETE FROM public."{table}"'))
                    if table in self.seeded:
                        conn.execute(text(f'INSERT INTO public."{table}" OVERRIDING SYSTEM VALUE '
                                          f'SELECT * FROM {self.SCHEMA}."{table}"'))
            conn.execute(self.reset_sequences)
            conn.commit()
        assert not leaked, f"the test left {len(leaked)} database connection(s) open"


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Settings a module's tests add to the app's (override the fixture in the module)."""
    return {}


@pytest.fixture
def app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_config: dict[str, Any]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", TEST_PAYER_REF_KEY)
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "MUNICIPALITIES": MUNICIPALITIES, **app_config})
    yield app
    app.extensions["kokin.db"].dispose()


@pytest.fixture
def database(app) -> Database:  # type: ignore[no-untyped-def]
    return app.extensions["kokin.db"]  # type: ignore[no-any-return]


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


@pytest.fixture
def cipher(app):  # type: ignore[no-untyped-def]
    return app.extensions["kokin.cipher"]


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
