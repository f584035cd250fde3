"""Each agency record is kept as received: its line, decoded from cp932, beside the fields read from it.

Issue 18, point 2: an exception's evidence shows the agency's records as the ward received them.
The lines are compared with the file's own bytes, cut at CRLF and decoded, for every kind of
record (速報, 確報, 取消), whether the record brings a new store payment (written from the
stage) or one reported before (its row updated, its line inserted beside it), in both shipped
layouts, with Japanese text in a field: a two-byte character of cp932 in the fixed layout's text
field, full-width text in the CSV's chain name and user field. The lines are rows of their own
(`agency_report_lines`, migration 0030), in the report's ward.
"""
from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from adapters.agency.simulator import Scheduled, StorePayment, files_by_day, schedule
from gateway.models import AgencyReport, AgencyReportLine, Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services import agency_new_payments
from gateway.services.agency_import import import_agency_file
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

MUNICIPALITY = "131075"
CLIENT = "13107"
SEGMENT = "済"  # two bytes in cp932: the whole of the fixed layout's customer_segment (offset 70, 2 bytes)
CHAIN_NAME = "ファミリーマート　両国店"  # full-width, with an ideographic space
USER_FIELD = "区民税（第１期）"
LAYOUTS = ["agency-fixed120", "agency-csv"]


@pytest.fixture
def slips(session, cipher):  # type: ignore[no-untyped-def]
    rows = list(itertools.islice(ward_rows(MUNICIPALITY, 2026, 10), 40))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, MUNICIPALITY)
    return session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id).limit(6)).all()


def _payment(slip: Slip, n: int) -> StorePayment:
    paid_at = datetime.combine(slip.due_date - timedelta(days=3), datetime.min.time()).replace(hour=9, minute=n)
    return StorePayment(slip.barcode, paid_at, f"00{n:05d}", "030", records=("preliminary", "final", "cancel"))


def _with_japanese(name: str, data: bytes) -> bytes:
    """The simulator's file with Japanese text in the layout's text fields of every data record."""
    lines = data.split(b"\r\n")
    if name == "agency-fixed120":
        segment = SEGMENT.encode("cp932")
        lines = [line[:70] + segment + line[72:] if line[:1] == b"2" else line for line in lines]
    else:
        def japanese(line: bytes) -> bytes:
            columns = line.decode("cp932").split(",")
            columns[4], columns[9] = USER_FIELD, CHAIN_NAME
            return ",".join(columns).encode("cp932")
        lines = [japanese(line) if line else line for line in lines]
    return b"\r\n".join(lines)


def _data_lines(name: str, data: bytes) -> list[str]:
    """The file's data records as text, cut at CRLF and decoded from cp932 (what must be kept), sorted."""
    return sorted(_in_file_order(name, data))


def _in_file_order(name: str, data: bytes) -> list[str]:
    lines = [line.decode("cp932") for line in data.split(b"\r\n") if line]
    return [line for line in lines if name == "agency-csv" or line.startswith("2")]


def _import(session, app, name: str, data: bytes, filename: str):  # type: ignore[no-untyped-def]
    return import_agency_file(session, app.extensions["kokin.agencies"][name], data, municipality_code=MUNICIPALITY,
                              filename=filename, source="test", actor="test")


def _kept(session, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(session.scalars(select(AgencyReportLine.line).where(AgencyReportLine.kind == kind)))


def _lines_by_report(session) -> dict[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    """Each report's lines by kind, checked to be in the report's own ward."""
    kept: dict[int, dict[str, str]] = {}
    for line, ward in session.execute(select(AgencyReportLine, AgencyReport.municipality_id).join(
            AgencyReport, AgencyReport.id == AgencyReportLine.agency_report_id)):
        assert line.municipality_id == ward
        kept.setdefault(line.agency_report_id, {})[line.kind] = line.line
    return kept


def _one_day(scheduled: list[Scheduled], day: date) -> list[Scheduled]:
    return [Scheduled(day, s.kind, s.payment, s.remittance_on) for s in scheduled]


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_records_line_as_received_is_kept_for_its_kind_from_files_of_each_kind(  # type: ignore[no-untyped-def]
        app, session, slips, name) -> None:
    agency = app.extensions["kokin.agencies"][name]
    scheduled = schedule([_payment(s, n) for n, s in enumerate(slips)])
    for kind in ("preliminary", "final", "cancel"):  # the 速報 books new payments; the others update their rows
        (data,) = files_by_day(agency, _one_day([s for s in scheduled if s.kind == kind], date(2027, 3, 31)),
                               client_code=CLIENT).values()
        data = _with_japanese(name, data)
        result = _import(session, app, name, data, f"{kind}.dat")
        assert result.records == len(slips) and not result.already_imported

        expected = _data_lines(name, data)
        assert len(expected) == len(slips)
        assert all((SEGMENT if name == "agency-fixed120" else CHAIN_NAME) in line for line in expected)
        assert _kept(session, kind) == expected, kind
    assert [len(kinds) for kinds in _lines_by_report(session).values()] == [3] * len(slips)


# 4: a chunk boundary inside a payment's three records; 2: a payment's records fill more than a chunk
@pytest.mark.parametrize("chunk", [2, 4, 1_000])
@pytest.mark.parametrize("name", LAYOUTS)
def test_a_file_with_all_three_records_of_new_payments_keeps_each_kinds_own_line(  # type: ignore[no-untyped-def]
        app, session, slips, monkeypatch, name, chunk) -> None:
    monkeypatch.setattr(agency_new_payments, "NEW_CHUNK", chunk)
    agency = app.extensions["kokin.agencies"][name]
    scheduled = _one_day(schedule([_payment(s, n) for n, s in enumerate(slips)]), date(2027, 3, 31))
    (data,) = files_by_day(agency, scheduled, client_code=CLIENT).values()
    data = _with_japanese(name, data)

    result = _import(session, app, name, data, "together.dat")

    assert (result.records, result.confirmed, result.cancelled) == (3 * len(slips), len(slips), len(slips))
    codes = {"preliminary": "01", "final": "02", "cancel": "03"}
    lines = _data_lines(name, data)
    kept_lines = _lines_by_report(session)
    for report in session.scalars(select(AgencyReport)):
        kept = kept_lines[report.id]
        assert kept.keys() == {"preliminary", "final", "cancel"}
        for kind, line in kept.items():
            assert line in lines, kind
            # the record of its own kind (data type), of this payment (barcode)
            data_type = line[1:3] if name == "agency-fixed120" else line[:2]
            assert data_type == codes[kind] and report.barcode in line


def test_a_payment_reported_only_by_its_preliminary_keeps_no_other_line(  # type: ignore[no-untyped-def]
        app, session, slips) -> None:
    agency = app.extensions["kokin.agencies"]["agency-fixed120"]
    scheduled = schedule([_payment(s, n) for n, s in enumerate(slips[:1])])
    (data,) = files_by_day(agency, _one_day([s for s in scheduled if s.kind == "preliminary"], date(2027, 3, 31)),
                           client_code=CLIENT).values()
    _import(session, app, "agency-fixed120", data, "one.dat")
    report = session.scalars(select(AgencyReport)).one()
    assert _lines_by_report(session)[report.id].keys() == {"preliminary"}


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_record_twice_in_a_file_or_again_in_a_later_one_keeps_the_line_that_applied_it(  # type: ignore[no-untyped-def]
        app, session, slips, name) -> None:
    agency = app.extensions["kokin.agencies"][name]
    day = date(2027, 3, 31)
    scheduled = _one_day(schedule([_payment(s, n) for n, s in enumerate(slips[:2])]), day)
    (data,) = files_by_day(agency, [s for s in scheduled if s.kind == "preliminary"], client_code=CLIENT).values()
    _import(session, app, name, data, "preliminary.dat")
    first, second = (s for s in scheduled if s.kind == "final")
    assert first.remittance_on is not None

    # The same 確報 twice in one file, the second naming another remittance date (its line differs).
    later = replace(first, remittance_on=first.remittance_on + timedelta(days=1))
    (twice,) = files_by_day(agency, [first, later], client_code=CLIENT).values()
    result = _import(session, app, name, twice, "twice.dat")
    # Then a file repeating it with yet another date, and bringing the other payment's 確報.
    again = replace(first, remittance_on=first.remittance_on + timedelta(days=2))
    (repeated,) = files_by_day(agency, [again, second], client_code=CLIENT).values()
    result_again = _import(session, app, name, repeated, "again.dat")

    assert (result.confirmed, result.repeated, result_again.confirmed, result_again.repeated) == (1, 1, 1, 1)
    kept = {report.barcode: _lines_by_report(session)[report.id] for report in session.scalars(select(AgencyReport))}
    twice_lines, repeated_lines = _in_file_order(name, twice), _in_file_order(name, repeated)
    assert len(set(twice_lines)) == 2 and repeated_lines[0] not in twice_lines
    assert kept[first.payment.barcode]["final"] in twice_lines  # one of the two that applied it, not the repeat's
    assert kept[second.payment.barcode]["final"] == repeated_lines[1]


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_record_the_file_holds_twice_updates_from_its_first_on_either_database(  # type: ignore[no-untyped-def]
        app, session, slips, name) -> None:
    """A 確報 sent twice in one file, the copies naming other remittance days: the first in the file counts."""
    agency = app.extensions["kokin.agencies"][name]
    scheduled = _one_day(schedule([_payment(s, n) for n, s in enumerate(slips)]), date(2027, 3, 31))
    (preliminary,) = files_by_day(agency, [s for s in scheduled if s.kind == "preliminary"],
                                  client_code=CLIENT).values()
    _import(session, app, name, preliminary, "preliminary.dat")
    finals = [s for s in scheduled if s.kind == "final"]
    twice = []
    for n, final in enumerate(finals):  # the earlier remittance day first for half of them, the later for the rest
        other = replace(final, remittance_on=final.remittance_on + timedelta(days=7))  # type: ignore[operator]
        twice += [final, other] if n % 2 else [other, final]
    (data,) = files_by_day(agency, twice, client_code=CLIENT).values()

    result = _import(session, app, name, data, "final-twice.dat")

    assert (result.records, result.confirmed, result.repeated) == (2 * len(finals), len(finals), len(finals))
    lines = _in_file_order(name, data)
    for report in session.scalars(select(AgencyReport)):
        first = next(n for n, s in enumerate(twice) if s.payment.barcode == report.barcode)
        assert report.remittance_on == twice[first].remittance_on
        assert _lines_by_report(session)[report.id]["final"] == lines[first]


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_new_payment_s_record_held_twice_counts_from_its_first_copy(  # type: ignore[no-untyped-def]
        app, session, slips, name) -> None:
    """The 速報 and a 確報 sent twice in the file that first reports the payment: the first 確報 counts."""
    agency = app.extensions["kokin.agencies"][name]
    scheduled = _one_day(schedule([StorePayment(s.barcode, _payment(s, n).paid_at, f"00{n:05d}", "030")
                                   for n, s in enumerate(slips)]), date(2027, 3, 31))
    records = []
    for n, record in enumerate(scheduled):
        records.append(record)
        if record.kind == "final":  # again, naming a week later: after the first copy for half, before for the rest
            other = replace(record, remittance_on=record.remittance_on + timedelta(days=7))  # type: ignore[operator]
            records[-1:] = [record, other] if n % 4 < 2 else [other, record]
    (data,) = files_by_day(agency, records, client_code=CLIENT).values()

    result = _import(session, app, name, data, "together-twice.dat")

    assert (result.records, result.booked, result.repeated) == (3 * len(slips), len(slips), len(slips))
    lines = _in_file_order(name, data)
    finals = [n for n, s in enumerate(records) if s.kind == "final"]
    for report in session.scalars(select(AgencyReport)):
        first = next(n for n in finals if records[n].payment.barcode == report.barcode)
        assert report.remittance_on == records[first].remittance_on
        assert _lines_by_report(session)[report.id]["final"] == lines[first]
