"""Each agency record as received: the 速報, 確報 and 取消 lines of a store payment, beside their fields.

An exception's evidence shows the agency's records as the ward received them, not only as the
import parsed them (issue 18, point 2). A store payment's row gathers up to three records, each
from its own file, so each kind keeps its own line: the record decoded from the file's encoding
(cp932), exactly its characters, without the line end. Rows imported before this revision have
none (NULL): their files are kept by the agency, not here.

Nullable columns without a default: adding them rewrites no row on PostgreSQL.

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
    with op.batch_alter_table('agency_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preliminary_line', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('final_line', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('cancel_line', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agency_reports', schema=None) as batch_op:
        batch_op.drop_column('cancel_line')
        batch_op.drop_column('final_line')
        batch_op.drop_column('preliminary_line')
