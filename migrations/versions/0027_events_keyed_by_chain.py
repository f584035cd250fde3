"""Ready to shard: the audit record is keyed by its chain, the ward it belongs to.

`events.chain` is the municipality's id (0: the service's own chain, domain.audit), and the
record is distributed by it (docs/scaling.md): a ward's events live on its node, beside its
rows, and its chain is appended there under its head row's lock. `(chain, chain_seq)` is unique
already; on PostgreSQL the primary key `(id)` becomes `(id, chain)`, `id` first so that a lookup
by id alone still uses it. SQLite keeps `id INTEGER PRIMARY KEY`, as for every table (0026).

Revision ID: 0027
Revises: 0026
"""
from __future__ import annotations

from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('pk_events', 'events', type_='primary')
        op.create_primary_key('pk_events', 'events', ['id', 'chain'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('pk_events', 'events', type_='primary')
        op.create_primary_key('pk_events', 'events', ['id'])
