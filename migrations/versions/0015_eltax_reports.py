"""eLTAX payment data in agency_reports: a row per eLTAX payment, with its record id, eL番号 and method.

An eLTAX payment is money reported by another party and remitted later, like a store
payment: it shares the agency reports' booking, remittance checks and conservation. It has
no barcode, store or chain (those columns hold empty text for it) and carries these instead.

Revision ID: 0015
Revises: 0014
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agency_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('el_number', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('method', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agency_reports', schema=None) as batch_op:
        batch_op.drop_column('method')
        batch_op.drop_column('el_number')
        batch_op.drop_column('record_id')
