"""The usage report: every way residents pay, per channel, fund and month, with a stacked chart.

Payments the gateway applied (card, eLTAX) and instalments the core system's status feed
reports paid elsewhere (bank, direct debit, the ward's cashier, eLTAX, other), each from
real imports and payments, on the report's rows, its CSV and the staff page.
"""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import Payment, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from gateway.services.status_import import import_status_changes
from reconciliation.reports import bar_chart_svg, cashless_usage, chart_stacks, to_csv
from reconciliation.run import TOKYO
from tests.card import pay_by_card
from tests.staff import log_in

CODE = "131075"
GATEWAY, CORE = "ゲートウェイ", "基幹システム（他経路の納付）"
RESIDENT, LIGHT, NHI = "特別区民税・都民税（普通徴収）", "軽自動車税（種別割）", "国民健康保険料"
HEADER = "municipality_code,assessment_id,installment,status,changed_on,channel"
PASSWORD = "staff-pass-2026!"  # noqa: S105 - a throwaway test account


def _row(key: str, fund: str, amount: int, installment: int = 1) -> dict[str, Any]:
    return dict(municipality_code=CODE, assessment_id=key, fund_code=fund, fiscal_year=2026, installment=installment,
                payer_ref="0000000001", payer_name="墨田　太郎", amount=amount, due_date=date(2026, 6, 30))


@pytest.fixture
def ward(app, session, cipher) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Instalments closed by the status feed, one paid by card, two by eLTAX; returns the card payment's month."""
    rows = [_row("B-1", "02", 5_000), _row("B-2", "02", 6_000), _row("D-1", "01", 12_300, 1),
            _row("D-1", "01", 12_300, 2), _row("K-1", "11", 8_000), _row("L-1", "11", 9_000),
            _row("O-1", "01", 7_000), _row("X-1", "02", 3_900), _row("C-1", "02", 4_000),
            _row("E-1", "11", 10_000), _row("E-2", "11", 11_000)]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    feed = [f"{CODE},B-1,1,paid_elsewhere,2026-06-20,bank", f"{CODE},B-2,1,paid_elsewhere,2026-06-25,bank",
            f"{CODE},D-1,1,paid_elsewhere,2026-06-30,direct_debit",
            f"{CODE},D-1,2,paid_elsewhere,2026-08-31,direct_debit",
            f"{CODE},K-1,1,paid_elsewhere,2026-07-10,cashier", f"{CODE},L-1,1,paid_elsewhere,2026-07-15,eltax",
            f"{CODE},O-1,1,paid_elsewhere,2026-07-20,other",
            f"{CODE},X-1,1,cancelled,2026-07-01,"]  # cancelled: nobody paid, not counted
    result = import_status_changes(session, ("\n".join([HEADER, *feed]) + "\n").encode(), filename="status.csv")
    assert result.closed == 8
    slips = {s.assessment.source_key: s for s in session.scalars(select(Slip)).unique()}
    card = pay_by_card(app, session, slips["C-1"]).payment
    _book_eltax(session, slips["E-1"], datetime(2026, 7, 16, 1, 0, tzinfo=TOKYO))
    _book_eltax(session, slips["E-2"], datetime(2026, 8, 1, 0, 30, tzinfo=TOKYO))  # 7/31 in UTC, August in Tokyo
    session.refresh(card)
    return {"card_month": card.accepted_at.astimezone(TOKYO).strftime("%Y-%m")}


def _book_eltax(session: Any, slip: Slip, accepted_at: datetime) -> None:
    # Stand-in for the eLTAX payment data import (`kokin agency import --adapter eltax-csv`, built
    # apart): a payment booked as that import books one, channel eltax, applied to the instalment.
    session.add(Payment(municipality_id=slip.municipality_id, slip_id=slip.id, assessment_id=slip.assessment_id,
                        channel="eltax", status="succeeded", amount=slip.amount, fee_amount=0, refunded_amount=0,
                        applied=True, overpaid=False, accepted_at=accepted_at))
    session.commit()


def _expected(card_month: str) -> list[tuple[Any, ...]]:
    rows = [
        ("2026-06", "銀行窓口", LIGHT, 2, 11_000, CORE),
        ("2026-06", "口座振替", RESIDENT, 1, 12_300, CORE),
        ("2026-07", "eLTAX", NHI, 1, 10_000, GATEWAY),
        ("2026-07", "区の窓口（出納）", NHI, 1, 8_000, CORE),
        ("2026-07", "eLTAX", NHI, 1, 9_000, CORE),
        ("2026-07", "その他", RESIDENT, 1, 7_000, CORE),
        ("2026-08", "eLTAX", NHI, 1, 11_000, GATEWAY),
        ("2026-08", "口座振替", RESIDENT, 1, 12_300, CORE),
        (card_month, "クレジットカード", LIGHT, 1, 4_000, GATEWAY),
    ]
    return sorted(rows, key=lambda r: (r[0], r[5] == CORE))  # by month, the gateway's first (stable otherwise)


def test_the_report_adds_eltax_and_the_payments_made_elsewhere_by_channel_fund_and_month(session, ward) -> None:  # type: ignore[no-untyped-def]
    report = cashless_usage(session, CODE)

    assert report.columns == ("月", "経路", "科目", "件数", "金額（円）", "記録元")
    assert report.rows == _expected(ward["card_month"])
    assert sum(r[4] for r in report.rows) == 11_000 + 12_300 * 2 + 8_000 + 9_000 + 7_000 + 4_000 + 10_000 + 11_000


def test_the_csv_holds_the_same_figures(session, ward) -> None:  # type: ignore[no-untyped-def]
    data = to_csv(cashless_usage(session, CODE))

    assert data.startswith("\ufeff".encode())
    everything = list(csv.reader(io.StringIO(data.decode("utf-8").removeprefix("\ufeff"))))
    lines = everything[:everything.index([])]  # the main table; the further tables follow an empty line
    assert lines[0] == ["月", "経路", "科目", "件数", "金額（円）", "記録元"]
    expected = _expected(ward["card_month"])
    assert lines[1:-1] == [[str(v) for v in row] for row in expected]
    assert lines[-1] == ["合計", "", "", str(sum(r[3] for r in expected)), str(sum(r[4] for r in expected)), ""]
    assert ["2026-06", "銀行窓口", LIGHT, "2", "11000", CORE] in lines


def test_the_chart_stacks_each_months_channels(session, ward) -> None:  # type: ignore[no-untyped-def]
    report = cashless_usage(session, CODE)
    stacks = dict(chart_stacks(report))

    assert stacks["2026-06"] == [("銀行窓口", 11_000), ("口座振替", 12_300)]
    assert stacks["2026-07"] == [("eLTAX", 19_000), ("区の窓口（出納）", 8_000), ("その他", 7_000)]
    assert stacks["2026-08"] == [("eLTAX", 11_000), ("口座振替", 12_300)]
    svg = bar_chart_svg(report)
    assert svg.count("<rect") == sum(len(s) for s in stacks.values()) + 6  # a segment each, a swatch per channel
    shown = ("銀行窓口", "口座振替", "区の窓口（出納）", "eLTAX", "その他", "クレジットカード", "34,000", "23,300")
    for label in shown:
        assert label in svg, label


def test_the_staff_page_shows_the_figures_and_downloads_the_csv(app, client, session, ward) -> None:  # type: ignore[no-untyped-def]
    create_user(session, CODE, "acct", "accounting", PASSWORD, counter_code="resident", actor="test")
    assert log_in(client, "acct", PASSWORD).status_code == 302

    html = client.get("/staff/reports/usage").get_data(as_text=True)
    assert "収納経路の利用状況" in html and '<svg' in html and "区の窓口（出納）" in html and "12,300" in html
    download = client.get("/staff/reports/usage?format=csv")
    assert download.status_code == 200 and download.data == to_csv(cashless_usage(session, CODE))
    assert client.get("/staff/reports/usage?format=pdf").data.startswith(b"%PDF")
