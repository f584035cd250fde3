"""PayPay's settlement report, read from the file the merchant downloads (no settlement API).

The layout is data (adapters/paypay/layouts/paypay-settlement.toml, or a ward's own table).
Every line is validated before anything is returned; a fee above the amount is refused.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from adapters.base import SettledPayment
from domain import layouts
from domain.calendar import TOKYO
from domain.layouts import LineError

LAYOUT_DIR = Path(__file__).parent / "layouts"


class SettlementFileRejected(ValueError):
    """The report is refused whole; `errors` name each line and field and why."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__(f"settlement report: {len(errors)} error(s); first: {errors[0] if errors else '-'}")


def read_settlement(data: bytes, layout_name: str = "paypay-settlement") -> list[SettledPayment]:
    """Every payment of the report; raise SettlementFileRejected listing every error."""
    layout = layouts.load_layout(layout_name, LAYOUT_DIR)
    records, errors = layouts.read(layout, data)
    seen: dict[str, int] = {}
    for record in records:
        values = record.values
        if values["fee"] > values["amount"]:
            errors.append(LineError(record.line, "fee", f"{values['fee']:,} yen is more than the amount "
                                                        f"{values['amount']:,} yen"))
        if values["payment_id"] in seen:
            errors.append(LineError(record.line, "payment_id", f"repeats line {seen[values['payment_id']]}"))
        seen.setdefault(values["payment_id"], record.line)
    if not records and not errors:
        errors.append(LineError(0, None, "the report has no payments"))
    if errors:
        raise SettlementFileRejected(sorted(errors, key=lambda e: (e.line, e.field or "")))
    return [SettledPayment(provider_payment_id=r.values["payment_id"], reference=r.values["merchant_payment_id"],
                           amount=r.values["amount"], fee=r.values["fee"], payment_type="paypay",
                           settled_at=datetime.combine(r.values["paid_on"], r.values["paid_time"], tzinfo=TOKYO))
            for r in records]
