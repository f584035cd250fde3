"""Each audit event names the request or job that recorded it.

- events.request_id: the X-Request-Id of the request (or the id of the command or scheduler
  job) that recorded the event, indexed so that an operator finds what one request did. Kept
  beside the chained body, whose form is a contract with every event already recorded; events
  recorded before this revision have none.

Revision ID: 0022
Revises: 0021
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_request_id'))
        batch_op.drop_column('request_id')
