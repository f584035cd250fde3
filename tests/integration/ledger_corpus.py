"""The corpus of bad ledger files: every way a core-system file can be wrong.

Writes `tests/data/ledger/baseline.csv` (the ledger the bad files are tried against) and
`tests/data/ledger/bad/*` with `bad/MANIFEST.toml`, which names for each file its layout
and one error the import must report (line, field, a piece of the message). The files are
checked in; a test makes sure they are exactly what this module writes. Regenerate with

    python -m tests.integration.ledger_corpus

The bytes are built here by hand from the layouts as documented (CONTRACT.md and the
layout tables), not with the gateway's own writer, so that the corpus does not inherit
its mistakes. Every bad file, where its shape allows, also carries an amendment of a
known assessment and a new good assessment: if anything of it were applied, the
amendment would show.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests import corpus

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "ledger"
BAD_DIR = DATA_DIR / "bad"
BASELINE_FILE = DATA_DIR / "baseline.csv"
MANIFEST_FILE = BAD_DIR / "MANIFEST.toml"

CSV = "kokin-csv"
FIXED = "kokin-fixed"
HEADER = "municipality_code,assessment_id,fund_code,fiscal_year,installment,payer_ref,payer_name,amount,due_date"
COLUMNS = HEADER.split(",")
MUNICIPALITY = "131075"  # Sumida ward, the embedded default

Row = dict[str, str]  # the CSV text of each column


def _row(assessment_id: str, fund: str, installment: int, payer: int, name: str, amount: int, due: str,
         fiscal_year: int = 2026) -> Row:
    return dict(municipality_code=MUNICIPALITY, assessment_id=assessment_id, fund_code=fund,
                fiscal_year=str(fiscal_year), installment=str(installment), payer_ref=f"{payer:010d}",
                payer_name=name, amount=str(amount), due_date=due)


# The ledger before any bad file is tried: resident tax in two instalments, NHI, care.
BASELINE: list[Row] = [
    _row("01-2026-0000000001", "01", 1, 1, "佐藤　太郎", 12_000, "2026-06-30"),
    _row("01-2026-0000000001", "01", 2, 1, "佐藤　太郎", 11_000, "2026-08-31"),
    _row("11-2026-0000000002", "11", 1, 2, "鈴木　花子", 8_300, "2026-06-30"),
    _row("12-2026-0000000003", "12", 1, 3, "高橋　一郎", 5_100, "2026-07-31"),
]
AMENDED = dict(BASELINE[0], amount="15000")  # line 2 of every bad file: would void a slip
NEW = _row("02-2026-0000000004", "02", 1, 4, "田中　美咲", 3_900, "2026-06-01")  # line 3: would be created
GOOD = _row("01-2026-0000000005", "01", 1, 5, "伊藤　陽菜", 7_000, "2026-06-30")  # what line 4 is a spoilt copy of


# --- building files --------------------------------------------------------------------

def csv_line(row: Row, *, drop: str | None = None, extra: Iterable[str] = ()) -> str:
    values = [row[c] for c in COLUMNS if c != drop] + list(extra)
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def csv_file(*lines: str, encoding: str = "utf-8", newline: str = "\n") -> bytes:
    return "".join(line + newline for line in lines).encode(encoding)


def standard_csv(bad_line: str, *, encoding: str = "utf-8") -> bytes:
    """Header, an amendment (line 2), a new assessment (line 3) and the bad line (line 4)."""
    return csv_file(HEADER, csv_line(AMENDED), csv_line(NEW), bad_line, encoding=encoding)


DATA_FIELDS = (("municipality_code", 6), ("assessment_id", 32), ("fund_code", 4), ("fiscal_year", 4),
               ("installment", 2), ("payer_ref", 20), ("payer_name", 40), ("amount", 10), ("due_date", 8),
               ("filler", 1))
RECORD_LENGTH = 128


def pad(text: str, width: int, encoding: str = "cp932") -> bytes:
    raw = text.encode(encoding)
    if len(raw) > width:
        raise ValueError(f"{text!r} does not fit in {width} bytes")
    return raw + b" " * (width - len(raw))


def fixed_data(row: Row, *, kind: bytes = b"2", encoding: str = "cp932", **raw: bytes) -> bytes:
    """One data record; `raw` replaces a field's bytes as they are (any length)."""
    text = dict(row, fiscal_year=row["fiscal_year"].zfill(4), installment=row["installment"].zfill(2),
                amount=row["amount"].zfill(10), due_date=row["due_date"].replace("-", ""), filler="")
    return kind + b"".join(raw.get(name, pad(text[name], width, encoding)) for name, width in DATA_FIELDS)


def fixed_header(municipality: str = MUNICIPALITY, created_on: str = "20260401") -> bytes:
    return b"1" + created_on.encode() + municipality.encode() + b" " * 113


def fixed_trailer(count: int, total: int) -> bytes:
    return b"8" + f"{count:07d}{total:013d}".encode() + b" " * 107


FIXED_END = b"9" + b" " * 127


def fixed_file(*records: bytes, newline: bytes = b"\r\n") -> bytes:
    return b"".join(record + newline for record in records)


def amounts(*rows: Row) -> int:
    return sum(int(r["amount"]) for r in rows)


def standard_fixed(bad_record: bytes, *, bad_amount: int = int(GOOD["amount"]), count: int = 3,
                   total: int | None = None, encoding: str = "cp932") -> bytes:
    """Header, amendment (2), new (3), the bad record (4), trailer (5) and end (6).

    The trailer counts and totals the three data records as their writer meant them, so a
    spoilt record shows as itself and not only as a trailer mismatch.
    """
    if total is None:
        total = amounts(AMENDED, NEW) + bad_amount
    return fixed_file(fixed_header(), fixed_data(AMENDED, encoding=encoding), fixed_data(NEW, encoding=encoding),
                      bad_record, fixed_trailer(count, total), FIXED_END)


# --- the cases -------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    file: str
    layout: str
    line: int  # 0 = the file as a whole
    field: str | None  # None = the line or file as a whole
    message: str  # a piece of the expected message
    about: str
    content: bytes


def bad(**values: str) -> Row:
    return dict(GOOD, **values)


def _cases() -> list[Case]:
    total3 = amounts(AMENDED, NEW, GOOD)
    cases = [
        # kokin-csv ---------------------------------------------------------------------
        Case("csv_cp932_encoded.csv", CSV, 2, None, "is not valid utf-8",
             "the whole file written in cp932 (Shift_JIS) instead of UTF-8",
             standard_csv(csv_line(GOOD), encoding="cp932")),
        Case("csv_missing_column.csv", CSV, 4, None, "has 8 columns, expected 9",
             "a short line: the payer_name column is missing",
             standard_csv(csv_line(GOOD, drop="payer_name"))),
        Case("csv_extra_column.csv", CSV, 4, None, "has 10 columns, expected 9",
             "a line with a tenth column",
             standard_csv(csv_line(GOOD, extra=["備考"]))),
        Case("csv_wrong_header.csv", CSV, 1, None, "header must be " + HEADER,
             "the header names the columns in Japanese",
             csv_file("市区町村コード,調定番号,科目コード,年度,期別,納税者番号,氏名,金額,納期限",
                      csv_line(AMENDED), csv_line(NEW), csv_line(GOOD))),
        Case("csv_empty.csv", CSV, 0, None, "the file is empty", "zero bytes", b""),
        Case("csv_header_only.csv", CSV, 0, None, "the file has a header but no records",
             "the header line and nothing else", csv_file(HEADER)),
        Case("csv_impossible_date.csv", CSV, 4, "due_date",
             "is not a date in the form YYYY-MM-DD, got '2026-02-30'",
             "30 February (fiscal year 2025, so the date would otherwise be in range)",
             standard_csv(csv_line(bad(fiscal_year="2025", due_date="2026-02-30")))),
        Case("csv_date_with_slashes.csv", CSV, 4, "due_date",
             "is not a date in the form YYYY-MM-DD, got '2026/06/30'",
             "the due date written YYYY/MM/DD",
             standard_csv(csv_line(bad(due_date="2026/06/30")))),
        Case("csv_negative_amount.csv", CSV, 4, "amount", "must be between 1 and 9,999,999,999, got -7,000",
             "a negative amount", standard_csv(csv_line(bad(amount="-7000")))),
        Case("csv_zero_amount.csv", CSV, 4, "amount", "got 0",
             "an amount of zero yen", standard_csv(csv_line(bad(amount="0")))),
        Case("csv_amount_too_large.csv", CSV, 4, "amount", "got 10,000,000,000",
             "ten billion yen, one more than the layout allows",
             standard_csv(csv_line(bad(amount="10000000000")))),
        Case("csv_amount_not_a_number.csv", CSV, 4, "amount", "must be a whole number, got '7000円'",
             "the amount with a yen sign", standard_csv(csv_line(bad(amount="7000円")))),
        Case("csv_amount_fullwidth_digits.csv", CSV, 4, "amount", "must be a whole number, got '７０００'",
             "the amount in full-width digits", standard_csv(csv_line(bad(amount="７０００")))),
        Case("csv_amount_with_thousands_separator.csv", CSV, 4, "amount",
             "must be a whole number, got '7,000'",
             "the amount with a thousands separator (quoted, so the columns still count 9)",
             standard_csv(csv_line(bad(amount="7,000")))),
        Case("csv_municipality_bad_check_digit.csv", CSV, 4, "municipality_code",
             "131076 has a wrong check digit (expected 5)",
             "Sumida's code with a wrong check digit", standard_csv(csv_line(bad(municipality_code="131076")))),
        Case("csv_municipality_not_configured.csv", CSV, 4, "municipality_code",
             "130001 is not a configured municipality",
             "a valid code (Tokyo Metropolis) that this gateway does not serve",
             standard_csv(csv_line(bad(municipality_code="130001")))),
        Case("csv_municipality_five_digits.csv", CSV, 4, "municipality_code", "must be 6 digits, got '13107'",
             "the 5-digit code without its check digit",
             standard_csv(csv_line(bad(municipality_code="13107")))),
        Case("csv_unknown_fund.csv", CSV, 4, "fund_code", "'99' is not a fund of municipality 131075",
             "a fund code the ward has not configured", standard_csv(csv_line(bad(fund_code="99")))),
        Case("csv_fund_code_not_ascii.csv", CSV, 4, "fund_code", "must be letters and digits, got '０１'",
             "the fund code in full-width digits", standard_csv(csv_line(bad(fund_code="０１")))),
        Case("csv_duplicate_key.csv", CSV, 4, "assessment_id", "duplicate of line 3",
             "the same assessment_id and instalment as line 3, with another amount",
             standard_csv(csv_line(dict(NEW, amount="4000")))),
        Case("csv_due_date_before_fiscal_year.csv", CSV, 4, "due_date",
             "2026-03-31 is outside fiscal year 2026",
             "due the day before fiscal year 2026 begins",
             standard_csv(csv_line(bad(due_date="2026-03-31")))),
        Case("csv_due_date_after_limitation_period.csv", CSV, 4, "due_date",
             "2032-04-01 is outside fiscal year 2026",
             "due after the end of the fiscal year's 5-year window",
             standard_csv(csv_line(bad(due_date="2032-04-01")))),
        Case("csv_assessment_id_too_long.csv", CSV, 4, "assessment_id", "is longer than 32 bytes",
             "a 33-character assessment_id",
             standard_csv(csv_line(bad(assessment_id="01-2026-0000000005-ABCDEFGHIJKLMN")))),
        Case("csv_assessment_id_empty.csv", CSV, 4, "assessment_id", "is empty",
             "no assessment_id", standard_csv(csv_line(bad(assessment_id="")))),
        Case("csv_installment_zero.csv", CSV, 4, "installment", "must be between 1 and 99, got 0",
             "instalment 0", standard_csv(csv_line(bad(installment="0")))),
        Case("csv_fiscal_year_out_of_range.csv", CSV, 4, "fiscal_year", "got 1999",
             "fiscal year 1999, before the layout's range",
             standard_csv(csv_line(bad(fiscal_year="1999")))),
        Case("csv_payer_ref_too_long.csv", CSV, 4, "payer_ref", "is longer than 20 bytes",
             "a 21-digit payer_ref", standard_csv(csv_line(bad(payer_ref="0" * 21)))),
        Case("csv_payer_name_control_character.csv", CSV, 4, "payer_name", "contains control characters",
             "a tab inside the payer's name", standard_csv(csv_line(bad(payer_name="伊藤\t陽菜")))),
        Case("csv_known_key_moves_fund.csv", CSV, 4, "fund_code",
             "is recorded under fund 11; a key cannot move to another fund",
             "a known assessment (baseline line 4) sent under another fund",
             standard_csv(csv_line(dict(BASELINE[2], fund_code="12")))),
        Case("csv_known_key_moves_fiscal_year.csv", CSV, 4, "fiscal_year",
             "is recorded for fiscal year 2026; a key cannot move to another year",
             "a known assessment (baseline line 5) sent for another fiscal year",
             standard_csv(csv_line(dict(BASELINE[3], fiscal_year="2027", due_date="2027-07-30")))),
        # kokin-fixed -------------------------------------------------------------------
        Case("fixed_utf8_encoded.dat", FIXED, 0, None, "the file is UTF-8",
             "the whole file written in UTF-8 (padded by bytes, so every record is 128 bytes)",
             standard_fixed(fixed_data(GOOD, encoding="utf-8"), encoding="utf-8")),
        Case("fixed_empty.dat", FIXED, 0, None, "the file is empty", "zero bytes", b""),
        Case("fixed_truncated_no_trailer.dat", FIXED, 0, None,
             "the file must end with a trailer (kind 8) and an end record (kind 9)",
             "cut after the last data record: no trailer, no end record",
             fixed_file(fixed_header(), fixed_data(AMENDED), fixed_data(NEW), fixed_data(GOOD))),
        Case("fixed_truncated_mid_record.dat", FIXED, 4, None, "record is 60 bytes, expected 128",
             "cut in the middle of the third data record",
             fixed_file(fixed_header(), fixed_data(AMENDED), fixed_data(NEW)) + fixed_data(GOOD)[:60]),
        Case("fixed_record_too_short.dat", FIXED, 4, None, "record is 127 bytes, expected 128",
             "a data record one byte short (payer_name 39 bytes)",
             standard_fixed(fixed_data(GOOD, payer_name=pad(GOOD["payer_name"], 39)))),
        Case("fixed_record_too_long.dat", FIXED, 4, None, "record is 129 bytes, expected 128",
             "a data record one byte long (payer_name 41 bytes)",
             standard_fixed(fixed_data(GOOD, payer_name=pad(GOOD["payer_name"], 41)))),
        Case("fixed_trailer_count_mismatch.dat", FIXED, 5, "record_count", "trailer says 4 records, file has 3",
             "the trailer counts four data records; there are three",
             standard_fixed(fixed_data(GOOD), count=4)),
        Case("fixed_trailer_total_mismatch.dat", FIXED, 5, "total_amount",
             f"trailer says {total3 + 1000:,} yen, records add up to {total3:,}",
             "the trailer's total is 1,000 yen more than the records",
             standard_fixed(fixed_data(GOOD), total=total3 + 1000)),
        Case("fixed_unknown_record_kind.dat", FIXED, 4, "record_kind", "unknown record kind '3'",
             "a data record whose kind byte is 3",
             standard_fixed(fixed_data(GOOD, kind=b"3"))),
        Case("fixed_split_two_byte_character.dat", FIXED, 4, "payer_name", "split two-byte character",
             "payer_name cut by bytes inside a kanji: its last byte is the first half of 佐",
             standard_fixed(fixed_data(GOOD, payer_name=pad("伊藤　陽菜", 39) + "佐".encode("cp932")[:1]))),
        Case("fixed_lf_line_ends.dat", FIXED, 0, None, "line ends are LF",
             "a good file with LF line ends instead of CRLF",
             fixed_file(fixed_header(), fixed_data(AMENDED), fixed_data(NEW), fixed_data(GOOD),
                        fixed_trailer(3, total3), FIXED_END, newline=b"\n")),
        Case("fixed_amount_fullwidth_digits.dat", FIXED, 4, "amount", "must be a whole number, got '７０００'",
             "the amount in full-width digits (8 bytes, space padded to 10)",
             standard_fixed(fixed_data(GOOD, amount=pad("  ７０００", 10)))),
        Case("fixed_negative_amount.dat", FIXED, 4, "amount", "got -7,000",
             "a negative amount", standard_fixed(fixed_data(GOOD, amount=b"-000007000"), bad_amount=-7000)),
        Case("fixed_impossible_date.dat", FIXED, 4, "due_date",
             "is not a date in the form YYYYMMDD, got '20260230'",
             "30 February (fiscal year 2025)",
             standard_fixed(fixed_data(bad(fiscal_year="2025", due_date="2026-02-30")))),
        Case("fixed_due_date_outside_fiscal_year.dat", FIXED, 4, "due_date",
             "2026-03-31 is outside fiscal year 2026",
             "due the day before fiscal year 2026 begins",
             standard_fixed(fixed_data(bad(due_date="2026-03-31")))),
        Case("fixed_installment_zero.dat", FIXED, 4, "installment", "must be between 1 and 99, got 0",
             "instalment 00", standard_fixed(fixed_data(bad(installment="0")))),
        Case("fixed_municipality_differs_from_header.dat", FIXED, 4, "municipality_code",
             "differs from the header's 131075",
             "a record for Sapporo (011002) in Sumida's file",
             standard_fixed(fixed_data(bad(municipality_code="011002")))),
        Case("fixed_missing_header.dat", FIXED, 1, "record_kind", "the first record must be the header",
             "a file that starts with a data record",
             fixed_file(fixed_data(AMENDED), fixed_data(NEW), fixed_data(GOOD), fixed_trailer(3, total3),
                        FIXED_END)),
        Case("fixed_record_after_end.dat", FIXED, 0, None,
             "the file must end with a trailer (kind 8) and an end record (kind 9)",
             "a data record after the end record (two files joined?)",
             fixed_file(fixed_header(), fixed_data(AMENDED), fixed_data(NEW), fixed_trailer(2, amounts(AMENDED, NEW)),
                        FIXED_END, fixed_data(GOOD))),
    ]
    names = [c.file for c in cases]
    assert len(names) == len(set(names)), "case files must be unique"
    return cases


CASES = _cases()


def baseline_bytes() -> bytes:
    return csv_file(HEADER, *(csv_line(row) for row in BASELINE))


def manifest_text(cases: list[Case]) -> str:
    return corpus.manifest_text([
        "The bad ledger files and one error each must be rejected with. Generated by",
        "tests/integration/ledger_corpus.py (python -m tests.integration.ledger_corpus).",
        "line 0 = the file as a whole; no `field` = the error names no field.",
        "Tried against tests/data/ledger/baseline.csv imported and its slips issued."],
        ({"file": c.file, "layout": c.layout, "line": c.line, "field": c.field, "message": c.message,
          "about": c.about} for c in cases))


def expected_files() -> dict[Path, bytes]:
    """Every file this module writes, with its bytes."""
    files = {BASELINE_FILE: baseline_bytes(), MANIFEST_FILE: manifest_text(CASES).encode("utf-8")}
    files.update({BAD_DIR / case.file: case.content for case in CASES})
    return files


def write() -> None:
    BAD_DIR.mkdir(parents=True, exist_ok=True)
    for path, content in expected_files().items():
        path.write_bytes(content)
        print(f"wrote {path.relative_to(DATA_DIR.parent.parent.parent)} ({len(content)} bytes)")


if __name__ == "__main__":
    write()


# --- what the tests compare ------------------------------------------------------------

LEDGER_TABLES = ("assessments", "assessment_revisions", "ledger_imports", "events", "slips")


def ledger_state(database: object) -> dict[str, int]:
    """Row counts of the tables an import writes, and sums that move if any amount or slip does.

    Read in a session of its own, so it sees what is committed and nothing else.
    """
    from sqlalchemy import text

    with database.session() as session:  # type: ignore[attr-defined]
        state = {table: session.scalar(text(f"SELECT count(*) FROM {table}")) for table in LEDGER_TABLES}
        state["sum of assessment amounts"] = session.scalar(text("SELECT coalesce(sum(amount), 0) FROM assessments"))
        state["sum of assessment revisions"] = session.scalar(
            text("SELECT coalesce(sum(revision), 0) FROM assessments"))
        state["issued slips"] = session.scalar(text("SELECT count(*) FROM slips WHERE status = 'issued'"))
    return state
