"""The core system's status feed: an instalment paid elsewhere or cancelled is closed.

An assessment (instalment) records why the core system closed it (`closed_reason`:
paid_elsewhere or cancelled), on which date (`closed_on`), through which channel it was
paid elsewhere (`closed_channel`), and the status file that said so. Its issued slips
become `closed`: no longer payable, money that still arrives for them is kept and raised.

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

SLIP_STATUSES_BEFORE = "status IN ('issued', 'void', 'paid')"
SLIP_STATUSES_AFTER = "status IN ('issued', 'void', 'paid', 'closed')"


def upgrade() -> None:
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_reason', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('closed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('closed_channel', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('closed_import_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_assessments_closed_import_id_ledger_imports'), 'ledger_imports',
                                    ['closed_import_id'], ['id'])
        batch_op.create_check_constraint(
            op.f('ck_assessments_closed_reason_known'),
            "closed_reason IS NULL OR closed_reason IN ('paid_elsewhere', 'cancelled')")
        batch_op.create_check_constraint(op.f('ck_assessments_closed_on_date'),
                                         '(closed_reason IS NULL) = (closed_on IS NULL)')
    with op.batch_alter_table('slips', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_slips_status_known'), type_='check')
        batch_op.create_check_constraint(op.f('ck_slips_status_known'), SLIP_STATUSES_AFTER)


def downgrade() -> None:
    op.execute("UPDATE slips SET status = 'issued' WHERE status = 'closed'")
    with op.batch_alter_table('slips', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_slips_status_known'), type_='check')
        batch_op.create_check_constraint(op.f('ck_slips_status_known'), SLIP_STATUSES_BEFORE)
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_assessments_closed_on_date'), type_='check')
        batch_op.drop_constraint(op.f('ck_assessments_closed_reason_known'), type_='check')
        batch_op.drop_constraint(op.f('fk_assessments_closed_import_id_ledger_imports'), type_='foreignkey')
        batch_op.drop_column('closed_import_id')
        batch_op.drop_column('closed_channel')
        batch_op.drop_column('closed_on')
        batch_op.drop_column('closed_reason')
