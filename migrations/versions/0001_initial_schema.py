"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26

The ward ledger, slips, reference data, API keys and the append-only event record.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import gateway.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('layout', sa.String(length=40), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('total_amount', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('amended', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('imported_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_imports')),
    sa.UniqueConstraint('sha256', name=op.f('uq_ledger_imports_sha256'))
    )
    op.create_table('municipalities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_kana', sa.String(length=40), nullable=False),
    sa.Column('company_code', sa.String(length=6), nullable=False),
    sa.Column('client_code', sa.String(length=5), nullable=False),
    sa.Column('store_deadline_offset_days', sa.Integer(), nullable=False),
    sa.Column('pay_base_url', sa.String(length=200), nullable=False),
    sa.Column('created_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_municipalities')),
    sa.UniqueConstraint('code', name=op.f('uq_municipalities_code'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', gateway.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_api_keys_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('subject_type', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_events_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_municipality_id'), ['municipality_id'], unique=False)

    op.create_table('fund_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('revenue_item', sa.String(length=100), nullable=False),
    sa.Column('company_code', sa.String(length=6), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('company_code IS NULL OR length(company_code) = 6', name=op.f('ck_fund_types_company_code_len')),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_fund_types_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_types')),
    sa.UniqueConstraint('municipality_id', 'code', name=op.f('uq_fund_types_municipality_id_code'))
    )
    op.create_table('issue_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('fund_code', sa.String(length=8), nullable=True),
    sa.Column('fiscal_year', sa.Integer(), nullable=True),
    sa.Column('slip_count', sa.Integer(), nullable=False),
    sa.Column('started_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', gateway.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_issue_runs_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issue_runs'))
    )
    op.create_table('slip_number_series',
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('next_serial', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_slip_number_series_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('municipality_id', 'fiscal_year', name=op.f('pk_slip_number_series'))
    )
    op.create_table('assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('source_key', sa.String(length=32), nullable=False),
    sa.Column('fund_type_id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('installment', sa.Integer(), nullable=False),
    sa.Column('payer_ref', sa.String(length=20), nullable=False),
    sa.Column('payer_name_enc', sa.LargeBinary(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_assessments_amount_positive')),
    sa.CheckConstraint('installment BETWEEN 1 AND 99', name=op.f('ck_assessments_installment_range')),
    sa.ForeignKeyConstraint(['fund_type_id'], ['fund_types.id'], name=op.f('fk_assessments_fund_type_id_fund_types')),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_assessments_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments')),
    sa.UniqueConstraint('municipality_id', 'source_key', 'installment', name=op.f('uq_assessments_municipality_id_source_key_installment'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assessments_fund_type_id'), ['fund_type_id'], unique=False)

    op.create_table('assessment_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('ledger_import_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_assessment_revisions_assessment_id_assessments')),
    sa.ForeignKeyConstraint(['ledger_import_id'], ['ledger_imports.id'], name=op.f('fk_assessment_revisions_ledger_import_id_ledger_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessment_revisions')),
    sa.UniqueConstraint('assessment_id', 'revision', name=op.f('uq_assessment_revisions_assessment_id_revision'))
    )
    with op.batch_alter_table('assessment_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assessment_revisions_ledger_import_id'), ['ledger_import_id'], unique=False)

    op.create_table('slips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('reissue', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('store_deadline', sa.Date(), nullable=True),
    sa.Column('barcode', sa.String(length=44), nullable=True),
    sa.Column('pay_token', sa.String(length=43), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('issue_run_id', sa.Integer(), nullable=True),
    sa.Column('issued_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('voided_at', gateway.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('void_reason', sa.String(length=100), nullable=True),
    sa.CheckConstraint("status IN ('issued', 'void', 'paid')", name=op.f('ck_slips_status_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_slips_amount_positive')),
    sa.CheckConstraint('barcode IS NULL OR length(barcode) = 44', name=op.f('ck_slips_barcode_len')),
    sa.CheckConstraint('reissue BETWEEN 0 AND 9', name=op.f('ck_slips_reissue_range')),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_slips_assessment_id_assessments')),
    sa.ForeignKeyConstraint(['issue_run_id'], ['issue_runs.id'], name=op.f('fk_slips_issue_run_id_issue_runs')),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'], name=op.f('fk_slips_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slips')),
    sa.UniqueConstraint('municipality_id', 'number', 'reissue', name=op.f('uq_slips_municipality_id_number_reissue')),
    sa.UniqueConstraint('pay_token', name=op.f('uq_slips_pay_token'))
    )
    with op.batch_alter_table('slips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slips_assessment_id'), ['assessment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_slips_issue_run_id'), ['issue_run_id'], unique=False)
        batch_op.create_index('uq_slips_live_assessment', ['assessment_id'], unique=True, sqlite_where=sa.text("status <> 'void'"), postgresql_where=sa.text("status <> 'void'"))



    _make_events_append_only()


def _make_events_append_only() -> None:
    """Refuse UPDATE and DELETE on events in the database itself, not only in code."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'events are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events"
            " FOR EACH ROW EXECUTE FUNCTION events_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events"
                " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
            )


def _drop_events_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION events_append_only()")
    else:
        op.execute("DROP TRIGGER events_no_update")
        op.execute("DROP TRIGGER events_no_delete")


def downgrade() -> None:
    _drop_events_append_only()
    with op.batch_alter_table('slips', schema=None) as batch_op:
        batch_op.drop_index('uq_slips_live_assessment', sqlite_where=sa.text("status <> 'void'"), postgresql_where=sa.text("status <> 'void'"))
        batch_op.drop_index(batch_op.f('ix_slips_issue_run_id'))
        batch_op.drop_index(batch_op.f('ix_slips_assessment_id'))

    op.drop_table('slips')
    with op.batch_alter_table('assessment_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assessment_revisions_ledger_import_id'))

    op.drop_table('assessment_revisions')
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assessments_fund_type_id'))

    op.drop_table('assessments')
    op.drop_table('slip_number_series')
    op.drop_table('issue_runs')
    op.drop_table('fund_types')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_municipality_id'))

    op.drop_table('events')
    op.drop_table('api_keys')
    op.drop_table('municipalities')
    op.drop_table('ledger_imports')
