"""Test databases: the whole suite runs on SQLite or PostgreSQL (KOKIN_TEST_DATABASE).

The schema is built by the migrations, never create_all. Each test starts from the
migrated, seeded schema: a fresh copy of a template file on SQLite, truncated tables on
PostgreSQL. Tests commit for real (services own their transactions), so concurrency
tests see what production sees.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from gateway import create_app, migrate
from gateway.config import load_settings
from gateway.db import Database
from gateway.services.reference import seed_reference_data

BACKEND = os.environ.get("KOKIN_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get("KOKIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_DATA_KEY = Fernet.generate_key().decode()
MUNICIPALITIES = load_settings()["MUNICIPALITIES"]


def pytest_report_header(config: pytest.Config) -> str:
    return f"kokin database backend: {BACKEND}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Create a migrated, seeded database for this test session; yield its URL."""
    if BACKEND == "sqlite":
        template = tmp_path_factory.mktemp("db") / "template.sqlite3"
        url = f"sqlite:///{template}"
        _migrate_and_seed(url)
        yield url
        return
    if BACKEND != "postgresql":
        pytest.exit(f"KOKIN_TEST_DATABASE={BACKEND!r}: use sqlite or postgresql", returncode=4)
    name = f"kokin_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # never skip: a missing PostgreSQL is a failure
        pytest.exit(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}", returncode=3)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    _migrate_and_seed(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrate_and_seed(url: str) -> None:
    database = Database(url)
    migrate.upgrade(database.engine)
    seed_reference_data(database.session(), MUNICIPALITIES)
    database.dispose()


@pytest.fixture
def db_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database in the state right after `kokin db upgrade`, private to this test."""
    if BACKEND == "sqlite":
        copy = tmp_path / "kokin.sqlite3"
        shutil.copyfile(database_url.removeprefix("sqlite:///"), copy)
        yield f"sqlite:///{copy}"
        return
    yield database_url
    _reset_postgres(database_url)


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        # A connection a test leaked "idle in transaction" would block TRUNCATE for ever.
        leaked = conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).all()
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        tables = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).scalars().all()
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    _migrate_and_seed(url)
    assert not leaked, f"the test left {len(leaked)} database connection(s) open"


@pytest.fixture
def app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance")})
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
