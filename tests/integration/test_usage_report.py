"""The usage report: how residents pay and whether it grows, for one fiscal year on one page.

Payments the gateway applied (card, eLTAX, the counter's e-money) and instalments the core
system's status feed reports paid elsewhere (bank, direct debit, the ward's cashier, eLTAX,
other), each from real imports and payments: the monthly trend per channel with its changes,
the share per fund, the counter's tenders; the page, the CSV and the PDF show the same figures.
"""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from gateway.i18n import label
from gateway.models import Payment, Sale, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.sales import SaleLineRequest
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from gateway.services.status_import import import_status_changes
from gateway.staff.usage_tables import sections
from reconciliation import usage as usage_module
from reconciliation.run import TOKYO
from tests.card import pay_by_card
from tests.counter import paid_sale
from tests.rows import by_id
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
    _at(session, card.id, datetime(2026, 9, 3, 10, 0, tzinfo=TOKYO))
    clerk = create_user(session, CODE, "clerk", "counter_staff", PASSWORD, counter_code="resident", actor="test")
    for brand, lines, day in (("FELICA_ID", [SaleLineRequest("juminhyo", 2)], datetime(2026, 9, 10, 9, 0)),
                              ("QR_CODE", [SaleLineRequest("inkan", 1)], datetime(2026, 9, 11, 9, 0)),
                              ("FELICA_ID", [SaleLineRequest("juminhyo", 1)], datetime(2026, 10, 1, 9, 0))):
        sale_id = paid_sale(app, session, clerk, lines, brand=brand, business_date=day.date())
        payment = session.scalar(select(Payment).where(Payment.sale_id == sale_id))
        _at(session, payment.id, day.replace(tzinfo=TOKYO))
    sales = {s.id: s.total for s in session.scalars(select(Sale))}
    session.rollback()
    return {"sales": sales}


def _at(session: Any, payment_id: int, accepted_at: datetime) -> None:
    """Plant the history: the payment accepted on that day (the services stamp it now)."""
    payment = by_id(session, Payment, payment_id)
    payment.accepted_at = accepted_at
    session.commit()


def _book_eltax(session: Any, slip: Slip, accepted_at: datetime) -> None:
    # Stand-in for the eLTAX payment data import (`kokin agency import --adapter eltax-csv`, built
    # apart): a payment booked as that import books one, channel eltax, applied to the instalment.
    session.add(Payment(municipality_id=slip.municipality_id, slip_id=slip.id, assessment_id=slip.assessment_id,
                        channel="eltax", status="succeeded", amount=slip.amount, fee_amount=0, refunded_amount=0,
                        applied=True, overpaid=False, accepted_at=accepted_at))
    session.commit()


GW, EL = "キャッシュレス（ゲートウェイ）", "他の経路（基幹システムの報告）"


def _sections(app: Any, session: Any, year: int = 2026) -> list[usage_module.Section]:
    with app.test_request_context("/"):
        return sections(usage_module.usage(session, CODE, year))


def _part(parts: list[usage_module.Section], key: str) -> usage_module.Section:
    return next(p for p in parts if p.key == key)


def test_the_trend_counts_every_channel_in_its_tokyo_month(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    sales = sorted(ward["sales"].items())
    september, october = sales[0][1] + sales[1][1], sales[2][1]
    trend = _part(_sections(app, session), "trend")

    assert trend.rows == [
        ["2026-06", EL, "金融機関窓口", "2", "11,000"],
        ["2026-06", EL, "口座振替", "1", "12,300"],
        ["2026-07", GW, "eLTAX", "1", "10,000"],
        ["2026-07", EL, "区役所窓口（現金）", "1", "8,000"],
        ["2026-07", EL, "eLTAX", "1", "9,000"],
        ["2026-07", EL, "その他", "1", "7,000"],
        ["2026-08", GW, "eLTAX", "1", "11,000"],  # 7/31 in UTC, August in Tokyo
        ["2026-08", EL, "口座振替", "1", "12,300"],
        ["2026-09", GW, "クレジットカード", "1", "4,000"],
        ["2026-09", GW, "窓口 電子マネー", "2", f"{september:,}"],
        ["2026-10", GW, "窓口 電子マネー", "1", f"{october:,}"],
    ]  # the cancelled instalment is nowhere
    total = 11_000 + 12_300 * 2 + 8_000 + 9_000 + 7_000 + 10_000 + 11_000 + 4_000 + september + october
    assert trend.totals == [["合計", "", "", "13", f"{total:,}"]]
    assert _part(_sections(app, session, 2025), "trend").rows == []  # another fiscal year: none of it


def test_the_month_on_month_change_is_computed_from_integer_yen(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    change = {row[0]: row for row in _part(_sections(app, session), "change").rows}

    assert change["2026-04"][1:] == ["0", "0", "—", "—"]
    assert change["2026-06"][2:] == ["23,300", "—", "—"]  # nothing in May, nothing a year before
    assert change["2026-07"][2:] == ["34,000", "+45.9%", "—"]  # 34,000 / 23,300 = 1.4592
    assert change["2026-08"][2:] == ["23,300", "-31.5%", "—"]  # 23,300 / 34,000 = 0.6853
    assert usage_module.change(2, 3) == -333 and usage_module.change(1, 0) is None


def test_the_year_on_year_change_compares_the_same_month_a_year_before(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    ledger = ledger_file_bytes([_row("Y-1", "11", 17_000)], "kokin-csv", date(2025, 4, 1))
    import_ledger(session, app.extensions["kokin.cipher"], ledger, filename="ledger-2025.csv")
    issue_slips(session, CODE)
    slip = session.scalars(select(Slip).join(Slip.assessment)).unique().all()
    _book_eltax(session, next(s for s in slip if s.assessment.source_key == "Y-1"),
                datetime(2025, 7, 10, 9, 0, tzinfo=TOKYO))
    parts = _sections(app, session)
    change = {row[0]: row for row in _part(parts, "change").rows}

    assert change["2026-07"][2:] == ["34,000", "+45.9%", "+100.0%"]
    assert change["2026-06"][4] == "—"  # nothing in June 2025
    assert not any(r[0].startswith("2025") for r in _part(parts, "trend").rows)  # last year's: only as the base


def test_the_share_per_fund_adds_up_to_a_hundred(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    funds = _part(_sections(app, session), "funds")
    rows = {(r[0].split(" ", 1)[1], r[1]): r[2:] for r in funds.rows}

    assert rows[(NHI, GW)] == ["2", "21,000", "55.3%"] and rows[(NHI, EL)] == ["2", "17,000", "44.7%"]
    assert rows[(RESIDENT, GW)] == ["0", "0", "0.0%"] and rows[(RESIDENT, EL)] == ["3", "31,600", "100.0%"]
    assert rows[(LIGHT, GW)] == ["1", "4,000", "26.7%"] and rows[(LIGHT, EL)] == ["2", "11,000", "73.3%"]
    assert usage_module.shares([1, 1, 1]) == [334, 333, 333]  # largest remainder: always 100.0
    assert sum(usage_module.shares([7, 13, 29, 51, 3])) == 1000


def test_the_counters_tenders_per_month(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    sales = sorted(ward["sales"].items())
    tenders = _part(_sections(app, session), "tenders")

    assert tenders.rows == [["2026-09", "iD", "1", f"{sales[0][1]:,}"],
                            ["2026-09", "QRコード決済", "1", f"{sales[1][1]:,}"],
                            ["2026-10", "iD", "1", f"{sales[2][1]:,}"]]


def test_paid_elsewhere_appears_only_once_the_status_feed_reports_it(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    ledger = ledger_file_bytes([_row("B-9", "02", 2_500)], "kokin-csv", date(2026, 4, 1))
    import_ledger(session, app.extensions["kokin.cipher"], ledger, filename="ledger2.csv")
    before = _part(_sections(app, session), "trend")
    assert not any(r[0] == "2026-11" for r in before.rows)

    feed = f"{HEADER}\n{CODE},B-9,1,paid_elsewhere,2026-11-05,bank\n".encode()
    assert import_status_changes(session, feed, filename="status2.csv").closed == 1
    after = _part(_sections(app, session), "trend")
    assert ["2026-11", EL, "金融機関窓口", "1", "2,500"] in after.rows


def _screen_tables(html: str) -> dict[str, list[list[str]]]:
    from tests.ward_day import table

    out = {}
    for key in ("trend", "change", "funds", "tenders"):
        body, foot = table(html, f"usage-{key}")
        out[key] = body + foot
    return out


def test_the_page_the_csv_and_the_pdf_show_the_same_figures(app, client, session, ward) -> None:  # type: ignore[no-untyped-def]
    create_user(session, CODE, "acct", "accounting", PASSWORD, counter_code="resident", actor="test")
    assert log_in(client, "acct", PASSWORD).status_code == 302

    html = client.get("/staff/reports/usage?fy=2026").get_data(as_text=True)
    assert "収納経路の利用状況 2026年度" in html and "<svg" in html and "<title" in html and "<desc" in html
    screen = _screen_tables(html)
    download = client.get("/staff/reports/usage?fy=2026&format=csv")
    assert download.status_code == 200 and download.data.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(download.data.decode("utf-8").removeprefix("\ufeff"))))
    blocks: list[list[list[str]]] = []
    for line in lines[1:]:
        if not line:
            blocks.append([])
        else:
            blocks[-1].append(line)
    for block, key in zip(blocks, ("trend", "change", "funds", "tenders"), strict=True):
        assert block[2:] == screen[key], key  # the title, the headings, then the very cells of the page
    pdf = client.get("/staff/reports/usage?fy=2026&format=pdf").data
    assert pdf.startswith(b"%PDF")
    # The PDF is drawn from the very tables the page shows (reportlab embeds a font subset, so its
    # text cannot be read back): the same sections, with the chart, make the same bytes.
    with app.test_request_context("/staff/reports/usage?fy=2026"):
        figures = usage_module.usage(session, CODE, 2026)
        parts = sections(figures)
        assert {p.key: p.rows + p.totals for p in parts} == screen
        groups = {usage_module.GATEWAY: GW, usage_module.ELSEWHERE: EL}
        months, series = usage_module.stacks(figures, label, groups)
        assert series and len(months) == 12
        title = html.split("<h1>", 1)[1].split("</h1>", 1)[0]
        note = html.split('id="report-note">', 1)[1].split("</p>", 1)[0]
        assert pdf == usage_module.to_pdf(title, note, parts, months, series)
        assert pdf != usage_module.to_pdf(title, note, parts, months, [])  # the chart is in it
