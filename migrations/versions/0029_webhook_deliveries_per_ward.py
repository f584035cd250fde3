"""Ready to shard: a provider notification is recorded in the ward of the attempt it names.

`webhook_deliveries` gains `municipality_id`: the ward of the attempt the notification names,
found by its provider reference as the delivery is recorded (in the statement that records it);
0 when it names none of ours (malformed, unknown), the service's own as the audit's chain 0.
Its unique key becomes `(adapter, event_id, municipality_id)`, the ward last so that the lookup of
a redelivery by (adapter, event id) still uses it; PostgreSQL's primary key `(id, municipality_id)`.

Deliveries recorded before name no attempt (their references were not kept): they get 0. A
redelivery of one then settles its attempt again, which changes nothing (a settlement is
idempotent: the same status twice is refused by the attempt's state machine).

Revision ID: 0029
Revises: 0028
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.add_column(sa.Column('municipality_id', sa.Integer(), nullable=True))
    op.execute('UPDATE webhook_deliveries SET municipality_id = 0')
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.alter_column('municipality_id', existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint('uq_webhook_deliveries_adapter_event_id', type_='unique')
        batch.create_unique_constraint('uq_webhook_deliveries_adapter_event_id_municipality_id',
                                       ['adapter', 'event_id', 'municipality_id'])
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('pk_webhook_deliveries', 'webhook_deliveries', type_='primary')
        op.create_primary_key('pk_webhook_deliveries', 'webhook_deliveries', ['id', 'municipality_id'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('pk_webhook_deliveries', 'webhook_deliveries', type_='primary')
        op.create_primary_key('pk_webhook_deliveries', 'webhook_deliveries', ['id'])
    # The same event recorded in two wards (never, unless a provider reused an id) keeps its first.
    op.execute('DELETE FROM webhook_deliveries WHERE id > (SELECT min(d.id) FROM webhook_deliveries d '
               'WHERE d.adapter = webhook_deliveries.adapter AND d.event_id = webhook_deliveries.event_id)')
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.drop_constraint('uq_webhook_deliveries_adapter_event_id_municipality_id', type_='unique')
        batch.create_unique_constraint('uq_webhook_deliveries_adapter_event_id', ['adapter', 'event_id'])
        batch.drop_column('municipality_id')
