"""The corpus of collection-agency files: two good ones and every way a file can be wrong.

Writes `tests/data/agency/good/` (one fixed-length file, one CSV file) and
`tests/data/agency/bad/*` with `bad/MANIFEST.toml`, which names for each bad file its
adapter and the one error it must be rejected with (record, field, a piece of the
message). The files are checked in; a test makes sure they are exactly what this module
writes. Regenerate with

    python -m tests.agency_corpus

The bytes are built here by hand from the layouts as documented (CONTRACT.md: header,
trailer and end record; shared/domain/collection-agency-data.md, A: the data record, B: the CSV),
not with the simulator's writer, so that the corpus does not inherit its mistakes. The
barcode check digit is the one implementation, domain.identifiers.mod10_weight31: the
published vectors in tests/unit/test_barcode.py pin it, which a second copy here could not
do better. Each bad file is a good file with one fault.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from domain.identifiers import mod10_weight31
from tests import corpus

DATA_DIR = Path(__file__).resolve().parent / "data" / "agency"
GOOD_DIR = DATA_DIR / "good"
BAD_DIR = DATA_DIR / "bad"
MANIFEST_FILE = BAD_DIR / "MANIFEST.toml"
GOOD_FIXED_FILE = GOOD_DIR / "agency-fixed120.dat"
GOOD_CSV_FILE = GOOD_DIR / "agency-csv.csv"

FIXED = "agency-fixed120"
CSV = "agency-csv"
COMPANY_CODE = "912345"  # the agency's bill-issuer code in the barcode
CLIENT_CODE = "12345"  # the ward at the agency: in the barcode and in the fixed file's header
AGENCY_CODE = "00321"
CLIENT_NAME = "ｽﾐﾀﾞｸ"  # half-width kana: one byte each in cp932
RECORD_LENGTH = 120


# --- the barcode -----------------------------------------------------------------------

def barcode(slip: str, amount: int, *, deadline: str = "260731", reissue: int = 0, ai: str = "91") -> str:
    """AI 91 + company code + client code + 16-digit slip number + reissue + YYMMDD + 0 + amount + check."""
    body = f"{ai}{COMPANY_CODE}{CLIENT_CODE}{slip}{reissue}{deadline}0{amount:06d}"
    assert len(body) == 43 and len(slip) == 16, body
    return body + str(mod10_weight31(body))


# --- one payment's record --------------------------------------------------------------

@dataclass(frozen=True)
class Rec:
    """One data record, every field as the text the agency writes."""

    data_type: str  # 01 速報, 02 確報, 03 速報取消
    slip: str
    amount: int
    paid_on: str  # YYYYMMDD
    paid_time: str  # HHMM
    store: str
    chain: str  # 3 digits, as in the agency's list
    chain_name: str = ""  # CSV only
    remittance: str = "00000000"  # none yet (速報, 取消); the CSV writes 0
    accounting: str = "00000000"
    acquired: str = "20260702"
    user_field_1: str = ""

    @property
    def barcode(self) -> str:
        return barcode(self.slip, self.amount)


# The good fixed file, sent 2 July 2026: a 速報, a 確報, a 取消 and another 速報.
FIXED_RECORDS = [
    Rec("01", "2600000000000015", 12_300, "20260701", "1432", "0012345", "820"),
    Rec("02", "2600000000000023", 8_300, "20260623", "0915", "0104417", "780",
        remittance="20260703", accounting="20260701"),
    Rec("03", "2600000000000031", 5_100, "20260630", "1805", "0301122", "010"),
    Rec("01", "2600000000000049", 3_900, "20260701", "2359", "0399876", "030"),
]
# The good CSV file, created 9 July 2026: the 確報 of the fixed file's first 速報, the same
# slip paid a second time elsewhere (a double payment), a 取消 and a 速報 in an app.
CSV_CREATED = "20260709"
CSV_RECORDS = [
    Rec("02", "2600000000000015", 12_300, "20260701", "1432", "0012345", "820", "PayPay", remittance="20260713"),
    Rec("01", "2600000000000015", 12_300, "20260708", "1011", "0204311", "020", "ローソン",
        user_field_1="ｼﾞｭｳﾐﾝｾﾞｲ"),
    # セブン－イレブン with U+FF0D FULLWIDTH HYPHEN-MINUS, which cp932 has and strict shift_jis lacks
    Rec("03", "2600000000000057", 7_000, "20260707", "1200", "0100001", "010", "セブン\uff0dイレブン"),
    Rec("01", "2600000000000064", 4_500, "20260708", "0001", "0000001", "780", "au PAY"),
]
# What each bad file's spoilt record is a copy of: a good 速報 paid with d払い.
SPOILT = Rec("01", "2600000000000072", 4_500, "20260701", "0930", "0555555", "800", "d払い")


# --- fixed-length records (CONTRACT.md; domain document, section A) ---------------------

def pad(text: str, width: int, encoding: str = "cp932") -> bytes:
    raw = text.encode(encoding)
    if len(raw) > width:
        raise ValueError(f"{text!r} does not fit in {width} bytes")
    return raw + b" " * (width - len(raw))


def fixed_header(created_on: str = "20260702", *, client_code: str = CLIENT_CODE, name: bytes | None = None,
                 encoding: str = "cp932") -> bytes:
    """1 + creation date (8) + agency code (5) + client code (5) + client name (40) + filler (61)."""
    name = pad(CLIENT_NAME, 40, encoding) if name is None else name
    return b"1" + created_on.encode() + AGENCY_CODE.encode() + client_code.encode() + name + b" " * 61


def fixed_data(rec: Rec, *, kind: bytes = b"2", **raw: bytes) -> bytes:
    """One data record (section A); `raw` replaces a field's bytes as they are (any length)."""
    fields = {
        "data_type": rec.data_type.encode(), "paid_on": rec.paid_on.encode(), "paid_time": rec.paid_time.encode(),
        "barcode_kind": b"1", "barcode": rec.barcode.encode(), "filler": b"   ", "store": pad(rec.store, 7),
        "segment": b"01", "acquired": rec.acquired.encode(), "remittance": rec.remittance.encode(),
        "accounting": rec.accounting.encode(), "chain": rec.chain.zfill(6).encode(), "reserve": b" " * 18,
    }
    fields.update(raw)
    return kind + b"".join(fields.values())


def fixed_trailer(count: int, total: int) -> bytes:
    """8 + data record count (7) + total amount (13) + filler (99)."""
    return b"8" + f"{count:07d}{total:013d}".encode() + b" " * 99


FIXED_END = b"9" + b" " * 119


def fixed_file(*records: bytes, newline: bytes = b"\r\n") -> bytes:
    for record in records:
        assert len(record) in range(RECORD_LENGTH - 1, RECORD_LENGTH + 2), (len(record), record)
    return b"".join(record + newline for record in records)


def good_fixed() -> bytes:
    return fixed_file(fixed_header(), *(fixed_data(r) for r in FIXED_RECORDS),
                      fixed_trailer(len(FIXED_RECORDS), sum(r.amount for r in FIXED_RECORDS)), FIXED_END)


GOOD_A, GOOD_B = FIXED_RECORDS[0], FIXED_RECORDS[1]


def standard_fixed(bad_record: bytes, *, count: int = 3, total: int | None = None,
                   header: bytes | None = None) -> bytes:
    """Header (record 1), two good data records (2, 3), the bad one (4), trailer (5), end (6).

    The trailer counts and totals the data records as their writer meant them, so a
    spoilt record shows as itself and not only as a trailer mismatch.
    """
    if total is None:
        total = GOOD_A.amount + GOOD_B.amount + SPOILT.amount
    return fixed_file(fixed_header() if header is None else header, fixed_data(GOOD_A), fixed_data(GOOD_B),
                      bad_record, fixed_trailer(count, total), FIXED_END)


# --- CSV lines (section B) -------------------------------------------------------------

def csv_columns(rec: Rec, created_on: str = CSV_CREATED) -> list[str]:
    """The 13 columns, in order, as text."""
    remittance = "0" if rec.remittance == "00000000" else rec.remittance
    return [rec.data_type, rec.paid_on, rec.paid_time, "EAN" + rec.barcode, rec.user_field_1, "", "0",
            str(rec.amount), rec.chain, rec.chain_name, rec.store, remittance, created_on]


def csv_line(rec: Rec, changes: dict[int, str | bytes | None] | None = None) -> bytes:
    """One line, cp932; `changes` maps a 1-based column number to its text or raw bytes, or None to drop it."""
    columns: list[bytes | None] = [c.encode("cp932") for c in csv_columns(rec)]
    for number, value in (changes or {}).items():
        columns[number - 1] = value.encode("cp932") if isinstance(value, str) else value
    # No value holds a comma, a quote or a line end, so no quoting: the agency writes none.
    return b",".join(c for c in columns if c is not None)


def csv_file(*lines: bytes, newline: bytes = b"\r\n") -> bytes:
    return b"".join(line + newline for line in lines)


def good_csv() -> bytes:
    return csv_file(*(csv_line(r) for r in CSV_RECORDS))


CSV_A, CSV_B = CSV_RECORDS[0], CSV_RECORDS[1]


def standard_csv(bad_line: bytes) -> bytes:
    """Two good lines (1, 2) and the bad one (3)."""
    return csv_file(csv_line(CSV_A), csv_line(CSV_B), bad_line)


# --- the bad files ---------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    file: str
    adapter: str
    record: int  # 0 = the file as a whole
    field: str | None  # None = the record or file as a whole
    message: str  # a piece of the expected message
    about: str
    content: bytes


def spoilt(**changes: object) -> Rec:
    return replace(SPOILT, **changes)  # type: ignore[arg-type]


def _with_check(body43: str) -> str:
    return body43 + str(mod10_weight31(body43))


def _fixed_cases() -> list[Case]:
    good = fixed_data(SPOILT)
    code = SPOILT.barcode
    total = GOOD_A.amount + GOOD_B.amount + SPOILT.amount
    wrong_check = code[:43] + str((int(code[43]) + 1) % 10)
    ai92 = _with_check("92" + code[2:43])
    lettered = code[:20] + "O" + code[21:]  # a letter O for a zero in the slip number
    broken_name = pad("墨田区会計管理者", 39) + "室".encode("cp932")[:1]  # cut inside 室: 16 + 23 spaces + lead byte
    three = fixed_header(), fixed_data(GOOD_A), fixed_data(GOOD_B), good
    return [
        Case("fixed_record_119_bytes.dat", FIXED, 4, None, "record is 119 bytes, expected 120",
             "a data record one byte short (17 bytes of reserve)", standard_fixed(good[:-1])),
        Case("fixed_record_121_bytes.dat", FIXED, 4, None, "record is 121 bytes, expected 120",
             "a data record one byte long (19 bytes of reserve)", standard_fixed(good + b" ")),
        Case("fixed_lf_line_ends.dat", FIXED, 0, None, "line ends are LF; agency-fixed120 needs CRLF",
             "a good file with LF line ends instead of CRLF",
             fixed_file(*three, fixed_trailer(3, total), FIXED_END, newline=b"\n")),
        Case("fixed_no_final_crlf.dat", FIXED, 0, None, "the file does not end with CRLF: truncated?",
             "a good file whose last CRLF, after the end record, is missing", standard_fixed(good)[:-2]),
        Case("fixed_truncated_mid_record.dat", FIXED, 4, None, "record is 60 bytes, expected 120",
             "cut in the middle of the third data record: no CRLF at the end, no trailer, no end record",
             fixed_file(*three[:3]) + good[:60]),
        Case("fixed_utf8_encoded.dat", FIXED, 0, None, "the file is UTF-8; agency-fixed120 files are cp932",
             "the whole file in UTF-8: the client name ｽﾐﾀﾞｸ takes 15 bytes (padded to 40, so records stay 120)",
             standard_fixed(good, header=fixed_header(encoding="utf-8"))),
        Case("fixed_unknown_record_kind.dat", FIXED, 4, "record_kind", "unknown record kind '3'",
             "a data record whose kind byte is 3", standard_fixed(fixed_data(SPOILT, kind=b"3"))),
        Case("fixed_data_before_header.dat", FIXED, 2, "record_kind", "a header record after the data",
             "the first data record comes before the header",
             fixed_file(three[1], three[0], *three[2:], fixed_trailer(3, total), FIXED_END)),
        Case("fixed_two_headers.dat", FIXED, 2, "record_kind", "a second header record",
             "the header written twice", fixed_file(three[0], *three, fixed_trailer(3, total), FIXED_END)),
        Case("fixed_missing_trailer.dat", FIXED, 0, None, "the file has no trailer record",
             "header, data and end record; no trailer", fixed_file(*three, FIXED_END)),
        Case("fixed_missing_end.dat", FIXED, 0, None, "the file has no end record",
             "header, data and trailer; no end record", fixed_file(*three, fixed_trailer(3, total))),
        Case("fixed_record_after_end.dat", FIXED, 6, "record_kind", "a data record after the end",
             "a data record after the end record (two files joined?); the trailer counts the two before it",
             fixed_file(*three[:3], fixed_trailer(2, GOOD_A.amount + GOOD_B.amount), FIXED_END, good)),
        Case("fixed_trailer_count_wrong.dat", FIXED, 5, "record_count", "says 4 data records, the file has 3",
             "the trailer counts four data records; there are three", standard_fixed(good, count=4)),
        Case("fixed_trailer_total_wrong.dat", FIXED, 5, "total_amount",
             f"says {total + 1000:,} yen, the data records add up to {total:,} yen",
             "the trailer's total is 1,000 yen more than the barcodes' amounts",
             standard_fixed(good, total=total + 1000)),
        Case("fixed_barcode_wrong_check_digit.dat", FIXED, 4, "barcode",
             f"check digit is {wrong_check[43]}, expected {code[43]}", "the barcode's last digit one more",
             standard_fixed(fixed_data(SPOILT, barcode=wrong_check.encode()))),
        Case("fixed_barcode_not_ai_91.dat", FIXED, 4, "barcode", "application identifier must be 91, got 92",
             "the barcode starts 92 (its check digit worked for 92)",
             standard_fixed(fixed_data(SPOILT, barcode=ai92.encode()))),
        Case("fixed_barcode_43_digits.dat", FIXED, 4, "barcode", f"must be 44 digits, got '{code[:43]}'",
             "the barcode without its check digit, space padded to 44 bytes",
             standard_fixed(fixed_data(SPOILT, barcode=code[:43].encode() + b" "))),
        Case("fixed_barcode_with_letter.dat", FIXED, 4, "barcode", f"must be digits only, got '{lettered}'",
             "a letter O for a zero inside the slip number",
             standard_fixed(fixed_data(SPOILT, barcode=lettered.encode()))),
        Case("fixed_unknown_data_type.dat", FIXED, 4, "data_type", "unknown data type '04'",
             "data type 04, which this agency does not use", standard_fixed(fixed_data(spoilt(data_type="04")))),
        Case("fixed_payment_date_invalid.dat", FIXED, 4, "paid_on",
             "is not a date in the form YYYYMMDD, got '20260230'", "paid on 30 February",
             standard_fixed(fixed_data(spoilt(paid_on="20260230")))),
        Case("fixed_payment_time_2460.dat", FIXED, 4, "paid_time", "is not a time in the form HHMM, got '2460'",
             "paid at 24:60", standard_fixed(fixed_data(spoilt(paid_time="2460")))),
        Case("fixed_final_without_remittance_date.dat", FIXED, 4, "remittance_on",
             "a 確報 must name its planned remittance date", "a 確報 (02) whose remittance date is 00000000",
             standard_fixed(fixed_data(spoilt(data_type="02", accounting="20260702")))),
        Case("fixed_header_creation_date_invalid.dat", FIXED, 1, "created_on",
             "is not a date in the form YYYYMMDD, got '20261302'", "the header's creation date in month 13",
             standard_fixed(good, header=fixed_header("20261302"))),
        Case("fixed_empty.dat", FIXED, 0, None, "the file is empty", "zero bytes", b""),
        Case("fixed_broken_two_byte_character.dat", FIXED, 1, "client_name",
             "is not valid cp932 (a broken or split two-byte character?)",
             "the client name written in kanji and cut by bytes inside 室: its last byte is a lead byte alone",
             standard_fixed(good, header=fixed_header(name=broken_name))),
    ]


def _csv_cases() -> list[Case]:
    code = SPOILT.barcode
    wrong_check = code[:43] + str((int(code[43]) + 1) % 10)
    cut_name = "d払".encode("cp932")[:-1]  # d払い cut by bytes: the lead byte of 払 alone, then a comma
    return [
        Case("csv_12_columns.csv", CSV, 3, None, "has 12 columns, expected 13",
             "a line without user field 2", standard_csv(csv_line(SPOILT, {6: None}))),
        Case("csv_14_columns.csv", CSV, 3, None, "has 14 columns, expected 13",
             "a line with a fourteenth column", standard_csv(csv_line(SPOILT) + b",1")),
        Case("csv_barcode_without_ean.csv", CSV, 3, "barcode", f"must start with EAN, got '{code[:7]}'",
             "the 44 digits without the EAN prefix", standard_csv(csv_line(SPOILT, {4: code}))),
        Case("csv_barcode_wrong_check_digit.csv", CSV, 3, "barcode",
             f"check digit is {wrong_check[43]}, expected {code[43]}", "the barcode's last digit one more",
             standard_csv(csv_line(SPOILT, {4: "EAN" + wrong_check}))),
        Case("csv_barcode_43_digits.csv", CSV, 3, "barcode", f"must be 44 digits, got '{code[:43]}'",
             "the barcode without its check digit", standard_csv(csv_line(SPOILT, {4: "EAN" + code[:43]}))),
        Case("csv_barcode_not_ai_91.csv", CSV, 3, "barcode", "application identifier must be 91, got 90",
             "the barcode starts 90 (its check digit worked for 90)",
             standard_csv(csv_line(SPOILT, {4: "EAN" + _with_check("90" + code[2:43])}))),
        Case("csv_amount_differs_from_barcode.csv", CSV, 3, "amount", "4,600 yen differs from the barcode's 4,500 yen",
             "the amount column 100 yen more than the barcode", standard_csv(csv_line(SPOILT, {8: "4600"}))),
        Case("csv_amount_not_a_number.csv", CSV, 3, "amount", "must be a whole number, got '4500円'",
             "the amount with a yen sign", standard_csv(csv_line(SPOILT, {8: "4500円"}))),
        Case("csv_remittance_date_invalid.csv", CSV, 3, "remittance_on",
             "is not a date in the form YYYYMMDD, got '20260631'", "a 確報 remitted on 31 June",
             standard_csv(csv_line(spoilt(data_type="02", remittance="20260631")))),
        Case("csv_final_remittance_zero.csv", CSV, 3, "remittance_on", "a 確報 must name its planned remittance date",
             "a 確報 (02) with remittance date 0, as only a 速報 may have",
             standard_csv(csv_line(spoilt(data_type="02")))),
        Case("csv_unknown_data_type.csv", CSV, 3, "data_type", "unknown data type '12'",
             "data type 12 (a postal transfer at one agency), which this adapter does not map",
             standard_csv(csv_line(spoilt(data_type="12")))),
        Case("csv_payment_date_invalid.csv", CSV, 3, "paid_on", "is not a date in the form YYYYMMDD, got '20260230'",
             "paid on 30 February", standard_csv(csv_line(spoilt(paid_on="20260230")))),
        Case("csv_payment_time_2460.csv", CSV, 3, "paid_time", "is not a time in the form HHMM, got '2460'",
             "paid at 24:60", standard_csv(csv_line(spoilt(paid_time="2460")))),
        Case("csv_broken_two_byte_character.csv", CSV, 3, None,
             f"is not valid cp932 (byte 0x{cut_name[-1]:02x} at position",
             "the chain name d払い cut by bytes inside 払: its lead byte alone before the comma",
             standard_csv(csv_line(SPOILT, {10: cut_name}))),
        Case("csv_empty.csv", CSV, 0, None, "the file is empty", "zero bytes", b""),
    ]


def _cases() -> list[Case]:
    cases = _fixed_cases() + _csv_cases()
    names = [c.file for c in cases]
    assert len(names) == len(set(names)), "case files must be unique"
    return cases


CASES = _cases()


def manifest_text(cases: list[Case]) -> str:
    return corpus.manifest_text([
        "The bad collection-agency files and one error each must be rejected with. Generated by",
        "tests/agency_corpus.py (python -m tests.agency_corpus).",
        "record 0 = the file as a whole; no `field` = the error names no field.",
        "Read with make_agency_adapter(adapter, {}).read(bytes)."],
        ({"file": c.file, "adapter": c.adapter, "record": c.record, "field": c.field, "message": c.message,
          "about": c.about} for c in cases))


def expected_files() -> dict[Path, bytes]:
    """Every file this module writes, with its bytes."""
    files = {GOOD_FIXED_FILE: good_fixed(), GOOD_CSV_FILE: good_csv(),
             MANIFEST_FILE: manifest_text(CASES).encode("utf-8")}
    files.update({BAD_DIR / case.file: case.content for case in CASES})
    return files


def write() -> None:
    for path, content in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path.relative_to(DATA_DIR.parent.parent.parent)} ({len(content)} bytes)")


if __name__ == "__main__":
    write()
