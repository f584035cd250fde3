"""Ready to shard: a provider notification handled is recorded in its ward's chain.

`webhook_deliveries` gains `chain`, as the audit record's (0027): the municipality's id of the
ward the notification belongs to, 0 (the service's own) when it names no attempt of ours (a
malformed notification, one to ignore). The service finds it from our attempt reference the
notification carries, which names its ward (`kk-<municipality code>-<hex>`); for a reference
made before, from its attempt. The record is distributed by `chain` (docs/scaling.md), so its
unique key becomes `(adapter, event_id, chain)`, the ward last so that its index still serves a
lookup by (adapter, event id); PostgreSQL's primary key `(id)` becomes `(id, chain)`. No foreign
key, for that 0.

Rows recorded before name their notification but not its attempt (neither reference was kept),
so their ward cannot be found: they get 0. A redelivery after this revision of a notification
recorded before is recorded again in its ward and settled again, which changes nothing (the
same report twice is refused by the attempt's state machine): it answers "unchanged" instead
of "duplicate", once. Providers deliver again for up to 3 days (domain/providers.md).

On PostgreSQL the column comes with a default (no row rewritten) that is dropped at once. On a
large table, build the new unique index concurrently first and add the key `USING INDEX` (0026).

Revision ID: 0031
Revises: 0030
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None

OLD_UNIQUE = 'uq_webhook_deliveries_adapter_event_id'
NEW_UNIQUE = 'uq_webhook_deliveries_adapter_event_id_chain'


def upgrade() -> None:
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.add_column(sa.Column('chain', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.alter_column('chain', existing_type=sa.Integer(), existing_nullable=False, server_default=None)
        batch.drop_constraint(OLD_UNIQUE, type_='unique')
        batch.create_unique_constraint(NEW_UNIQUE, ['adapter', 'event_id', 'chain'])
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('pk_webhook_deliveries', 'webhook_deliveries', type_='primary')
        op.create_primary_key('pk_webhook_deliveries', 'webhook_deliveries', ['id', 'chain'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('pk_webhook_deliveries', 'webhook_deliveries', type_='primary')
        op.create_primary_key('pk_webhook_deliveries', 'webhook_deliveries', ['id'])
    # A notification recorded in two chains (only one recorded before 0031 and delivered again
    # after it) keeps its first row.
    op.execute('DELETE FROM webhook_deliveries WHERE id > (SELECT min(d.id) FROM webhook_deliveries d '
               'WHERE d.adapter = webhook_deliveries.adapter AND d.event_id = webhook_deliveries.event_id)')
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.drop_constraint(NEW_UNIQUE, type_='unique')
        batch.create_unique_constraint(OLD_UNIQUE, ['adapter', 'event_id'])
        batch.drop_column('chain')
