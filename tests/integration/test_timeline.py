"""An exception's evidence and a slip's whole story, read from the demo's ward as a clerk would need them."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from markupsafe import escape
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.cli import cli
from gateway.models import AgencyReport, AgencyReportLine, Payment, ReconException
from gateway.services.staff_accounts import create_user
from gateway.services.timeline import exception_evidence, slip_story
from tests.rows import by_id
from tests.staff import PASSWORD, log_in


@pytest.fixture
def demo(app: Flask) -> None:
    result = app.test_cli_runner().invoke(cli, ["demo", "--payers", "60", "--no-serve"])
    assert result.exit_code == 0, result.output


def _first(session: Session, kind: str) -> ReconException:
    found = session.scalars(select(ReconException).where(ReconException.kind == kind).order_by(ReconException.id))
    item = found.first()
    assert item is not None, kind
    return item


def _texts(entries: Any) -> list[str]:
    return [text for e in entries for text in (e.title, *(v for pair in e.facts for v in pair))]


def test_a_double_payments_evidence_shows_both_payments_their_stores_and_the_overpayment_sent(
        demo: None, session: Session) -> None:
    item = _first(session, "double_payment")
    story, own = exception_evidence(session, item)
    assert story is not None and not own
    payments = [e for e in story.entries if e.source == "payment"]
    assert len(payments) >= 2 and {p.amount for p in payments} == {item.amount}
    assert all(dict(p.facts).get("店舗・アプリ") for p in payments if dict(p.facts)["経路"].startswith("コンビニ"))
    records = [e for e in story.entries if e.source == "record"]
    assert any("過誤納" in r.title for r in records) and any("収納" in r.title for r in records)
    assert [e.at for e in story.entries] == sorted(e.at for e in story.entries)  # newest last
    assert any(e.source == "assessment" for e in story.entries) and any(e.source == "slip" for e in story.entries)
    agency = [e for e in story.entries if e.source == "agency"]
    through_agency = [p for p in payments if "収納代行" in dict(p.facts)["経路"]]
    assert len(agency) >= len(through_agency) and all(dict(e.facts)["ファイル"] for e in agency)
    texts = _texts(story.entries)
    assert not [t for t in texts if "_" in t and t.isascii() and " " not in t], texts  # no raw codes
    assert session.scalar(select(Payment.id).where(Payment.id.in_([item.payment_id]))) == item.payment_id


def test_an_unknown_slip_is_told_by_the_agency_record_as_received(demo: None, session: Session) -> None:
    item = _first(session, "unknown_slip")
    story, _own = exception_evidence(session, item)
    assert story is not None and story.slips == [] and story.assessment is None
    received = [e for e in story.entries if e.source == "agency"]
    assert received and dict(received[0].facts)["バーコード"].startswith("91")
    assert "発行されていません" in dict(story.entries[-1].facts).get("内容", "") or any(
        "発行されていません" in t for t in _texts(story.entries))


def test_a_remittance_short_sets_what_the_reports_promised_against_the_deposits(demo: None, session: Session) -> None:
    item = _first(session, "remittance_mismatch")
    story, own = exception_evidence(session, item)
    assert story is None
    promised = [e for e in own if e.title == "確報による振込予定"]
    deposits = [e for e in own if e.source == "deposit"]
    assert promised and deposits
    assert promised[0].amount == item.details["expected"]
    assert item.details["received"] in {d.amount for d in deposits}


def test_a_slip_of_another_ward_or_never_issued_has_no_story(demo: None, session: Session) -> None:
    item = _first(session, "amount_mismatch")
    assert slip_story(session, item.municipality_id + 1, item.slip_number) is None
    assert slip_story(session, item.municipality_id, "9999999999999999") is None


def test_the_slip_page_and_the_exception_page_speak_japanese_and_english(demo: None, app: Flask,
                                                                          session: Session) -> None:
    item = _first(session, "amount_mismatch")
    create_user(session, "131075", "acct", "accounting", PASSWORD, actor="test")
    create_user(session, "131075", "clerk", "counter_staff", PASSWORD, counter_code="resident", actor="test")
    client = app.test_client()
    log_in(client, "acct")
    page = client.get(f"/staff/exceptions/{item.id}").get_data(as_text=True)
    for text in ("金額の相違", "請求額", "対応の手引き", "確認すること", "賦課を基幹システムから受信", "速報を受信"):
        assert text in page, text
    for raw in ("amount_mismatch</", "agency_report:", "billed:"):
        assert raw not in page, raw
    assert f'href="/staff/slips/{item.slip_number}"' in page
    english = client.get(f"/staff/exceptions/{item.id}?lang=en").get_data(as_text=True)
    assert "Amount mismatch" in english and "Preliminary report (速報) received" in english and "Billed" in english
    slip = client.get(f"/staff/slips/{item.slip_number}")
    assert slip.status_code == 200 and "発行した納付書" in slip.get_data(as_text=True)
    for path in ("/staff/slips/9999999999999999", "/staff/slips/abc", "/staff/slips/" + "1" * 17):
        assert client.get(path).status_code == 404, path
    clerk = app.test_client()
    log_in(clerk, "clerk")
    assert clerk.get(f"/staff/slips/{item.slip_number}").status_code == 403


def test_the_exception_and_slip_pages_show_each_agency_record_as_received_beside_its_fields(
        demo: None, app: Flask, session: Session) -> None:
    item = _first(session, "unknown_slip")
    report = by_id(session, AgencyReport, item.agency_report_id)
    assert report is not None
    kept = select(AgencyReportLine.line).where(AgencyReportLine.municipality_id == report.municipality_id,
                                               AgencyReportLine.agency_report_id == report.id,
                                               AgencyReportLine.kind == "preliminary")
    line = session.scalar(kept)
    assert line
    create_user(session, "131075", "acct", "accounting", PASSWORD, actor="test")
    client = app.test_client()
    log_in(client, "acct")

    for path in (f"/staff/exceptions/{item.id}", f"/staff/slips/{item.slip_number}"):
        page = client.get(path).get_data(as_text=True)
        label = f'id="received-{report.id}-preliminary">速報のレコード（受信したまま、報告 #{report.id}）</figcaption>'
        shown = (f'<pre class="raw-line" tabindex="0" role="region" aria-labelledby="received-{report.id}-preliminary">'
                 f"<code>{escape(line)}</code></pre>")
        assert label in page and shown in page, path
        assert report.barcode in page and "バーコード" in page, path  # the fields read from it, beside it

    # A row imported before migration 0029 kept no line: the page says so rather than show nothing.
    session.execute(delete(AgencyReportLine).where(AgencyReportLine.municipality_id == report.municipality_id,
                                                   AgencyReportLine.agency_report_id == report.id))
    session.commit()
    assert session.scalar(kept) is None
    page = client.get(f"/staff/exceptions/{item.id}").get_data(as_text=True)
    assert "保存されていません（0029より前に取り込んだレコード）" in page
    assert f'id="received-{report.id}-preliminary"' in page
    english = client.get(f"/staff/exceptions/{item.id}?lang=en").get_data(as_text=True)
    assert "not kept: imported before 0029" in english
    assert f"The preliminary report (速報) record as received (report #{report.id})" in english
