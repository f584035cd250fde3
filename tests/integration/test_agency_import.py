"""Agency files applied to the ward's slips: once, atomically, with every anomaly surfaced once."""
from __future__ import annotations

import itertools
import tomllib
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from adapters.agency import make_agency_adapter
from adapters.agency.simulator import Scheduled, StorePayment, files_by_day, schedule
from gateway.errors import AgencyFileInvalid, DepositFileRejected
from gateway.models import (
    AgencyDeposit,
    AgencyImport,
    AgencyReport,
    Event,
    Payment,
    ReceiptRecord,
    ReconException,
    Refund,
    Slip,
)
from gateway.sandbox.agency import ANOMALY_KINDS, SANDBOX_FEE, plan_store_payments, run_agency_sandbox
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services import agency_new_payments
from gateway.services.agency_checks import (
    check_agency_data,
    expected_remittances,
    import_deposits,
)
from gateway.services.agency_import import import_agency_file
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from reconciliation.balance import balance
from tests.agency_corpus import BAD_DIR
from tests.rows import by_id

MUNICIPALITY = "131075"
CLIENT = "13107"
AGENCY_TABLES = (AgencyImport, AgencyReport, AgencyDeposit, ReconException, Payment, Refund)


@pytest.fixture
def slips(session, cipher):  # type: ignore[no-untyped-def]
    """A small ward: 200 instalments imported and their slips issued; the slips with a barcode."""
    rows = list(itertools.islice(ward_rows(MUNICIPALITY, 2026, 40), 200))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, MUNICIPALITY)
    return session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id)).all()


def _state(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    state = {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in AGENCY_TABLES}
    state["paid slips"] = session.scalar(select(func.count()).select_from(Slip).where(Slip.status == "paid"))
    return state


def _paid_before_due(slip: Slip, store: str = "0001234", chain: str = "820", minute: int = 0) -> StorePayment:
    return StorePayment(slip.barcode, datetime.combine(slip.due_date - timedelta(days=3), datetime.min.time())
                        .replace(hour=10, minute=minute), store, chain)


def _import(session, app, name: str, data: bytes, filename: str = "f.dat"):  # type: ignore[no-untyped-def]
    return import_agency_file(session, app.extensions["kokin.agencies"][name], data, municipality_code=MUNICIPALITY,
                              filename=filename, source="test", actor="test")


@pytest.mark.parametrize("case", tomllib.loads((BAD_DIR / "MANIFEST.toml").read_text("utf-8"))["case"],
                         ids=lambda case: case["file"])
def test_a_bad_agency_file_is_rejected_whole_and_changes_nothing(app, session, slips, case) -> None:  # type: ignore[no-untyped-def]
    agency = make_agency_adapter(case["adapter"], {})
    good = files_by_day(agency, schedule([_paid_before_due(s) for s in slips[:3]]), client_code=CLIENT)
    _import(session, app, case["adapter"], next(iter(good.values())))
    before = _state(session)

    with pytest.raises(AgencyFileInvalid) as rejected:
        _import(session, app, case["adapter"], (BAD_DIR / case["file"]).read_bytes(), filename=case["file"])

    where = f"record {case['record']}" if case["record"] else "file"
    assert any(line.startswith(where) and case["message"] in line for line in rejected.value.details["errors"])
    assert _state(session) == before


@pytest.mark.parametrize("name", ["agency-fixed120", "agency-csv"])
def test_a_file_imported_twice_and_records_repeated_in_a_later_file_apply_once(app, session, slips, name) -> None:  # type: ignore[no-untyped-def]
    agency = app.extensions["kokin.agencies"][name]
    scheduled = schedule([_paid_before_due(s) for s in slips[:20]])
    preliminaries = [s for s in scheduled if s.kind == "preliminary"]
    first = files_by_day(agency, preliminaries[:12], client_code=CLIENT)
    for data in first.values():
        _import(session, app, name, data)
    state = _state(session)

    again = [_import(session, app, name, data) for data in first.values()]
    # A later file repeats the first twelve 速報 and brings eight new ones.
    later = files_by_day(agency, [replace_day(s, date(2027, 3, 31)) for s in preliminaries], client_code=CLIENT)
    (later_result,) = [_import(session, app, name, data, filename="later.dat") for data in later.values()]

    assert again and all(r.already_imported for r in again)
    assert later_result.repeated == 12 and later_result.booked == 8
    assert _state(session)["payments"] == state["payments"] + 8 == 20
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.applied)) == 20
    assert session.scalar(select(func.count()).select_from(ReconException)) == 0
    finals = files_by_day(agency, [s for s in scheduled if s.kind == "final"], client_code=CLIENT)
    confirmed = sum(_import(session, app, name, data).confirmed for data in finals.values())
    assert confirmed == 20
    confirmed_reports = select(func.count()).select_from(AgencyReport).where(
        AgencyReport.final_import_id.is_not(None), AgencyReport.remittance_on.is_not(None))
    assert session.scalar(confirmed_reports) == 20


@pytest.mark.parametrize("chunk", [2, 3, 1_000])
def test_new_payments_read_in_small_chunks_book_each_payment_once_with_all_its_records(  # type: ignore[no-untyped-def]
        app, session, slips, monkeypatch, chunk) -> None:
    # One file carries the 速報 and the 確報 of each payment: a chunk boundary may fall between them.
    monkeypatch.setattr(agency_new_payments, "NEW_CHUNK", chunk)
    agency = app.extensions["kokin.agencies"]["agency-fixed120"]
    payments = [_paid_before_due(s, minute=n % 3) for n, s in enumerate(slips[:20])]
    together = [replace_day(s, date(2027, 3, 31)) for s in schedule(payments)]
    (data,) = files_by_day(agency, together, client_code=CLIENT).values()

    result = _import(session, app, "agency-fixed120", data)

    assert (result.records, result.booked, result.confirmed, result.repeated) == (40, 20, 20, 0)
    assert result.exceptions == Counter()
    assert session.scalar(select(func.count()).select_from(AgencyReport).where(
        AgencyReport.preliminary_import_id == result.import_id, AgencyReport.final_import_id == result.import_id,
        AgencyReport.payment_id.is_not(None), AgencyReport.remittance_on.is_not(None))) == 20
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.applied)) == 20
    assert session.scalar(select(func.count()).select_from(Slip).where(Slip.status == "paid")) == 20


def replace_day(scheduled: Scheduled, day: date) -> Scheduled:
    return replace(scheduled, sent_on=day)


@pytest.mark.parametrize("name", ["agency-fixed120", "agency-csv"])
def test_every_planted_anomaly_is_surfaced_exactly_once_and_reruns_add_nothing(app, session, slips, name) -> None:  # type: ignore[no-untyped-def]
    agency = app.extensions["kokin.agencies"][name]
    plan = plan_store_payments(session, MUNICIPALITY, share=0.4, anomalies={kind: 2 for kind in ANOMALY_KINDS})

    outcome = run_agency_sandbox(session, agency, MUNICIPALITY, plan)

    found = Counter(dict(session.execute(select(ReconException.kind, func.count())
                                         .group_by(ReconException.kind)).all()))
    assert found == plan.planted == Counter({kind: 2 for kind in ANOMALY_KINDS})
    assert outcome.exceptions == found
    later = outcome.last_file_on + timedelta(days=60)
    assert check_agency_data(session, MUNICIPALITY, later, fees={name: SANDBOX_FEE}) == Counter()
    for data in files_by_day(agency, schedule(plan.payments), client_code=CLIENT).values():
        assert _import(session, app, name, data).already_imported
    assert Counter(dict(session.execute(select(ReconException.kind, func.count())
                                        .group_by(ReconException.kind)).all())) == found
    # Nothing lost: every store payment of a known slip is a payment; each double payment goes to the core
    # system as an overpayment (no refund through the agency), and the feed accounts for every yen.
    reports = session.scalar(select(func.count()).select_from(AgencyReport))
    unknown = found["unknown_slip"]
    assert session.scalar(select(func.count()).select_from(AgencyReport)
                          .where(AgencyReport.payment_id.is_not(None))) == reports - unknown
    assert session.scalar(select(func.count()).select_from(Refund)) == 0
    assert session.scalar(select(func.count()).select_from(ReceiptRecord)
                          .where(ReceiptRecord.reason == "double_payment")) == found["double_payment"]
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.overpaid)) == found["double_payment"]
    assert balance(session, MUNICIPALITY).difference == 0 and not balance(session, MUNICIPALITY).differences


def test_a_double_payment_by_app_of_a_slip_paid_by_card_is_kept_for_the_core_system(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    from gateway.services.outcomes import settle_attempt
    from gateway.services.payments import start_payment
    slip = slips[0]
    adapters = app.extensions["kokin.adapters"]
    started = start_payment(session, {"card": adapters["stripe"]}, municipality_id=slip.municipality_id,
                            slip_number=slip.number, channel="card", return_url="https://ward.test/r",
                            cancel_url="https://ward.test/c", fee_schedules={}, actor="resident")
    adapters["stripe"].simulator.simulate_payment(started.attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", adapters["stripe"].fetch_status(started.attempt.provider_ref), actor="test")

    agency = app.extensions["kokin.agencies"]["agency-csv"]
    (data,) = files_by_day(agency, [s for s in schedule([_paid_before_due(slip)]) if s.kind == "preliminary"],
                           client_code=CLIENT).values()
    result = _import(session, app, "agency-csv", data)

    assert result.exceptions == Counter(double_payment=1)
    session.expire_all()
    payments = session.scalars(select(Payment).where(Payment.slip_id == slip.id).order_by(Payment.id)).all()
    assert [(p.channel, p.applied, p.overpaid) for p in payments] == [("card", True, False), ("agency", False, True)]
    assert session.scalar(select(Refund).where(Refund.payment_id == payments[1].id)) is None  # 充当 or 還付 there
    record = session.scalar(select(ReceiptRecord).where(ReceiptRecord.payment_id == payments[1].id))
    assert (record.kind, record.reason, record.amount, record.channel) == ("overpayment", "double_payment",
                                                                           slip.amount, "agency")
    event = session.scalar(select(Event).where(Event.kind == "agency.imported").order_by(Event.id.desc()))
    assert event is not None and event.data["exceptions"] == {"double_payment": 1}


def test_a_store_payment_is_booked_at_the_store_time_with_its_app(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    slip = slips[1]
    agency = app.extensions["kokin.agencies"]["agency-fixed120"]
    payment = _paid_before_due(slip, chain="780", minute=42)
    (data,) = files_by_day(agency, [s for s in schedule([payment]) if s.kind == "preliminary"],
                           client_code=CLIENT).values()

    assert _import(session, app, "agency-fixed120", data).booked == 1

    report = session.scalar(select(AgencyReport))
    session.expire_all()
    booked = by_id(session, Payment, report.payment_id)
    assert report.channel == "au PAY" and report.remittance_on is None
    assert booked.accepted_at == payment.paid_at.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    assert (booked.channel, booked.amount, booked.applied, booked.status) == ("agency", slip.amount, True, "succeeded")
    assert by_id(session, Slip, slip.id).status == "paid"


def test_a_file_for_another_client_is_refused(app, session, slips) -> None:  # type: ignore[no-untyped-def]
    agency = app.extensions["kokin.agencies"]["agency-fixed120"]
    (data,) = files_by_day(agency, schedule([_paid_before_due(slips[0])])[:1], client_code="99999").values()
    before = _state(session)
    with pytest.raises(AgencyFileInvalid, match="1 error"):
        _import(session, app, "agency-fixed120", data)
    assert _state(session) == before


DEPOSITS_HEADER = "adapter,deposited_on,amount,reference\n"


def test_a_statement_file_of_deposits_is_recorded_once_and_compared_with_the_expected_remittances(  # type: ignore[no-untyped-def]
        app, session, slips) -> None:
    agency = app.extensions["kokin.agencies"]["agency-csv"]
    for data in files_by_day(agency, schedule([_paid_before_due(s) for s in slips[:6]]), client_code=CLIENT).values():
        _import(session, app, "agency-csv", data)
    expected = [r for r in expected_remittances(session, MUNICIPALITY) if r.expected]
    lines = [f"agency-csv,{r.remittance_on.isoformat()},{r.expected - (500 if i == 0 else 0)},STM-{i:04d}"
             for i, r in enumerate(expected)]
    statement = (DEPOSITS_HEADER + "\n".join(lines) + "\n").encode()
    agencies = app.extensions["kokin.agencies"]

    assert import_deposits(session, MUNICIPALITY, statement, agencies=agencies, entered_by="clerk") == (len(lines), 0)
    assert import_deposits(session, MUNICIPALITY, statement, agencies=agencies, entered_by="clerk") == (0, len(lines))

    differences = [r.difference for r in expected_remittances(session, MUNICIPALITY) if r.expected]
    assert differences == [-500] + [0] * (len(lines) - 1)
    raised = check_agency_data(session, MUNICIPALITY, expected[-1].remittance_on + timedelta(days=1))
    assert raised == Counter(remittance_mismatch=1)


@pytest.mark.parametrize(("line", "where"), [
    ("agency-csv,2026-07-31,0,STM-1", "line 2, field amount"),
    ("agency-csv,2026-02-30,1000,STM-1", "line 2, field deposited_on"),
    ("no-such-agency,2026-07-31,1000,STM-1", "line 2, field adapter"),
    ("agency-csv,2026-07-31,1000", "line 2: has 3 columns"),
])
def test_a_bad_statement_line_rejects_the_whole_deposit_file(app, session, line, where) -> None:  # type: ignore[no-untyped-def]
    data = (DEPOSITS_HEADER + line + "\nagency-csv,2026-07-31,1000,STM-0\n").encode()  # the bad line is line 2
    with pytest.raises(DepositFileRejected) as rejected:
        import_deposits(session, MUNICIPALITY, data, agencies=app.extensions["kokin.agencies"], entered_by="clerk")
    assert any(e.startswith(where) for e in rejected.value.details["errors"]), rejected.value.details
    assert session.scalar(select(func.count()).select_from(AgencyDeposit)) == 0


def test_a_store_payment_with_a_reissued_slips_old_sheet_pays_the_instalment_and_its_reissue(  # type: ignore[no-untyped-def]
        app, session, slips) -> None:
    from gateway.services.slips import reissue_slip

    old = slips[0]
    reissued = reissue_slip(session, old.municipality_id, old.number, reason="lost", actor="clerk")
    agency = app.extensions["kokin.agencies"]["agency-fixed120"]
    files = files_by_day(agency, schedule([_paid_before_due(old)]), client_code=CLIENT)
    for day in sorted(files):
        _import(session, app, "agency-fixed120", files[day], filename=f"{day}.dat")

    payment = session.scalars(select(Payment).where(Payment.assessment_id == old.assessment_id)).one()
    assert payment.applied and not payment.overpaid and payment.slip_id == old.id
    assert dict(session.execute(select(Slip.reissue, Slip.status).where(Slip.number == old.number)).all()) == {
        old.reissue: "void", reissued.reissue: "paid"}
    assert session.scalars(select(ReconException.kind)).all() == ["payment_on_void_slip"]


def test_an_instalment_amended_while_the_import_runs_is_decided_as_it_stands_after_its_lock(  # type: ignore[no-untyped-def]
        app, session, database, slips, monkeypatch) -> None:
    from sqlalchemy import update

    from gateway.models import Assessment
    from tests.conftest import BACKEND

    if BACKEND != "postgresql":
        pytest.skip("SQLite's import holds the write lock from its start: nothing can be amended meanwhile")
    paid = slips[0]
    lock_and_read = agency_new_payments._lock_and_read_booked

    def amended_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        # The core system's amendment commits after the new payments' stream has started.
        with database.engine.begin() as other:
            other.execute(update(Assessment).where(Assessment.id == paid.assessment_id)
                          .values(amount=Assessment.amount + 1_000))
        monkeypatch.setattr(agency_new_payments, "_lock_and_read_booked", lock_and_read)
        return lock_and_read(*args, **kwargs)

    monkeypatch.setattr(agency_new_payments, "_lock_and_read_booked", amended_first)
    agency = app.extensions["kokin.agencies"]["agency-fixed120"]
    files = files_by_day(agency, schedule([_paid_before_due(paid)]), client_code=CLIENT)
    _import(session, app, "agency-fixed120", files[min(files)])

    payment = session.scalars(select(Payment).where(Payment.assessment_id == paid.assessment_id)).one()
    assert not payment.applied and not payment.overpaid  # kept: the instalment now asks 1,000 yen more
    assert session.scalar(select(Slip.status).where(Slip.id == paid.id)) == "issued"
    assert session.scalars(select(ReconException.kind)).all() == ["amount_mismatch"]
