"""The event record keeps its municipality without a per-row foreign-key check.

Every settlement writes two or three events, and each insert checked its municipality
against `municipalities` (a lookup that takes a share lock on the municipality's one row,
which every concurrent settlement of the ward shares). Measured on PostgreSQL with the
webhook's settlement function, one call at a time: 350 us of server CPU with the check,
285 us without. Events are append-only, and each takes its municipality from what it
records (a payment, slip, sale, import, user or fee), read or written in the same
transaction and keeping its own foreign key: a check on the copy guards nothing that key
does not. The index on the column stays.

On SQLite the table is rebuilt, so its append-only triggers are made again.

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

FOREIGN_KEY = 'fk_events_municipality_id_municipalities'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(FOREIGN_KEY, 'events', type_='foreignkey')
        return
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_='foreignkey')
    _sqlite_append_only()


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.create_foreign_key(FOREIGN_KEY, 'events', 'municipalities', ['municipality_id'], ['id'])
        return
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_foreign_key(FOREIGN_KEY, 'municipalities', ['municipality_id'], ['id'])
    _sqlite_append_only()


def _sqlite_append_only() -> None:
    """The triggers of migration 0001, which a rebuilt SQLite table loses."""
    for action in ('UPDATE', 'DELETE'):
        op.execute(f'DROP TRIGGER IF EXISTS events_no_{action.lower()}')
        op.execute(f'CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events'
                   " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END")
