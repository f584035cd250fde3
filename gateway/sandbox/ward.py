"""A realistic synthetic ward ledger for the demo and benchmarks (deterministic per seed)."""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from domain.calendar import next_business_day

SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤",
            "吉田", "山田", "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水")
GIVEN = ("太郎", "花子", "一郎", "美咲", "健太", "陽菜", "大輔", "結衣", "翔太", "さくら",
         "誠", "愛", "浩二", "真由美", "隆", "恵子", "拓也", "由美", "直樹", "明美")


@dataclass(frozen=True)
class FundPlan:
    code: str
    share: float  # of payers
    due_months: tuple[int, ...]  # month of each instalment's due date (end of month)
    annual: tuple[int, int]  # range of the annual amount, yen
    unit: int  # instalments are whole multiples of this; the first takes the remainder


# Tokyo ward practice (collection-agency-data.md): resident tax in 4 instalments due end of
# June, August, October, January; light-vehicle tax once, end of May; NHI in 10, June-March.
PLANS = (
    FundPlan("01", 0.45, (6, 8, 10, 1), (8_000, 700_000), 100),
    FundPlan("02", 0.15, (5,), (2_000, 10_800), 100),
    FundPlan("11", 0.25, (6, 7, 8, 9, 10, 11, 12, 1, 2, 3), (20_000, 900_000), 100),
    FundPlan("12", 0.20, (7, 8, 9, 10, 11, 12, 1, 2), (30_000, 250_000), 100),
)
LIGHT_VEHICLE_RATES = (2_000, 2_400, 3_600, 3_900, 6_000, 7_200, 10_800)
LARGE_SHARE = 0.004  # a few resident-tax assessments large enough that an instalment tops 300,000 yen


def due_date(fiscal_year: int, month: int) -> date:
    """Return the end-of-month due date of `month` in the fiscal year, moved to a business day."""
    year = fiscal_year if month >= 4 else fiscal_year + 1
    first_of_next = date(year + (month == 12), month % 12 + 1, 1)
    return next_business_day(first_of_next - timedelta(days=1))


def split(total: int, parts: int, unit: int) -> list[int]:
    """Split an annual amount into instalments: equal multiples of `unit`, remainder in the first."""
    each = (total // parts) // unit * unit
    return [total - each * (parts - 1)] + [each] * (parts - 1)


def ward_rows(municipality_code: str, fiscal_year: int, payers: int, seed: int = 2026) -> Iterator[dict[str, object]]:
    """Yield kokin-csv rows (dicts of the layout's fields) for a synthetic ward."""
    rng = random.Random(seed)
    for payer in range(1, payers + 1):
        payer_ref = f"{payer:010d}"
        name = f"{rng.choice(SURNAMES)}　{rng.choice(GIVEN)}"
        for plan in PLANS:
            if rng.random() >= plan.share:
                continue
            annual = _annual(rng, plan)
            amounts = split(annual, len(plan.due_months), plan.unit)
            for number, (month, amount) in enumerate(zip(plan.due_months, amounts, strict=True), 1):
                yield dict(municipality_code=municipality_code,
                           assessment_id=f"{plan.code}-{fiscal_year}-{payer_ref}", fund_code=plan.code,
                           fiscal_year=fiscal_year, installment=number, payer_ref=payer_ref, payer_name=name,
                           amount=amount, due_date=due_date(fiscal_year, month))


def _annual(rng: random.Random, plan: FundPlan) -> int:
    if plan.code == "02":
        return rng.choice(LIGHT_VEHICLE_RATES)
    if plan.code == "01" and rng.random() < LARGE_SHARE:
        return rng.randrange(1_250_000, 3_000_000, 100)
    low, high = plan.annual
    # Most payers owe little, a few owe much: a skewed draw over the range.
    return int(low + (high - low) * rng.random() ** 3) // plan.unit * plan.unit


def ledger_file_bytes(rows: list[dict[str, object]], layout_name: str, created_on: date) -> bytes:
    """Return `rows` as a ledger file in the layout (with header, trailer and end if fixed)."""
    from domain.layouts import csv_header, encode_fixed, write_csv_line
    from gateway.layouts import load_layout

    layout = load_layout(layout_name)
    if layout.format == "csv":
        lines = [csv_header(layout), *(write_csv_line(layout, row) for row in rows)]
        return ("\n".join(lines) + "\n").encode(layout.encoding)
    municipality = rows[0]["municipality_code"] if rows else ""
    records = [encode_fixed(layout, "header", {"created_on": created_on, "municipality_code": municipality})]
    records += [encode_fixed(layout, "data", row) for row in rows]
    records.append(encode_fixed(layout, "trailer", {"record_count": len(rows),
                                                    "total_amount": sum(int(str(r["amount"])) for r in rows)}))
    records.append(encode_fixed(layout, "end", {}))
    return b"".join(record + b"\r\n" for record in records)
