"""Declarative base with a naming convention (Alembic batch mode on SQLite needs names)."""
from __future__ import annotations

from typing import cast

from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# `info=ENCRYPTED` on a column holding Fernet tokens of personal data (gateway.crypto): `kokin keys
# rotate` re-encrypts every such column, and `kokin keys check` reads each with the newest key.
ENCRYPTED = {"encrypted": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def encrypted_columns() -> list[tuple[Table, str]]:
    """Every (table, column name) holding encrypted personal data, in a stable order."""
    return [(t, c.name) for t in Base.metadata.sorted_tables for c in t.columns if c.info.get("encrypted")]


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class, for statements on hot paths that skip the ORM."""
    return cast(Table, model.__table__)
