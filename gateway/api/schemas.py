"""Marshmallow schemas of the JSON API. Unknown fields are rejected; schemas never query."""
from __future__ import annotations

import re
from datetime import date
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from domain.booking import CLOSED_REASONS
from domain.calendar import business_date
from domain.eltax import split_paid
from gateway.db import utcnow
from gateway.models import CHANNELS, SLIP_STATUSES


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


MAX_YEN = 99_999_999_999  # 11 digits: above any single payment, deposit or day's total of a ward; below 64 bits
DEPOSIT_YEARS_BACK = 5  # a statement older than this is no longer entered by hand (and 9999-12-31 is a typo)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Yen(fields.Integer):
    """An amount of yen: a JSON integer from 1 to MAX_YEN; never 1.5, "12300" or full-width digits."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_YEN))
        kwargs.setdefault("metadata", {"description": f"yen, 1 to {MAX_YEN:,}"})
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is not 1 yen
            raise self.make_error("invalid")
        return super()._validated(value)


class StatementDate(fields.Date):
    """A date on a bank statement: YYYY-MM-DD in ASCII digits, in the last DEPOSIT_YEARS_BACK years, not after today."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
            raise ValidationError("Not a date: write YYYY-MM-DD in ASCII digits.")
        day: date = super()._deserialize(value, attr, data, **kwargs)
        today = business_date(utcnow())
        earliest = today.replace(year=today.year - DEPOSIT_YEARS_BACK, day=1)
        if not earliest <= day <= today:
            raise ValidationError(f"{day} is not a plausible statement date: it must be between {earliest} and "
                                  f"{today} (today, Asia/Tokyo).")
        return day


class ErrorBodySchema(StrictSchema):
    code = fields.String(required=True, metadata={"description": "stable snake_case; clients branch on it"})
    message = fields.String(required=True, metadata={"description": "for people; may change"})
    details = fields.Dict(required=True, metadata={
        "description": "what failed; a refused request body names its fields in `fields` by location"})


class ErrorSchema(StrictSchema):
    """The envelope of every error answer (gateway.errors.error_body)."""

    error = fields.Nested(ErrorBodySchema, required=True)


class FundSchema(StrictSchema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    name_en = fields.String()
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), required=True)
    account = fields.String(metadata={"description": "会計 (accounting unit)"})
    revenue_item = fields.String(metadata={"description": "款・項・目 (revenue classification)"})
    active = fields.Boolean()


class SlipSchema(StrictSchema):
    number = fields.String(required=True, metadata={"description": "16 digits with check digit"})
    barcode = fields.String(allow_none=True, metadata={"description": "44 digits; null above 300,000 yen"})
    amount = fields.Integer(required=True, metadata={"description": "yen"})
    due_date = fields.Date(required=True)
    store_deadline = fields.Date(allow_none=True)
    reissue = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(SLIP_STATUSES))
    fund_code = fields.String(required=True)
    fiscal_year = fields.Integer(required=True)
    installment = fields.Integer(required=True)
    assessment_id = fields.String(required=True, metadata={"description": "the core system's key"})
    pay_url = fields.String(required=True)
    issued_at = fields.DateTime(required=True)
    voided_at = fields.DateTime(allow_none=True)
    void_reason = fields.String(allow_none=True)
    closed_reason = fields.String(allow_none=True, validate=validate.OneOf(CLOSED_REASONS), metadata={
        "description": "why the core system closed the instalment (status closed): paid_elsewhere or cancelled"})
    closed_on = fields.Date(allow_none=True, metadata={"description": "when it was paid elsewhere or cancelled"})
    el_number = fields.String(allow_none=True, metadata={"description": "eL番号 (digits as printed); null when none"})
    el_qr = fields.String(allow_none=True, metadata={
        "description": "the eL-QR payload exactly as the core system gave it; null when none"})
    principal = fields.Integer(required=True, metadata={"description": "yen: amount less late_fee and dunning_fee"})
    late_fee = fields.Integer(required=True, metadata={"description": "延滞金 within amount, yen"})
    dunning_fee = fields.Integer(required=True, metadata={"description": "督促手数料 within amount, yen"})


class PagedQuerySchema(StrictSchema):
    """Query strings are strict too; page and page_size belong to the paginator."""

    @pre_load
    def _leave_paging_to_the_paginator(self, data: Any, **_: Any) -> Any:
        return {k: v for k, v in data.items() if k not in ("page", "page_size")}


class SlipQuerySchema(PagedQuerySchema):
    assessment_id = fields.String()
    fund_code = fields.String()
    fiscal_year = fields.Integer(validate=validate.Range(2000, 2099))
    status = fields.String(validate=validate.OneOf(SLIP_STATUSES))


class ReissueSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 100))


def slip_dict(slip: Any, pay_url: str) -> dict[str, Any]:
    """Flatten a slip and its assessment into the API's shape."""
    assessment = slip.assessment
    return dict(number=slip.number, barcode=slip.barcode, amount=slip.amount, due_date=slip.due_date,
                store_deadline=slip.store_deadline, reissue=slip.reissue, status=slip.status,
                fund_code=assessment.fund_type.code, fiscal_year=assessment.fiscal_year,
                installment=assessment.installment, assessment_id=assessment.source_key, pay_url=pay_url,
                issued_at=slip.issued_at, voided_at=slip.voided_at, void_reason=slip.void_reason,
                closed_reason=assessment.closed_reason, closed_on=assessment.closed_on,
                el_number=assessment.el_number, el_qr=assessment.el_qr,
                **dict(zip(("principal", "late_fee", "dunning_fee"), split_paid(
                    slip.amount, assessment.amount, assessment.late_fee, assessment.dunning_fee), strict=True)))


class PaymentCreateSchema(StrictSchema):
    slip_number = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{16}$"))
    channel = fields.String(required=True, validate=validate.OneOf(("card", "paypay")))
    return_url = fields.Url(required=True, require_tld=False)
    cancel_url = fields.Url(require_tld=False)


class AttemptSchema(StrictSchema):
    id = fields.Integer(required=True)
    adapter = fields.String(required=True)
    status = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "charged to the payer, fee included"})
    redirect_url = fields.String(allow_none=True)
    qr_payload = fields.String(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)


class PaymentSchema(StrictSchema):
    id = fields.Integer(required=True)
    slip_number = fields.String(required=True)
    channel = fields.String(required=True)
    status = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "public revenue, yen"})
    fee_amount = fields.Integer(required=True, metadata={"description": "system usage fee, not revenue"})
    refunded_amount = fields.Integer(required=True)
    applied = fields.Boolean(required=True)
    overpaid = fields.Boolean(required=True)
    accepted_at = fields.DateTime(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)


def payment_dict(payment: Any, attempts: list[Any]) -> dict[str, Any]:
    """Flatten a payment and its attempts into the API's shape."""
    return dict(id=payment.id, slip_number=payment.slip.number, channel=payment.channel, status=payment.status,
                amount=payment.amount, fee_amount=payment.fee_amount, refunded_amount=payment.refunded_amount,
                applied=payment.applied, overpaid=payment.overpaid, accepted_at=payment.accepted_at,
                attempts=[dict(id=a.id, adapter=a.adapter, status=a.status, amount=a.amount,
                               redirect_url=a.redirect_url, qr_payload=a.qr_payload, expires_at=a.expires_at)
                          for a in attempts])
