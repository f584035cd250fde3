"""Payer references kept only as a keyed hash: `assessments.payer_ref` becomes `payer_ref_hmac`.

Each existing reference is replaced by HMAC-SHA256 of `municipality_code:payer_ref` under the
payer reference key (gateway.crypto.payer_ref_hmac), so the upgraded database holds no
reference in plain text. The key is the one the application uses: `kokin db upgrade` hands
it over (the env var KOKIN_PAYER_REF_KEY, or in sandbox mode the instance folder's key
file); run otherwise (plain `alembic upgrade`), the env var KOKIN_PAYER_REF_KEY is read.
Without a key the migration refuses to run when there are assessments to convert.

Downgrade cannot give the references back (a hash is one-way): the old column gets the
hash's first 20 hex digits, a stand-in that compares like the reference did, and the next
import of the whole ledger by the old code puts the real references back (each as a
payer update).

Revision ID: 0019
Revises: 0018
"""
from __future__ import annotations

import hashlib
import hmac
import os

import sqlalchemy as sa
from alembic import context, op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

BATCH = 5_000
KEY_ENV = "KOKIN_PAYER_REF_KEY"


def _key() -> bytes:
    key = context.config.attributes.get("payer_ref_key")
    if key is None and os.environ.get(KEY_ENV, "").strip():
        key = os.environ[KEY_ENV].strip().encode("utf-8")
    if key is None or len(key) < 32:
        raise RuntimeError(f"migration 0019 hashes the payer references already stored and needs the payer "
                           f"reference key ({KEY_ENV}, 32 bytes or more): run `kokin db upgrade` with the "
                           "application's configuration")
    return bytes(key)


def _hmac(key: bytes, municipality_code: str, payer_ref: str) -> str:
    # The same function as gateway.crypto.payer_ref_hmac, frozen here as this revision applies it.
    return hmac.new(key, f"{municipality_code}:{payer_ref}".encode(), hashlib.sha256).hexdigest()


def upgrade() -> None:
    connection = op.get_bind()
    assessments = sa.table('assessments', sa.column('id', sa.Integer), sa.column('municipality_id', sa.Integer),
                           sa.column('payer_ref', sa.String), sa.column('payer_ref_hmac', sa.String))
    municipalities = sa.table('municipalities', sa.column('id', sa.Integer), sa.column('code', sa.String))
    # The key first, before any change: SQLite does not roll back the DDL of a failed migration.
    key = _key() if connection.execute(sa.select(assessments.c.id).limit(1)).first() is not None else None
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer_ref_hmac', sa.String(length=64), nullable=True))
    if key is not None:
        last = 0
        update = sa.update(assessments).where(assessments.c.id == sa.bindparam('row_id')) \
            .values(payer_ref_hmac=sa.bindparam('digest'))
        while rows := connection.execute(
                sa.select(assessments.c.id, municipalities.c.code, assessments.c.payer_ref)
                .join(municipalities, municipalities.c.id == assessments.c.municipality_id)
                .where(assessments.c.id > last).order_by(assessments.c.id).limit(BATCH)).all():
            connection.execute(update, [{'row_id': id_, 'digest': _hmac(key, code, ref)} for id_, code, ref in rows])
            last = rows[-1][0]
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_column('payer_ref')
        batch_op.alter_column('payer_ref_hmac', existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer_ref', sa.String(length=20), nullable=True))
    op.execute("UPDATE assessments SET payer_ref = substr(payer_ref_hmac, 1, 20)")
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_column('payer_ref_hmac')
        batch_op.alter_column('payer_ref', existing_type=sa.String(length=20), nullable=False)
