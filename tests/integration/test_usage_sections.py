"""The council's question on one page: is cashless growing, per fund, and how the counter is paid.

The usage report's further tables (the monthly share, the share per fund, the counter's tenders)
are held to the report's own rows and to the sales, on screen, in CSV and in the PDF.
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import Sale
from reconciliation.reports import SOURCE_GATEWAY, cashless_usage, share, to_csv, to_pdf
from tests.ward_day import CODE, build_ward_day, log_in


@pytest.mark.parametrize(("part", "whole", "shown"), [(1, 3, "33.3%"), (2, 3, "66.7%"), (1, 8, "12.5%"),
                                                      (0, 5, "0.0%"), (5, 5, "100.0%"), (0, 0, ""), (-1, 4, "-25.0%")])
def test_shares_are_computed_from_integers_and_rounded_half_up(part: int, whole: int, shown: str) -> None:
    assert share(part, whole) == shown


@pytest.fixture
def report(app: Flask, session: Session, cipher: Any) -> Any:
    build_ward_day(app, session, cipher)
    return cashless_usage(session, CODE)


def test_the_monthly_share_and_the_share_per_fund_add_up_to_the_report(report: Any) -> None:
    trend, funds, tenders = report.sections
    ours = sum(r[3] for r in report.rows if r[5] == SOURCE_GATEWAY)
    elsewhere = sum(r[3] for r in report.rows if r[5] != SOURCE_GATEWAY)
    assert elsewhere >= 2 and ours > 0
    assert trend.totals[0][1:3] == (ours, elsewhere) and trend.totals[0][3] == share(ours, ours + elsewhere)
    for month, count, other, ratio, _change in trend.rows:
        assert count == sum(r[3] for r in report.rows if r[0] == month and r[5] == SOURCE_GATEWAY)
        assert ratio == share(count, count + other)
    assert funds.totals[0][1] == ours and funds.totals[0][3] == elsewhere
    assert funds.totals[0][2] == sum(r[4] for r in report.rows if r[5] == SOURCE_GATEWAY)
    assert {r[0] for r in funds.rows} == {r[2] for r in report.rows}


def test_the_counters_tenders_are_its_paid_sales(report: Any, session: Session) -> None:
    tenders = report.sections[2]
    paid = session.execute(select(func.count(), func.sum(Sale.total)).where(Sale.status == "paid")).one()
    assert tenders.totals[0][2:] == (paid[0], paid[1]) and paid[0] >= 2
    assert all(not row[1].isupper() for row in tenders.rows)  # tender names, not the terminal's codes


def test_screen_csv_and_pdf_carry_the_same_tables(app: Flask, report: Any) -> None:
    client = app.test_client()
    log_in(client, "acct")
    page = client.get("/staff/reports/usage").get_data(as_text=True)
    text = to_csv(report).decode("utf-8-sig")
    for section in report.sections:
        assert section.title in page and section.title in text
        assert f'id="{section.name}"' in page
        for row in section.rows:
            assert ",".join(str(v) for v in row) in text
    assert page.count("<svg") == 1 + sum(1 for s in report.sections if s.rows)
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing (make system-packages installs poppler-utils)")
    pdf = subprocess.run(["pdftotext", "-layout", "-", "-"], input=to_pdf(report), capture_output=True,
                         check=True).stdout.decode()
    for section in report.sections:
        assert section.title in pdf
    assert report.sections[0].totals[0][3] in pdf
