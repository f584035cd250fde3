"""What `kokin demo` tells a newcomer to try once it serves: the README shows the same lines."""
from __future__ import annotations

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from domain.channels import gateway_checkouts
from gateway.models import Assessment, FundType, Municipality, Payment, Slip
from gateway.models.base import on_ward
from gateway.services.payments import business_today

DEMO_STAFF = (("demo-clerk", "counter_staff"), ("demo-supervisor", "counter_supervisor"),
              ("demo-accounting", "accounting"), ("demo-approver", "approver"), ("demo-admin", "administrator"))

# Filled in with the server's address, the staff password and a payable slip's pay page.
TRY_THIS = """\
  1. {base}/
     the front page: the staff screens, the API document and the sandbox consoles
  2. {base}/staff/login
     sign in as demo-clerk (counter), demo-accounting (exceptions, reports) or demo-admin
     (fees, staff passwords), password: {password}
     demo-accounting and demo-admin then enrol an authenticator app (TOTP, e.g. on a phone)
     from the QR code shown, and give its 6-digit code at each later sign-in
  3. {pay_page}
     a slip's pay page: pay it by card in the sandbox with test card 4242 4242 4242 4242
     (any future expiry, any CVC; no real money moves)
  4. {base}/sandbox/
     the sandbox console: the checkout you paid and the webhook the gateway received
  5. {base}/staff/reports
     the reports, signed in as demo-accounting: the card payment is in today's"""
PASSWORD_SET_BEFORE = "the one an earlier run printed (`kokin users password demo-admin --generate` sets a new one)"  # noqa: S105 - words
NO_PAYABLE_SLIP = "(no slip is payable online today: `kokin slips issue` after importing a ledger)"


def try_this(base: str, password: str | None, pay_token: str | None) -> str:
    """The numbered "try this" list; `password` is None when an earlier run made the accounts."""
    pay_page = f"{base}/pay/{pay_token}" if pay_token else NO_PAYABLE_SLIP
    return TRY_THIS.format(base=base, password=password or PASSWORD_SET_BEFORE, pay_page=pay_page)


def payable_slip_token(session: Session, municipality_code: str) -> str | None:
    """The pay token of a slip a resident could pay by card today: issued, unpaid, within its deadline."""
    paid = exists().where(Payment.assessment_id == Slip.assessment_id, Payment.applied)
    candidates = session.execute(
        select(Slip.pay_token, FundType.channels)
        .join(Assessment, on_ward(Slip, "assessment_id", Assessment))
        .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
        .join(Municipality, Municipality.id == Slip.municipality_id)
        .where(Municipality.code == municipality_code, Slip.status == "issued", Slip.barcode.is_not(None),
               Assessment.closed_reason.is_(None), ~paid,
               or_(Slip.store_deadline.is_(None), Slip.store_deadline >= business_today()))
        .order_by(Slip.store_deadline, Slip.id).limit(50)
    ).all()
    session.rollback()
    return next((token for token, channels in candidates if "card" in gateway_checkouts(channels)), None)
