"""Declarative base with a naming convention (Alembic batch mode on SQLite needs names)."""
from __future__ import annotations

from typing import cast

from sqlalchemy import ColumnElement, ForeignKeyConstraint, Index, MetaData, Table, and_
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


# Distribution by municipality (docs/scaling.md): a tenant row points at another tenant row only
# through its own ward. On PostgreSQL every tenant table's primary key is (id, municipality_id)
# (migration 0026): `id` first, so that a lookup by id alone still uses it; every unique key
# likewise ends with municipality_id. The models map `id`
# alone as the key, which it is (one sequence per table); SQLite keeps `id INTEGER PRIMARY KEY`
# (the only key SQLite numbers itself) and gives the pair a unique index of its own.
WARD = "municipality_id"


def ward_key(table: str, column: str, parent: str) -> ForeignKeyConstraint:
    """The foreign key (municipality_id, column) -> parent (municipality_id, id): a row of this ward's only.

    Named as the single-column key it replaced (migration 0026), so that it reads the same.
    """
    return ForeignKeyConstraint([WARD, column], [f"{parent}.{WARD}", f"{parent}.id"],
                                name=f"fk_{table}_{column}_{parent}")


def on_ward(child: Table, column: str, parent: Table) -> ColumnElement[bool]:
    """A join's ON clause along a ward_key: the parent's id and its ward, as the foreign key says.

    The ward in the join lets the planner match the join to the foreign key (its estimates), and
    keeps the join on one node once tables are distributed by municipality (docs/scaling.md).
    """
    return and_(parent.c.id == child.c[column], parent.c[WARD] == child.c[WARD])


def ward_id_index(table: str) -> Index:
    """SQLite's unique (municipality_id, id), the target of ward_key there; PostgreSQL's primary key is it."""
    return Index(f"uq_{table}_ward_id", WARD, "id", unique=True).ddl_if(dialect="sqlite")


def encrypted_columns() -> list[tuple[Table, str]]:
    """Every (table, column name) holding encrypted personal data, in a stable order."""
    return [(t, c.name) for t in Base.metadata.sorted_tables for c in t.columns if c.info.get("encrypted")]


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class, for statements on hot paths that skip the ORM."""
    return cast(Table, model.__table__)
