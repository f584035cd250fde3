"""The bank's statement file (全銀協 入出金取引明細) through `kokin agency deposits --layout zengin-nyushukkin`.

Deposits are recorded once per account, agencies are known by their remitter names, and the
remittances of 確報 data are checked per agency, bank account and date.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.agency.simulator import StorePayment, files_by_day, schedule
from gateway.cli import cli
from gateway.models import AgencyDeposit, Assessment, Event, FundType, ReconException, Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.agency_checks import check_agency_data, expected_remittances
from gateway.services.agency_import import import_agency_file
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import ReferenceDataError, seed_reference_data
from gateway.services.slips import issue_slips
from tests import zengin
from tests.conftest import MUNICIPALITIES
from tests.zengin import Account, Line

MUNICIPALITY = "131075"
ADAPTER = "agency-csv"
REMITTER = "ｶ)ｻﾝﾌﾟﾙｼｰｴｽﾌﾞｲ"  # agency-csv's remitter_kana in the sandbox settings
GENERAL = "0001-001-1-0100001"  # funds 01, 02 (defaults.toml)
HEALTH = "0001-001-1-0100011"  # fund 11


@pytest.fixture
def remitted(session, cipher, app):  # type: ignore[no-untyped-def]
    """Three slips of fund 01 and two of fund 11 paid at stores, their 確報 imported: (date, {account: yen})."""
    rows = list(itertools.islice(ward_rows(MUNICIPALITY, 2026, 40), 200))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, MUNICIPALITY)
    chosen: list[Slip] = []
    for fund, count in (("01", 3), ("11", 2)):
        chosen += session.scalars(select(Slip).join(Assessment, Assessment.id == Slip.assessment_id)
                                  .join(FundType, FundType.id == Assessment.fund_type_id)
                                  .where(FundType.code == fund, Slip.barcode.is_not(None))
                                  .order_by(Slip.id).limit(count)).all()
    paid_at = datetime(2026, 6, 1, 10, 0)
    payments = [StorePayment(s.barcode, paid_at.replace(minute=i), "0001234", "820") for i, s in enumerate(chosen)]
    agency = app.extensions["kokin.agencies"][ADAPTER]
    scheduled = schedule(payments)
    last = max(s.remittance_on for s in scheduled if s.remittance_on is not None)
    one_day = [replace(s, remittance_on=last) if s.remittance_on else s for s in scheduled]  # one remittance
    for data in files_by_day(agency, one_day, client_code="13107").values():
        import_agency_file(session, agency, data, municipality_code=MUNICIPALITY, filename="f.csv", source="test",
                           actor="test")
    rows = expected_remittances(session, MUNICIPALITY)
    assert len({r.remittance_on for r in rows}) == 1
    by_account = {r.account: r.expected for r in rows}
    assert set(by_account) == {GENERAL, HEALTH}
    assert by_account[GENERAL] == sum(s.amount for s in chosen[:3])
    return rows[0].remittance_on, by_account


def _deposits(app, tmp_path: Path, data: bytes, name: str = "statement.dat"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(data)
    return app.test_cli_runner().invoke(cli, ["agency", "deposits", str(path), "--layout", "zengin-nyushukkin"])


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model))  # type: ignore[no-any-return]


def test_a_statement_records_each_deposit_on_its_account_once_and_the_remittances_match(  # type: ignore[no-untyped-def]
        app, session, remitted, tmp_path) -> None:
    day, expected = remitted
    statement = [Account(GENERAL, [Line(expected[GENERAL], day, REMITTER), Line(2_200, day, deposit=False)]),
                 Account(HEALTH, [Line(expected[HEALTH], day, "ｶ)ｻﾝﾌﾟﾙ ｼｰｴｽﾌﾞｲ")])]  # spaces do not count

    first = _deposits(app, tmp_path, zengin.statement(*statement))
    again = _deposits(app, tmp_path, zengin.statement(*statement))
    unbroken = _deposits(app, tmp_path, zengin.statement(*statement, crlf=False), "unbroken.dat")

    assert first.exit_code == 0, first.output
    assert first.output.strip() == ("statement.dat: 2 account(s), 2 deposits: 2 recorded, 0 recorded before; "
                                    "1 withdrawals (not recorded)")
    assert again.exit_code == 0 and "0 recorded, 2 recorded before" in again.output
    assert unbroken.exit_code == 0 and "0 recorded, 2 recorded before" in unbroken.output
    deposits = session.execute(select(AgencyDeposit.adapter, AgencyDeposit.account, AgencyDeposit.deposited_on,
                                      AgencyDeposit.amount).order_by(AgencyDeposit.account)).all()
    assert deposits == [(ADAPTER, GENERAL, day, expected[GENERAL]), (ADAPTER, HEALTH, day, expected[HEALTH])]
    assert [r.difference for r in expected_remittances(session, MUNICIPALITY)] == [0, 0]
    assert check_agency_data(session, MUNICIPALITY, day + timedelta(days=1)) == Counter()


def test_a_remittance_on_another_account_is_raised_naming_the_expected_and_the_actual_account(  # type: ignore[no-untyped-def]
        app, session, remitted, tmp_path) -> None:
    day, expected = remitted
    statement = [Account(HEALTH, [Line(expected[GENERAL], day, REMITTER), Line(expected[HEALTH], day, REMITTER)])]
    assert _deposits(app, tmp_path, zengin.statement(*statement)).exit_code == 0

    assert check_agency_data(session, MUNICIPALITY, day + timedelta(days=1)) == Counter(remittance_mismatch=2)
    assert check_agency_data(session, MUNICIPALITY, day + timedelta(days=2)) == Counter()
    raised = {e.details["account"]: e for e in session.scalars(select(ReconException))}
    general, health = raised[GENERAL], raised[HEALTH]
    assert (general.amount, general.details["reason"], general.details["received_on_accounts"]) == (
        -expected[GENERAL], "arrived_on_other_account", [HEALTH])
    assert (health.amount, health.details["expected"], health.details["received"]) == (
        expected[GENERAL], expected[HEALTH], expected[HEALTH] + expected[GENERAL])


def test_money_on_an_account_no_payment_was_expected_on_names_the_accounts_it_was_expected_on(  # type: ignore[no-untyped-def]
        app, session, remitted, tmp_path) -> None:
    day, expected = remitted
    elsewhere = "0001-001-1-0100012"  # fund 12's account: none of these payments
    statement = [Account(elsewhere, [Line(expected[GENERAL], day, REMITTER)]),
                 Account(HEALTH, [Line(expected[HEALTH], day, REMITTER)])]
    assert _deposits(app, tmp_path, zengin.statement(*statement)).exit_code == 0

    check_agency_data(session, MUNICIPALITY, day + timedelta(days=1))
    raised = {e.details["account"]: e for e in session.scalars(select(ReconException))}
    assert set(raised) == {elsewhere, GENERAL}
    assert raised[elsewhere].kind == "remittance_mismatch"
    assert raised[elsewhere].details | {"difference": None} == {
        "adapter": ADAPTER, "account": elsewhere, "expected": 0, "received": expected[GENERAL], "payments": 0,
        "difference": None, "reason": "wrong_account", "expected_accounts": [GENERAL, HEALTH]}


def test_a_deposit_from_no_configured_agency_is_recorded_and_raised_once_without_the_name(  # type: ignore[no-untyped-def]
        app, session, tmp_path) -> None:
    statement = zengin.statement(Account(GENERAL, [Line(12_345, date(2026, 7, 31), "ｽﾐﾀﾞ ﾀﾛｳ")]))
    first = _deposits(app, tmp_path, statement)
    again = _deposits(app, tmp_path, statement)

    assert first.exit_code == 0, first.output
    assert "exception remittance_mismatch (remitter is no configured agency): 1" in first.output
    assert again.exit_code == 0 and "0 recorded, 1 recorded before" in again.output
    (deposit,) = session.scalars(select(AgencyDeposit)).all()
    assert (deposit.adapter, deposit.account, deposit.amount) == (None, GENERAL, 12_345)
    (raised,) = session.scalars(select(ReconException)).all()
    assert (raised.kind, raised.amount, raised.business_date) == ("remittance_mismatch", 12_345, date(2026, 7, 31))
    assert raised.details["reason"] == "unknown_remitter" and raised.details["account"] == GENERAL
    kept = str(raised.details) + str([e.data for e in session.scalars(select(Event))])
    assert "ｽﾐﾀﾞ" not in kept and "ﾀﾛｳ" not in kept


def _spoilt(record: int, offset: int, value: bytes) -> bytes:
    parts = zengin.records(Account(GENERAL, [Line(5_000, date(2026, 7, 31), REMITTER),
                                             Line(800, date(2026, 7, 31), deposit=False)]))
    parts[record] = zengin.put(parts[record], offset, value)
    return zengin.join(parts)


@pytest.mark.parametrize(("data", "reason"), [
    (zengin.join([r[:-1] if i == 1 else r for i, r in enumerate(zengin.records(Account(lines=[
        Line(5_000, date(2026, 7, 31), REMITTER)])))]), "record 2: record is 199 bytes, expected 200"),
    (zengin.join([zengin.records(Account(lines=[Line(5_000, date(2026, 7, 31), REMITTER)]))[i] for i in (0, 2, 1, 3)]),
     "record 3, field record_kind: a data record (kind 2) cannot follow a trailer (kind 8)"),
    (_spoilt(3, 20, b"000002"), "record 4, field withdrawal_count: trailer says 2 withdrawals, the account's data "
                                "records have 1"),
    (_spoilt(3, 7, b"0000000005001"), "record 4, field deposit_total: trailer says 5,001 yen of deposits"),
    (_spoilt(1, 9, b"080231"), "record 2, field booked_on: is not a date in 令和"),
    (_spoilt(1, 81, "ｶ".encode("cp932") + "カ".encode("cp932")), "record 2, field remitter_name: byte 0x83 "
                                                                  "(record position 83) is not JIS X 0201"),
], ids=["record-length", "kind-order", "trailer-count", "trailer-total", "wareki-date", "non-jis-byte"])
def test_a_bad_statement_is_refused_whole_naming_the_record_and_field(  # type: ignore[no-untyped-def]
        app, session, tmp_path, data, reason) -> None:
    result = _deposits(app, tmp_path, data)

    assert result.exit_code != 0
    assert "deposit file rejected" in result.output and "nothing was recorded" in result.output
    assert any(line.strip().startswith(reason) for line in result.output.splitlines()), result.output
    assert _count(session, AgencyDeposit) == 0 and _count(session, ReconException) == 0


def test_the_projects_own_deposits_layout_stays_the_default(app, session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deposits.csv"
    path.write_text("adapter,deposited_on,amount,reference\nagency-csv,2026-07-31,1000,STM-1\n", "utf-8")
    runner = app.test_cli_runner()

    result = runner.invoke(cli, ["agency", "deposits", str(path)])
    help_text = runner.invoke(cli, ["agency", "deposits", "--help"]).output

    assert result.exit_code == 0 and result.output.strip() == "deposits.csv: 1 deposits recorded, 0 recorded before"
    assert session.execute(select(AgencyDeposit.adapter, AgencyDeposit.account)).all() == [(ADAPTER, None)]
    assert "zengin-nyushukkin" in help_text and "kokin-deposits" in help_text


def test_a_fund_seeded_without_an_account_gets_the_configured_one_and_a_malformed_one_is_refused(  # type: ignore[no-untyped-def]
        session) -> None:
    fund = session.scalar(select(FundType).where(FundType.code == "11"))
    fund.bank_account = None
    session.commit()

    added = seed_reference_data(session, MUNICIPALITIES)

    assert added == [f"bank account of fund {MUNICIPALITY}/11"]
    assert session.scalar(select(FundType.bank_account).where(FundType.code == "11")) == HEALTH
    broken = [{**MUNICIPALITIES[0], "funds": [{**MUNICIPALITIES[0]["funds"][0], "bank_account": "0001-1-1234567"}]}]
    with pytest.raises(ReferenceDataError, match="BBBB-SSS-T-NNNNNNN"):
        seed_reference_data(session, broken)
