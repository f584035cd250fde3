"""Collection-agency files: the good ones read back as written, every bad one is refused whole.

The files live in tests/data/agency/ (see tests/agency_corpus.py, which builds them by hand
from the documented layouts). Each bad file is a good file with one fault; MANIFEST.toml
names the record, field and message it must be rejected with.
"""
from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import date, datetime, time

import pytest
import requests
import responses
from responses import matchers

from adapters.agency import AgencyFileRejected, AgencyReport, _pieces, make_agency_adapter
from adapters.agency import simulator as sim
from adapters.base import RetryableError
from domain.identifiers import mod10_weight31
from tests.agency_corpus import (
    BAD_DIR,
    CLIENT_CODE,
    COMPANY_CODE,
    CSV,
    CSV_RECORDS,
    FIXED,
    FIXED_END,
    FIXED_RECORDS,
    GOOD_A,
    GOOD_B,
    GOOD_CSV_FILE,
    GOOD_DIR,
    GOOD_FIXED_FILE,
    MANIFEST_FILE,
    SPOILT,
    barcode,
    csv_line,
    expected_files,
    fixed_data,
    fixed_file,
    fixed_header,
    fixed_trailer,
    standard_csv,
    standard_fixed,
)

MANIFEST: list[dict] = tomllib.loads(MANIFEST_FILE.read_text("utf-8"))["case"]

def _describe(errors: list) -> str:  # type: ignore[type-arg]
    return "\n".join(f"  {e}" for e in errors)


def _rejected(adapter: str, data: bytes, **options: object) -> list:  # type: ignore[type-arg]
    with pytest.raises(AgencyFileRejected) as caught:
        make_agency_adapter(adapter, options).read(data)
    return caught.value.errors


# --- the corpus itself ------------------------------------------------------------------

def test_the_checked_in_corpus_is_exactly_what_the_generator_writes() -> None:
    expected = expected_files()
    for path, content in expected.items():
        assert path.is_file(), f"{path} is missing: run python -m tests.agency_corpus"
        assert path.read_bytes() == content, f"{path.name} differs from what tests/agency_corpus.py writes"
    for folder in (BAD_DIR, GOOD_DIR):
        on_disk = {p for p in folder.iterdir() if p.is_file()}
        written = {p for p in expected if p.parent == folder}
        assert on_disk == written, f"files in {folder.name}/ that the generator does not write"


def test_the_corpus_has_at_least_24_bad_files_covering_both_layouts() -> None:
    adapters = [case["adapter"] for case in MANIFEST]
    assert len(MANIFEST) >= 24
    assert adapters.count(FIXED) >= 12 and adapters.count(CSV) >= 12
    assert set(adapters) == {FIXED, CSV}


def test_corpus_barcodes_put_each_field_where_the_guideline_puts_it() -> None:
    digits = barcode("2600000000000015", 12_300, deadline="260731", reissue=1)
    assert len(digits) == 44 and digits.isdigit()
    assert digits[0:2] == "91"
    assert digits[2:8] == COMPANY_CODE
    assert digits[8:13] == CLIENT_CODE
    assert digits[13:29] == "2600000000000015"
    assert digits[29] == "1"
    assert digits[30:36] == "260731"
    assert digits[36] == "0"  # stamp flag: never for public funds
    assert digits[37:43] == "012300"
    assert int(digits[43]) == mod10_weight31(digits[:43])


def test_every_record_of_the_good_fixed_file_is_120_bytes_and_ends_in_crlf() -> None:
    data = GOOD_FIXED_FILE.read_bytes()
    assert data.endswith(b"\r\n")
    records = data.split(b"\r\n")[:-1]
    assert [len(r) for r in records] == [120] * len(records)
    assert [r[:1] for r in records] == [b"1", b"2", b"2", b"2", b"2", b"8", b"9"]


@pytest.mark.parametrize("adapter", [FIXED, CSV])
def test_the_records_around_each_fault_read_without_error(adapter: str) -> None:
    """Without its fault a bad file reads, so the error each must raise is its fault's."""
    data = standard_fixed(fixed_data(SPOILT)) if adapter == FIXED else standard_csv(csv_line(SPOILT))
    read = make_agency_adapter(adapter, {"client_code": CLIENT_CODE} if adapter == FIXED else {}).read(data)
    assert [r.amount for r in read.reports][-1] == SPOILT.amount
    assert len(read.reports) == 3


# --- every bad file ---------------------------------------------------------------------

@pytest.mark.parametrize("case", MANIFEST, ids=[case["file"] for case in MANIFEST])
def test_bad_file_is_rejected_naming_its_record_and_field(case: dict) -> None:
    errors = _rejected(case["adapter"], (BAD_DIR / case["file"]).read_bytes())
    field = case.get("field")
    found = [e for e in errors if e.line == case["record"] and e.field == field and case["message"] in e.message]
    assert found, (f"expected record {case['record']}, field {field}, message containing {case['message']!r}; "
                   f"got:\n{_describe(errors)}")
    assert all(e.unit == "record" for e in errors)


def test_a_rejection_says_record_and_field_in_words() -> None:
    errors = _rejected(FIXED, (BAD_DIR / "fixed_payment_time_2460.dat").read_bytes())
    assert "record 4, field paid_time: is not a time in the form HHMM, got '2460'" in [str(e) for e in errors]


# --- the good files ---------------------------------------------------------------------

def test_the_good_fixed_file_reads_back_with_its_kinds_amounts_dates_and_channels() -> None:
    read = make_agency_adapter(FIXED, {}).read(GOOD_FIXED_FILE.read_bytes())
    assert (read.adapter, read.created_on, read.agency_code, read.client_code) == (
        FIXED, date(2026, 7, 2), "00321", "12345")
    got = [(r.record, r.kind, r.amount, r.paid_on, r.paid_time, r.store_code, r.chain_code, r.channel,
            r.remittance_on, r.accounting_on) for r in read.reports]
    assert got == [
        (2, "preliminary", 12_300, date(2026, 7, 1), time(14, 32), "0012345", "820", "PayPay", None, None),
        (3, "final", 8_300, date(2026, 6, 23), time(9, 15), "0104417", "780", "au PAY",
         date(2026, 7, 3), date(2026, 7, 1)),
        (4, "cancel", 5_100, date(2026, 6, 30), time(18, 5), "0301122", "010", "Seven-Eleven", None, None),
        (5, "preliminary", 3_900, date(2026, 7, 1), time(23, 59), "0399876", "030", "FamilyMart", None, None),
    ]
    assert [r.barcode for r in read.reports] == [r.barcode for r in FIXED_RECORDS]
    assert read.total_amount == 29_600


def test_the_good_csv_file_reads_back_with_its_kinds_amounts_dates_and_channels() -> None:
    read = make_agency_adapter(CSV, {}).read(GOOD_CSV_FILE.read_bytes())
    assert (read.created_on, read.agency_code, read.client_code) == (date(2026, 7, 9), None, None)
    got = [(r.record, r.kind, r.amount, r.paid_on, r.paid_time, r.store_code, r.chain_code, r.channel,
            r.remittance_on) for r in read.reports]
    assert got == [
        (1, "final", 12_300, date(2026, 7, 1), time(14, 32), "0012345", "820", "PayPay", date(2026, 7, 13)),
        (2, "preliminary", 12_300, date(2026, 7, 8), time(10, 11), "0204311", "020", "Lawson", None),
        (3, "cancel", 7_000, date(2026, 7, 7), time(12, 0), "0100001", "010", "Seven-Eleven", None),
        (4, "preliminary", 4_500, date(2026, 7, 8), time(0, 1), "0000001", "780", "au PAY", None),
    ]
    assert [r.barcode for r in read.reports] == [r.barcode for r in CSV_RECORDS]
    assert read.total_amount == 36_100


def test_the_good_csv_file_holds_a_character_that_cp932_and_strict_shift_jis_read_differently() -> None:
    """セブン－イレブン's 0x817C is U+FF0D in cp932 but U+2212 in strict shift_jis (which cannot write U+FF0D)."""
    data = GOOD_CSV_FILE.read_bytes()
    assert "セブン\uff0dイレブン" in data.decode("cp932")
    assert "セブン\u2212イレブン" in data.decode("shift_jis")
    with pytest.raises(UnicodeEncodeError):
        "\uff0d".encode("shift_jis")


# --- the same store payment -------------------------------------------------------------

@pytest.mark.parametrize(("adapter", "path"), [(FIXED, GOOD_FIXED_FILE), (CSV, GOOD_CSV_FILE)])
def test_each_report_keeps_its_record_as_received_decoded_from_cp932(adapter: str, path: object) -> None:
    data = path.read_bytes()  # type: ignore[attr-defined]
    lines = [line.decode("cp932") for line in data.split(b"\r\n") if line]
    data_lines = lines if adapter == CSV else [line for line in lines if line.startswith("2")]

    agency_file = make_agency_adapter(adapter, {}).read(data)

    kept = [agency_file.raw_line(r) for r in agency_file.reports]
    assert kept == data_lines
    if adapter == CSV:  # ローソン, セブン－イレブン: the full-width text as the file has it
        assert "ローソン" in kept[1] and "セブン\uff0dイレブン" in kept[2]


def test_a_record_with_a_two_byte_character_and_a_nul_in_its_filler_is_kept_as_text() -> None:
    """A NUL where the layout reads nothing is valid; it is kept as ␀, which a database's text can hold."""
    record = fixed_data(GOOD_A, segment="済".encode("cp932"), reserve=b"\0" + b" " * 17)
    data = fixed_file(fixed_header(), record, fixed_trailer(1, GOOD_A.amount), FIXED_END)

    agency_file = make_agency_adapter(FIXED, {}).read(data)

    (line,) = [agency_file.raw_line(r) for r in agency_file.reports]
    assert line == record.decode("cp932").replace("\0", "\u2400")
    assert len(line) == 119 and "済" in line


def test_a_fixed_file_read_in_pieces_gives_each_record_its_own_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("adapters.agency.PARALLEL_MIN_RECORDS", 1)
    monkeypatch.setattr("adapters.agency.threading.active_count", lambda: 1)  # as on the command line
    records = [fixed_data(replace(GOOD_A, paid_time=f"{n // 60:02d}{n % 60:02d}")) for n in range(600)]
    data = fixed_file(fixed_header(), *records, fixed_trailer(len(records), GOOD_A.amount * len(records)), FIXED_END)
    agency_file = make_agency_adapter(FIXED, {}).read(data, workers=3)

    assert [agency_file.raw_line(r) for r in agency_file.reports] == [r.decode("cp932") for r in records]


def test_a_preliminary_and_its_final_report_share_a_match_key_across_layouts() -> None:
    preliminary = make_agency_adapter(FIXED, {}).read(GOOD_FIXED_FILE.read_bytes()).reports[0]
    final = make_agency_adapter(CSV, {}).read(GOOD_CSV_FILE.read_bytes()).reports[0]
    assert (preliminary.kind, final.kind) == ("preliminary", "final")
    assert preliminary.match_key == final.match_key


def test_the_same_slip_paid_again_elsewhere_has_another_match_key() -> None:
    first, again = make_agency_adapter(CSV, {}).read(GOOD_CSV_FILE.read_bytes()).reports[:2]
    assert first.barcode == again.barcode
    assert first.match_key != again.match_key


@pytest.mark.parametrize("change", [{"store_code": "0012346"}, {"paid_time": time(14, 33)},
                                    {"paid_on": date(2026, 7, 2)}], ids=["store", "time", "date"])
def test_another_store_or_time_gives_another_match_key(change: dict) -> None:
    report = make_agency_adapter(FIXED, {}).read(GOOD_FIXED_FILE.read_bytes()).reports[0]
    assert isinstance(report, AgencyReport)
    assert report._replace(**change).match_key != report.match_key
    assert report._replace(kind="final", remittance_on=date(2026, 7, 13)).match_key == report.match_key


# --- pulling over HTTP ------------------------------------------------------------------

PULL_URL = "https://agency.example.jp/api/download"
PULL_OPTIONS = {"pull_url": PULL_URL, "company_id": "C000123", "password": "system-pass"}


@responses.activate
def test_pull_posts_the_company_id_and_password_and_returns_the_file() -> None:
    body = GOOD_CSV_FILE.read_bytes()
    responses.add(responses.POST, PULL_URL, body=body, status=200, match=[
        matchers.urlencoded_params_matcher({"company_id": "C000123", "password": "system-pass"})])
    adapter = make_agency_adapter(CSV, PULL_OPTIONS)
    assert adapter.pull() == body
    assert len(adapter.read(adapter.pull()).reports) == 4
    assert len(responses.calls) == 2


@responses.activate
def test_pull_refused_credentials_is_a_value_error_for_a_person_to_fix() -> None:
    responses.add(responses.POST, PULL_URL, status=401)
    with pytest.raises(ValueError, match="refused the company id or password") as caught:
        make_agency_adapter(CSV, PULL_OPTIONS).pull()
    assert not isinstance(caught.value, RetryableError)


@responses.activate
@pytest.mark.parametrize("answer", [{"status": 503}, {"body": requests.ConnectionError("connection refused")}],
                         ids=["503", "connection error"])
def test_pull_when_the_agency_is_down_may_be_retried(answer: dict) -> None:
    responses.add(responses.POST, PULL_URL, **answer)
    with pytest.raises(RetryableError):
        make_agency_adapter(CSV, PULL_OPTIONS).pull()


@pytest.mark.parametrize("missing", sorted(PULL_OPTIONS))
def test_pull_without_its_configuration_is_a_value_error(missing: str) -> None:
    options = {k: v for k, v in PULL_OPTIONS.items() if k != missing}
    with responses.RequestsMock():  # nothing may be sent
        with pytest.raises(ValueError, match="pulling needs pull_url, company_id and password"):
            make_agency_adapter(CSV, options).pull()


# --- the ward's own files only ----------------------------------------------------------

def _file_for_client(client_code: str) -> bytes:
    total = GOOD_A.amount + GOOD_B.amount
    return fixed_file(fixed_header(client_code=client_code), fixed_data(GOOD_A), fixed_data(GOOD_B),
                      fixed_trailer(2, total), FIXED_END)


def test_a_file_for_another_client_is_rejected_naming_the_client_code() -> None:
    errors = _rejected(FIXED, _file_for_client("54321"), client_code=CLIENT_CODE)
    assert [(e.line, e.field) for e in errors] == [(1, "client_code")]
    assert "the file is for client 54321, this ward is 12345" in errors[0].message


def test_a_file_for_this_client_is_read() -> None:
    read = make_agency_adapter(FIXED, {"client_code": CLIENT_CODE}).read(_file_for_client(CLIENT_CODE))
    assert read.client_code == CLIENT_CODE and len(read.reports) == 2


# --- the simulator's files read back ----------------------------------------------------

def _payment(slip: str, amount: int, paid_at: datetime, store: str, chain: str, *records: str) -> sim.StorePayment:
    return sim.StorePayment(barcode(slip, amount, deadline="270131"), paid_at, store, chain,
                            tuple(records))  # type: ignore[arg-type]


PAYMENTS = [
    _payment("2600000000000015", 12_300, datetime(2026, 7, 1, 14, 32), "0012345", "820", "preliminary", "final"),
    _payment("2600000000000023", 8_300, datetime(2026, 7, 3, 23, 59), "0104417", "780", "preliminary", "cancel"),
    _payment("2600000000000031", 5_100, datetime(2026, 7, 6, 9, 0), "0301122", "010", "final"),
    _payment("2600000000000049", 3_900, datetime(2026, 12, 28, 10, 0), "0399876", "030", "preliminary", "final"),
]


def _fields(report: AgencyReport) -> tuple:  # type: ignore[type-arg]
    return (report.kind, report.barcode, report.amount, report.paid_on, report.paid_time, report.store_code,
            report.chain_code, report.remittance_on)


def _read_back(adapter_name: str, scheduled: list[sim.Scheduled]) -> dict[date, list[tuple]]:  # type: ignore[type-arg]
    adapter = make_agency_adapter(adapter_name, {"client_code": CLIENT_CODE})
    out = {}
    for day, data in sim.files_by_day(adapter, scheduled).items():
        read = adapter.read(data)
        assert read.created_on == day
        out[day] = [_fields(r) for r in read.reports]
    return out


def test_simulated_files_read_back_as_scheduled_in_both_layouts() -> None:
    scheduled = sim.schedule(PAYMENTS, seed=7)
    expected: dict[date, list[tuple]] = {}  # type: ignore[type-arg]
    for s in scheduled:
        p = s.payment
        expected.setdefault(s.sent_on, []).append((s.kind, p.barcode, p.amount, p.paid_at.date(), p.paid_at.time(),
                                                   p.store_code, p.chain_code, s.remittance_on))
    fixed, csv = _read_back(FIXED, scheduled), _read_back(CSV, scheduled)
    assert fixed == expected
    assert csv == expected
    assert sum(len(v) for v in expected.values()) == 7


def test_a_payment_on_28_december_is_reported_after_the_new_year_closure_and_remitted_in_january() -> None:
    scheduled = sim.schedule([PAYMENTS[3]], seed=7)
    files = _read_back(FIXED, scheduled)
    assert not [day for day in files if date(2026, 12, 29) <= day <= date(2027, 1, 3)]
    preliminary_day = next(day for day, reports in files.items() for r in reports if r[0] == "preliminary")
    assert preliminary_day >= date(2027, 1, 4)
    (remitted,) = [r[7] for reports in files.values() for r in reports if r[0] == "final"]
    assert (remitted.year, remitted.month) == (2027, 1)
    assert remitted > date(2026, 12, 28)


# --- a large file read by several processes ----------------------------------------------

def _outcome(data: bytes, workers: int) -> object:
    try:
        return make_agency_adapter(FIXED, {"client_code": CLIENT_CODE}).read(data, workers=workers)
    except AgencyFileRejected as exc:
        return [str(e) for e in exc.errors]


FIXED_CASES = [case["file"] for case in MANIFEST if case["adapter"] == FIXED]


@pytest.mark.parametrize("name", ["good", *FIXED_CASES])
def test_a_file_read_in_pieces_by_several_processes_reads_as_in_one(name: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every fixed corpus file, cut into pieces as a large file would be: the same reports, or the same errors."""
    data = GOOD_FIXED_FILE.read_bytes() if name == "good" else (BAD_DIR / name).read_bytes()
    alone = _outcome(data, workers=1)
    monkeypatch.setattr("adapters.agency.PARALLEL_MIN_RECORDS", 1)  # these files are small: cut them anyway
    monkeypatch.setattr("adapters.agency.threading.active_count", lambda: 1)  # as on the command line
    if data.count(b"\r\n") >= 3:  # a file of two records or fewer stays whole
        assert len(_pieces(make_agency_adapter(FIXED, {}).layout, data, 3)) > 1

    assert _outcome(data, workers=3) == alone


def test_a_file_with_too_many_errors_names_the_same_errors_read_in_pieces(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    records = (BAD_DIR / "fixed_payment_time_2460.dat").read_bytes().split(b"\r\n")
    bad = records[3]  # record 4: paid_time 2460
    data = b"\r\n".join([records[0], *[bad] * 1_000, *records[-3:]])
    alone = _outcome(data, workers=1)
    monkeypatch.setattr("adapters.agency.PARALLEL_MIN_RECORDS", 1)
    monkeypatch.setattr("adapters.agency.threading.active_count", lambda: 1)

    in_pieces = _outcome(data, workers=4)

    assert isinstance(alone, list) and len(alone) == 201 and "stopped reading" in alone[0]
    assert in_pieces == alone
