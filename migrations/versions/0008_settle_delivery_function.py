"""PostgreSQL settles a provider notification of an instalment payment in one call.

`kokin_settle_delivery` is the webhook's whole transaction as one function, so a
notification costs one round trip (the call, in autocommit) instead of four. It follows
`gateway.services.payments._settle` step for step and statement for statement: record the
delivery (a repeat stops here), lock the attempt, its payment and the instalment, move the
attempt, and for a success book the payment once (a second success of the instalment becomes
an overpayment with its refund requested). Each statement takes a fresh snapshot, as the
application's statements do, so a booking sees a booking committed while it waited for the
lock. The rules stay in the application: the caller passes the moves the attempt's state
machine allows for the event and the payment's move on success.

It answers `declined`, having written nothing, when the attempt is not an instalment
payment's (a counter sale, or no such attempt): the application settles those itself. It
raises KK002 when a success meets a payment that is not open, and KK001 if the attempt
stopped being an instalment payment's between the check and the lock (an attempt's kind
never changes today); either way nothing is written.

The attempts table keeps a quarter of each page free, so an attempt's one settlement update
stays on its page (HOT) and touches none of its four indexes. Pages written from now on.

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

SIGNATURE = ('kokin_settle_delivery(text, text, text, timestamptz, text, text, jsonb, text, text, text, text, '
             'text, timestamptz, timestamptz, text, text)')

FUNCTION = r"""
CREATE OR REPLACE FUNCTION kokin_settle_delivery(
    p_adapter text, p_event_id text, p_event_type text, p_received_at timestamptz,
    p_provider_ref text, p_event text, p_moves jsonb, p_payment_from text, p_payment_to text,
    p_card_brand text, p_card_last4 text, p_provider_status text,
    p_accepted_at timestamptz, p_now timestamptz, p_actor text, p_refund_reason text,
    OUT outcome text, OUT attempt_id integer, OUT double_payment boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_target text;
    v_applied boolean;
    v_refund integer;
BEGIN
    double_payment := false;
    PERFORM FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
      WHERE a.adapter = p_adapter AND a.provider_ref = p_provider_ref AND p.assessment_id IS NOT NULL;
    IF NOT FOUND THEN  -- a counter sale's attempt, or none: the application settles it
        outcome := 'declined';
        RETURN;
    END IF;
    INSERT INTO webhook_deliveries (adapter, event_id, event_type, received_at)
    VALUES (p_adapter, p_event_id, p_event_type, p_received_at)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        outcome := 'duplicate';
        RETURN;
    END IF;
    SELECT a.id, a.status, p.id AS payment_id, p.status AS payment_status, p.municipality_id, p.slip_id,
           p.assessment_id, p.amount, p.fee_amount
      INTO r
      FROM payment_attempts a
      JOIN payments p ON p.id = a.payment_id
      JOIN assessments s ON s.id = p.assessment_id
     WHERE a.adapter = p_adapter AND a.provider_ref = p_provider_ref
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the attempt is not an instalment payment''s: settle it in the application'
              USING ERRCODE = 'KK001';
    END IF;
    attempt_id := r.id;
    v_target := p_moves ->> r.status;
    IF v_target IS NULL THEN  -- already there, or an older report arriving late: the state stands
        outcome := 'unchanged';
        RETURN;
    END IF;
    UPDATE payment_attempts
       SET status = v_target, card_brand = p_card_brand, card_last4 = p_card_last4, updated_at = p_now
     WHERE id = r.id;
    INSERT INTO events (kind, subject_type, subject_id, municipality_id, actor, data, recorded_at)
    VALUES ('attempt.' || p_event, 'payment_attempt', r.id::text, r.municipality_id, p_actor,
            json_build_object('adapter', p_adapter, 'status', v_target, 'provider_status', p_provider_status),
            p_now);
    outcome := 'applied';
    IF v_target <> 'succeeded' THEN
        RETURN;
    END IF;
    IF r.payment_status <> p_payment_from THEN
        RAISE EXCEPTION 'payment % is %; a success cannot be applied', r.payment_id, r.payment_status
              USING ERRCODE = 'KK002', DETAIL = r.payment_id::text;
    END IF;
    UPDATE payments
       SET status = p_payment_to, accepted_at = p_accepted_at, updated_at = p_now,
           applied = NOT EXISTS (SELECT FROM payments o WHERE o.assessment_id = r.assessment_id AND o.applied),
           overpaid = EXISTS (SELECT FROM payments o WHERE o.assessment_id = r.assessment_id AND o.applied)
     WHERE id = r.payment_id
    RETURNING applied INTO v_applied;
    IF v_applied THEN
        UPDATE slips SET status = 'paid' WHERE id = r.slip_id AND status = 'issued';
        INSERT INTO events (kind, subject_type, subject_id, municipality_id, actor, data, recorded_at)
        VALUES ('payment.applied', 'payment', r.payment_id::text, r.municipality_id, p_actor,
                json_build_object('amount', r.amount, 'fee', r.fee_amount, 'slip_id', r.slip_id), p_now);
    ELSE
        INSERT INTO refunds (payment_id, amount, reason, status, requested_by, created_at, updated_at)
        VALUES (r.payment_id, r.amount, p_refund_reason, 'requested', 'system', p_now, p_now)
        RETURNING id INTO v_refund;
        INSERT INTO events (kind, subject_type, subject_id, municipality_id, actor, data, recorded_at)
        VALUES ('payment.double_payment', 'payment', r.payment_id::text, r.municipality_id, p_actor,
                json_build_object('amount', r.amount, 'refund_id', v_refund), p_now);
        double_payment := true;
    END IF;
END;
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(FUNCTION)
    op.execute('ALTER TABLE payment_attempts SET (fillfactor = 75)')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('ALTER TABLE payment_attempts RESET (fillfactor)')
    op.execute(f'DROP FUNCTION {SIGNATURE}')
