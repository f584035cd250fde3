"""eLTAX payment data applied to the ward's instalments: matched on the eL番号, booked once, raised once."""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from adapters.eltax.simulator import EltaxPaid, remittance_on, write_file
from domain.calendar import TOKYO
from gateway.cli import cli
from gateway.db import transaction
from gateway.errors import AgencyFileInvalid
from gateway.models import (
    AgencyDeposit,
    AgencyImport,
    AgencyReport,
    AgencyReportLine,
    Assessment,
    Payment,
    ReceiptRecord,
    ReconException,
    Slip,
)
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.agency_checks import check_agency_data, expected_remittances, record_deposit
from gateway.services.agency_import import import_agency_file
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from gateway.services.status_import import import_status_changes
from gateway.services.timeline import slip_story
from reconciliation.balance import balance
from reconciliation.receipts import export_next
from tests import zengin

CODE = "131075"
ADAPTER = "eltax-csv"
DUE = date(2026, 7, 31)
PAID = date(2026, 7, 10)
# Instalments: (assessment_id, fund, amount); fund 01 and 11 are paid into different bank accounts.
LEDGER = [(f"{fund}-2026-{n:010d}", fund, 3_000 + 100 * n) for n, fund in enumerate(["01"] * 6 + ["11"] * 4, 1)]
NORMAL = [key for key, _, _ in LEDGER[:6]]  # paid once, cleanly
DOUBLE, MISMATCH, CLOSED, VOID = (key for key, _, _ in LEDGER[6:])
METHODS = ("card", "netbank", "app", "bank_counter")


def _el_number(key: str) -> str:
    return "0131075" + key.replace("-", "")  # 27 digits: an eL番号 as the core system would give it


@pytest.fixture
def ward(session, cipher) -> dict[str, Assessment]:  # type: ignore[no-untyped-def]
    """The instalments above imported with slips issued, each with its eL番号."""
    rows = [dict(municipality_code=CODE, assessment_id=key, fund_code=fund, fiscal_year=2026, installment=1,
                 payer_ref=key[-10:], payer_name="", amount=amount, due_date=DUE) for key, fund, amount in LEDGER]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, CODE)
    with transaction(session):
        # Test setup: the eL番号 set directly on the imported instalments (the column exists since
        # 0014; the ledger layouts that carry it are another change).
        for key, _, _ in LEDGER:
            session.execute(update(Assessment).where(Assessment.source_key == key)
                            .values(el_number=_el_number(key)))
        # A slip voided since it was issued, with no other slip issued (the payment came through it).
        void = session.scalar(select(Assessment.id).where(Assessment.source_key == VOID))
        session.execute(update(Slip).where(Slip.assessment_id == void).values(status="void"))
    # The core system says the CLOSED instalment was paid at a bank (the gateway did not see it).
    import_status_changes(session, (f"municipality_code,assessment_id,installment,status,changed_on,channel\n"
                                    f"{CODE},{CLOSED},1,paid_elsewhere,2026-07-05,bank\n").encode(),
                          filename="status.csv")
    return {a.source_key: a for a in session.scalars(select(Assessment))}


def _paid(key: str, amount: int, hour: int, method: str = "card") -> EltaxPaid:
    return EltaxPaid(_el_number(key), amount, datetime.combine(PAID, time(hour, 5, 30)), method)  # type: ignore[arg-type]


def _planted(ward: dict[str, Assessment]) -> dict[str, list[EltaxPaid]]:
    """The payments of the day: clean ones, and one of each anomaly (keyed by what it should raise)."""
    clean = [_paid(key, ward[key].amount, 8 + i, METHODS[i % 4]) for i, key in enumerate(NORMAL)]
    return {
        "clean": [*clean, _paid(DOUBLE, ward[DOUBLE].amount, 9)],
        "double_payment": [_paid(DOUBLE, ward[DOUBLE].amount, 15, "app")],  # the same instalment again, later
        "unknown_slip": [EltaxPaid("99999999999999999999", 4_200, datetime.combine(PAID, time(11)), "netbank")],
        "amount_mismatch": [_paid(MISMATCH, ward[MISMATCH].amount + 100, 12)],
        "closed": [_paid(CLOSED, ward[CLOSED].amount, 13, "bank_counter")],
        "payment_on_void_slip": [_paid(VOID, ward[VOID].amount, 14)],
    }


def _import(app, session, data: bytes, filename: str = "eltax.csv"):  # type: ignore[no-untyped-def]
    return import_agency_file(session, app.extensions["kokin.agencies"][ADAPTER], data, municipality_code=CODE,
                              filename=filename, source="test", actor="test")


def _state(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    state = {model.__tablename__: session.scalar(select(func.count()).select_from(model))
             for model in (AgencyImport, AgencyReport, Payment, ReceiptRecord, ReconException)}
    state["paid slips"] = session.scalar(select(func.count()).select_from(Slip).where(Slip.status == "paid"))
    return state


def _exceptions(session) -> Counter[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    """Each exception's kind and the record id of the eLTAX payment it is raised on."""
    rows = session.execute(select(ReconException.kind, AgencyReport.record_id)
                           .outerjoin(AgencyReport, AgencyReport.id == ReconException.agency_report_id)).all()
    return Counter((kind, record_id) for kind, record_id in rows)


def _feed(session) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    exported = export_next(session, CODE, actor="test", today=PAID + timedelta(days=1))
    assert exported is not None
    return list(csv.DictReader(io.StringIO(exported.data.decode("cp932"))))


def test_planted_anomalies_are_each_raised_once_and_every_payment_is_in_the_feed_as_eltax(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    planted = _planted(ward)
    payments = [p for group in planted.values() for p in group]

    result = _import(app, session, write_file(app.extensions["kokin.agencies"][ADAPTER], payments))

    assert (result.records, result.repeated) == (len(payments), 0)
    assert result.booked == len(NORMAL) + 2  # the clean ones and the one through a voided slip
    assert _exceptions(session) == Counter({
        ("double_payment", planted["double_payment"][0].key): 1, ("unknown_slip", planted["unknown_slip"][0].key): 1,
        ("amount_mismatch", planted["amount_mismatch"][0].key): 1,
        ("double_payment", planted["closed"][0].key): 1,  # paid at a bank already (the core system said so)
        ("payment_on_void_slip", planted["payment_on_void_slip"][0].key): 1})
    assert set(session.scalars(select(Payment.channel))) == {"eltax"}
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.applied)) == len(NORMAL) + 2
    unknown = session.scalar(select(AgencyReport).where(AgencyReport.payment_id.is_(None)))
    assert (unknown.record_id, unknown.method, unknown.slip_number) == (planted["unknown_slip"][0].key, "netbank", "")

    feed = _feed(session)
    assert len(feed) == len(payments) and {r["channel"] for r in feed} == {"eltax"}
    assert {r["remitted_on"] for r in feed} == {remittance_on(PAID).isoformat()}
    kinds = Counter((r["record_kind"], r["reason"]) for r in feed)
    assert kinds == Counter({("receipt", ""): len(NORMAL) + 2, ("overpayment", "double_payment"): 1,
                             ("overpayment", "amount_mismatch"): 1, ("overpayment", "closed_slip"): 1,
                             ("unidentified", ""): 1})
    assert next(r for r in feed if r["record_kind"] == "unidentified")["assessment_id"] == ""
    assert sum(int(r["amount"]) for r in feed) == sum(p.amount for p in payments)
    report = balance(session, CODE)
    assert report.difference == 0 and report.differences == []
    assert {c.channel: c.count for c in report.channels} == {"eltax": len(payments)}


def test_a_file_imported_twice_and_a_payment_repeated_in_a_later_file_apply_once(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    adapter = app.extensions["kokin.agencies"][ADAPTER]
    planted = _planted(ward)
    first = write_file(adapter, planted["clean"] + planted["unknown_slip"], remitted=False)
    _import(app, session, first)
    after_first, exceptions = _state(session), _exceptions(session)

    again = _import(app, session, first)
    # A later file carries one payment again, now with its remittance date, and one new payment.
    later = _import(app, session, write_file(adapter, [planted["clean"][0], *planted["amount_mismatch"]]),
                    filename="later.csv")

    assert again.already_imported and _state(session)["agency_imports"] == after_first["agency_imports"] + 1
    assert (later.records, later.repeated, later.booked, later.confirmed) == (2, 1, 0, 1)
    assert _state(session)["payments"] == after_first["payments"] + 1
    assert _exceptions(session) - exceptions == Counter({("amount_mismatch", planted["amount_mismatch"][0].key): 1})
    repeated = session.scalar(select(AgencyReport).where(AgencyReport.record_id == planted["clean"][0].key))
    assert repeated.remittance_on == remittance_on(PAID)
    assert balance(session, CODE).difference == 0


def _kept_lines(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Each eLTAX payment's record as received, by its record id (its line in the report's ward)."""
    rows = session.execute(select(AgencyReport.record_id, AgencyReportLine.line).join(
        AgencyReportLine, (AgencyReportLine.agency_report_id == AgencyReport.id)
        & (AgencyReportLine.municipality_id == AgencyReport.municipality_id)).where(AgencyReportLine.kind == "eltax"))
    return {record_id: line for record_id, line in rows}


def test_each_payment_keeps_its_record_as_received_shown_on_its_slips_page(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    adapter = app.extensions["kokin.agencies"][ADAPTER]
    clean = _planted(ward)["clean"]
    data = write_file(adapter, clean, remitted=False)
    _import(app, session, data)
    # A later file carries the first payment again, now with its remittance date: its line stays the first one.
    _import(app, session, write_file(adapter, clean[:1]), filename="later.csv")

    lines = data.decode("utf-8").split("\r\n")[1:-1]  # the data lines, without the header and the last CRLF
    kept = _kept_lines(session)
    assert sorted(kept.values()) == sorted(lines) and len(lines) == len(clean)
    assert all(line.startswith(f"{record_id},") for record_id, line in kept.items())

    report = session.scalar(select(AgencyReport).where(AgencyReport.record_id == clean[0].key))
    with app.test_request_context():
        story = slip_story(session, report.municipality_id, report.slip_number)
    assert story is not None
    shown = [e.received for e in story.entries if e.received is not None]
    assert [(r.id, r.line) for r in shown] == [(f"received-{report.id}-eltax", kept[clean[0].key])]
    assert shown[0].label == f"eLTAXのレコード（受信したまま、報告 #{report.id}）"


def test_a_payment_imported_before_that_comes_back_changed_refuses_the_file(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    adapter = app.extensions["kokin.agencies"][ADAPTER]
    clean = _planted(ward)["clean"]
    _import(app, session, write_file(adapter, clean))
    before = _state(session)
    changed = replace(clean[1], amount=clean[1].amount + 1, record_id=clean[1].key)

    with pytest.raises(AgencyFileInvalid) as rejected:
        _import(app, session, write_file(adapter, [clean[0], changed, *_planted(ward)["unknown_slip"]]), "again.csv")

    assert rejected.value.details["errors"] == [
        f"line 3, field amount: record {changed.key} was imported before with another amount"]
    assert _state(session) == before


def test_a_bad_file_names_every_bad_line_and_applies_nothing(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    adapter = app.extensions["kokin.agencies"][ADAPTER]
    good = write_file(adapter, _planted(ward)["clean"]).decode()
    lines = good.splitlines()
    bad = "\r\n".join([*lines, "X-1,12a,0,2026-07-10,10:00:00,card,2026-07-17",
                       "X-2,0131075,500,2026-07-10,10:00:00,cash,2026-07-17",
                       "X-3,0131075,500,2026-07-10,10:00:00,card,2026-07-01", lines[1]]) + "\r\n"
    before = _state(session)

    with pytest.raises(AgencyFileInvalid) as rejected:
        _import(app, session, bad.encode())

    errors = rejected.value.details["errors"]
    n = len(lines)
    assert [e.split(":")[0] for e in errors] == [f"line {n + 1}, field amount", f"line {n + 1}, field el_number",
                                                 f"line {n + 2}, field method", f"line {n + 3}, field remitted_on",
                                                 f"line {n + 4}, field record_id"]
    assert _state(session) == before


def test_remittances_from_the_agency_of_local_taxes_are_expected_per_account_and_checked(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    planted = _planted(ward)
    _import(app, session, write_file(app.extensions["kokin.agencies"][ADAPTER], planted["clean"]))
    day = remittance_on(PAID)

    expected = [r for r in expected_remittances(session, CODE, adapter=ADAPTER) if r.remittance_on == day]
    by_account = {r.account: r.expected for r in expected}
    assert len(by_account) == 2  # the two funds' accounts
    assert sum(by_account.values()) == sum(p.amount for p in planted["clean"])
    for n, (account, amount) in enumerate(sorted(by_account.items())):
        short = 100 if n == 0 else 0
        record_deposit(session, CODE, adapter=ADAPTER, deposited_on=day, amount=amount - short,
                       reference=f"stmt-{n}", entered_by="test", account=account)

    raised = check_agency_data(session, CODE, day + timedelta(days=1), adapter=ADAPTER)

    assert raised == Counter({"remittance_mismatch": 1})
    assert check_agency_data(session, CODE, day + timedelta(days=2), adapter=ADAPTER) == Counter()


def test_the_bank_statement_names_the_remittances_of_the_agency_of_local_taxes_by_its_kana(  # type: ignore[no-untyped-def]
        app, session, ward, tmp_path: Path) -> None:
    _import(app, session, write_file(app.extensions["kokin.agencies"][ADAPTER], _planted(ward)["clean"]))
    day = remittance_on(PAID)
    expected = expected_remittances(session, CODE, adapter=ADAPTER)
    path = tmp_path / "statement.dat"
    path.write_bytes(zengin.statement(*(zengin.Account(r.account, [zengin.Line(r.expected, day, "ﾁﾎｳｾﾞｲｷｮｳﾄﾞｳｷｺｳ")])
                                        for r in expected)))
    session.close()

    read = app.test_cli_runner().invoke(cli, ["agency", "deposits", str(path), "--layout", "zengin-nyushukkin"])

    assert read.exit_code == 0, read.output
    assert set(session.scalars(select(AgencyDeposit.adapter))) == {ADAPTER}
    assert [r.difference for r in expected_remittances(session, CODE, adapter=ADAPTER)] == [0, 0]
    assert check_agency_data(session, CODE, day + timedelta(days=1), adapter=ADAPTER) == Counter()


def test_the_command_imports_eltax_data_once(app, session, ward, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "eltax-20260711.csv"
    path.write_bytes(write_file(app.extensions["kokin.agencies"][ADAPTER], _planted(ward)["clean"]))
    session.close()
    runner = app.test_cli_runner()

    first = runner.invoke(cli, ["agency", "import", str(path), "--adapter", ADAPTER])
    again = runner.invoke(cli, ["agency", "import", str(path), "--adapter", ADAPTER])

    assert first.exit_code == 0, first.output
    assert f"{len(NORMAL) + 1} booked" in first.output and "確報" not in first.output
    assert "already imported" in again.output
    eltax = select(func.count()).select_from(Payment).where(Payment.channel == "eltax")
    assert session.scalar(eltax) == len(NORMAL) + 1


def test_a_payment_at_a_moment_is_booked_at_that_moment_in_tokyo(app, session, ward) -> None:  # type: ignore[no-untyped-def]
    paid = replace(_planted(ward)["clean"][0], paid_at=datetime(2026, 7, 10, 23, 59, 59))
    _import(app, session, write_file(app.extensions["kokin.agencies"][ADAPTER], [paid]))

    row = _feed(session)[0]
    assert (row["paid_on"], row["paid_time"]) == ("2026-07-10", "23:59:59")
    accepted = session.scalar(select(Payment.accepted_at))
    assert accepted.astimezone(TOKYO) == datetime(2026, 7, 10, 23, 59, 59, tzinfo=TOKYO)
