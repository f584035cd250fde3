"""Each record as received moves to a table of its own: `agency_report_lines`, insert-only.

Migration 0029 kept the lines in `agency_reports` (`preliminary_line`, `final_line`,
`cancel_line`). The 確報's UPDATE then wrote a 120-character line into rows that already held
the 速報's, so half a page free no longer kept each row's new version on its page: the 確報
import took 1.2 to 2.3 times as long (bench/README.md). Each line is now a row of its own,
keyed (agency_report_id, kind, municipality_id), written once by the import that receives the
record; the 確報's UPDATE is back to two narrow columns.

The ward is in the key and in the foreign key to the report's (municipality_id, id) (the
distribution rule, docs/scaling.md). `kind` is the record's: preliminary, final, cancel, or
eltax (eLTAX payment data, kept from this revision on).

Up: every line of 0029's columns is copied to the new table, then the columns are dropped.
Down: the agency lines go back to their columns; eLTAX lines have no place in 0029 and are
dropped with the table.

Revision ID: 0030
Revises: 0029
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None

KINDS = ('preliminary', 'final', 'cancel')  # 0029's columns: <kind>_line


def upgrade() -> None:
    op.create_table(
        'agency_report_lines',
        sa.Column('agency_report_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('municipality_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('line', sa.Text(), nullable=False),
        sa.CheckConstraint("kind IN ('preliminary','final','cancel','eltax')",
                           name=op.f('ck_agency_report_lines_known_kind')),
        sa.ForeignKeyConstraint(['municipality_id', 'agency_report_id'],
                                ['agency_reports.municipality_id', 'agency_reports.id'],
                                name='fk_agency_report_lines_agency_report_id_agency_reports'),
        sa.PrimaryKeyConstraint('agency_report_id', 'kind', 'municipality_id', name=op.f('pk_agency_report_lines')),
    )
    for kind in KINDS:
        op.execute(f"INSERT INTO agency_report_lines (agency_report_id, kind, municipality_id, line) "
                   f"SELECT id, '{kind}', municipality_id, {kind}_line FROM agency_reports "
                   f"WHERE {kind}_line IS NOT NULL")
    with op.batch_alter_table('agency_reports', schema=None) as batch_op:
        for kind in reversed(KINDS):
            batch_op.drop_column(f'{kind}_line')


def downgrade() -> None:
    with op.batch_alter_table('agency_reports', schema=None) as batch_op:
        for kind in KINDS:
            batch_op.add_column(sa.Column(f'{kind}_line', sa.Text(), nullable=True))
    line = ("(SELECT l.line FROM agency_report_lines l WHERE l.agency_report_id = agency_reports.id "
            "AND l.municipality_id = agency_reports.municipality_id AND l.kind = '{kind}')")
    op.execute("UPDATE agency_reports SET " + ", ".join(f"{kind}_line = {line.format(kind=kind)}" for kind in KINDS)
               + " WHERE EXISTS (SELECT 1 FROM agency_report_lines l WHERE l.agency_report_id = agency_reports.id "
               "AND l.municipality_id = agency_reports.municipality_id AND l.kind IN ('"
               + "','".join(KINDS) + "'))")
    op.drop_table('agency_report_lines')
