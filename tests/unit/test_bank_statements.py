"""全銀協 入出金取引明細 statements: read through the layout table, checked whole, every fault named."""
from __future__ import annotations

from datetime import date

import pytest

from domain.bank_statements import BankAccount, kana_key, read_statement
from domain.calendar import from_wareki, to_wareki
from gateway.layouts import load_layout
from tests import zengin
from tests.zengin import Account, Line

LAYOUT = load_layout("zengin-nyushukkin")
DAY = date(2026, 7, 31)
TAXES = Account("0001-001-1-1234567", [Line(120_000, DAY, "ｶ)ｻﾝﾌﾟﾙｼﾕｳﾉｳ"), Line(3_300, DAY, deposit=False),
                                       Line(45_600, date(2026, 7, 30), "ｽﾐﾀﾞ ﾀﾛｳ")])
PREMIUMS = Account("0001-001-1-7654321", [Line(98_000, DAY, "ｶ)ｻﾝﾌﾟﾙｼﾕｳﾉｳ")])


def _errors(data: bytes) -> list[str]:
    return [str(e) for e in read_statement(LAYOUT, data)[1]]


def test_reiwa_dates_read_r08_as_2026_and_refuse_days_before_the_era() -> None:
    assert from_wareki("080731", "reiwa") == date(2026, 7, 31)
    assert from_wareki("010501", "reiwa") == date(2019, 5, 1)
    assert to_wareki(date(2026, 1, 5), "reiwa") == "080105"
    for bad in ("010430", "000101", "081332", "080229", "8073 1"):
        with pytest.raises(ValueError):
            from_wareki(bad, "reiwa")


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "no-line-breaks"])
def test_a_statement_reads_the_same_with_or_without_line_breaks(crlf: bool) -> None:
    statement, errors = read_statement(LAYOUT, zengin.statement(TAXES, PREMIUMS, crlf=crlf))
    assert errors == []
    assert [str(a) for a in statement.accounts] == ["0001-001-1-1234567", "0001-001-1-7654321"]
    assert [(t.record, str(t.account), t.amount, t.booked_on, t.remitter_name) for t in statement.deposits] == [
        (2, "0001-001-1-1234567", 120_000, DAY, "ｶ)ｻﾝﾌﾟﾙｼﾕｳﾉｳ"),
        (4, "0001-001-1-1234567", 45_600, date(2026, 7, 30), "ｽﾐﾀﾞ ﾀﾛｳ"),
        (7, "0001-001-1-7654321", 98_000, DAY, "ｶ)ｻﾝﾌﾟﾙｼﾕｳﾉｳ")]
    assert [t.amount for t in statement.withdrawals] == [3_300]
    other, _ = read_statement(LAYOUT, zengin.statement(TAXES, PREMIUMS, crlf=not crlf))
    assert [t.reference for t in other.transactions] == [t.reference for t in statement.transactions]


def test_two_transactions_with_the_same_fields_get_different_references_that_stay_the_same() -> None:
    twice = Account(lines=[Line(5_000, DAY, "ｶ)ｻﾝﾌﾟﾙｼﾕｳﾉｳ", inquiry="00000001")] * 2)
    first, errors = read_statement(LAYOUT, zengin.statement(twice))
    again, _ = read_statement(LAYOUT, zengin.statement(twice))
    assert errors == []
    references = [t.reference for t in first.transactions]
    assert len(set(references)) == 2 and references == [t.reference for t in again.transactions]


def test_a_statement_without_transactions_is_valid_and_empty() -> None:
    statement, errors = read_statement(LAYOUT, zengin.statement(Account()))
    assert errors == [] and statement.transactions == () and len(statement.accounts) == 1


def test_a_record_of_the_wrong_length_is_named_by_its_number() -> None:
    parts = zengin.records(TAXES)
    parts[2] = parts[2][:199]
    assert _errors(zengin.join(parts)) == ["record 3: record is 199 bytes, expected 200"]
    assert _errors(zengin.join(parts, crlf=False)) == [
        "file: the file has no line breaks and is 1,199 bytes, not a whole number of 200-byte records; record 4 is "
        "the first that does not start with a record kind"]


@pytest.mark.parametrize(("order", "expected"), [
    ([1, 0, 2, 3, 4, 5], "record 1, field record_kind: a data record (kind 2) cannot follow the start of the file; "
                         "expected a header (kind 1)"),
    ([0, 1, 2, 4, 3, 5], "record 5, field record_kind: a data record (kind 2) cannot follow a trailer (kind 8); "
                         "expected a header (kind 1) or the end record (kind 9)"),
    ([0, 1, 2, 3, 5], "record 5, field record_kind: the end record (kind 9) cannot follow a data record (kind 2); "
                      "expected a data record (kind 2) or a trailer (kind 8)"),
    ([0, 1, 2, 3, 4], "file: the file ends after a trailer (kind 8); a statement ends with a trailer (kind 8) "
                      "and the end record (kind 9)"),
    ([0, 1, 2, 3, 4, 5, 5], "record 7, field record_kind: the end record (kind 9) cannot follow the end record "
                            "(kind 9); expected nothing"),
], ids=["data-first", "data-after-trailer", "no-trailer", "no-end", "after-end"])
def test_record_kinds_out_of_order_are_named(order: list[int], expected: str) -> None:
    parts = zengin.records(TAXES)
    assert expected in _errors(zengin.join([parts[i] for i in order]))


@pytest.mark.parametrize(("offset", "value", "expected"), [
    (1, b"000003", "record 5, field deposit_count: trailer says 3 deposits, the account's data records have 2"),
    (7, b"0000000165601", "record 5, field deposit_total: trailer says 165,601 yen of deposits, the account's data "
                          "records have 165,600"),
    (20, b"000000", "record 5, field withdrawal_count: trailer says 0 withdrawals, the account's data records have 1"),
    (26, b"0000000003000", "record 5, field withdrawal_total: trailer says 3,000 yen of withdrawals, the account's "
                           "data records have 3,300"),
    (54, b"0000004", "record 5, field record_count: trailer says 4 data records, the account's data records have 3"),
], ids=["deposit-count", "deposit-total", "withdrawal-count", "withdrawal-total", "record-count"])
def test_a_trailer_that_disagrees_with_its_records_is_named(offset: int, value: bytes, expected: str) -> None:
    parts = zengin.records(TAXES)
    parts[4] = zengin.put(parts[4], offset, value)
    assert _errors(zengin.join(parts)) == [expected]


@pytest.mark.parametrize(("record", "offset", "value", "expected"), [
    (1, 9, b"081332", "record 2, field booked_on: is not a date in 令和 (YYMMDD, year 令和1 = 2019), got '081332'"),
    (0, 4, b"010430", "record 1, field created_on: is not a date in 令和 (YYMMDD, year 令和1 = 2019), got '010430'"),
    (0, 1, b"21", "record 1, field type_code: must be 03, got '21'"),
    (0, 3, b"1", "record 1, field code_kind: must be 0, got '1'"),
    (1, 21, b"3", "record 2, field direction: must be 1 or 2, got '3'"),
    (1, 81, "ｱ".encode("cp932") + "ア".encode("cp932"),
     "record 2, field remitter_name: byte 0x83 (record position 83) is not JIS X 0201 (letters, digits, "
     "half-width kana)"),
    (1, 24, b"00000000012A", "record 2, field amount: must be a whole number, got '00000000012A'"),
], ids=["bad-wareki-day", "before-reiwa", "type-code", "ebcdic", "direction", "non-jis-byte", "amount"])
def test_a_bad_field_is_named_with_its_record_and_nothing_is_read(record: int, offset: int, value: bytes,
                                                                   expected: str) -> None:
    parts = zengin.records(TAXES)
    parts[record] = zengin.put(parts[record], offset, value)
    statement, errors = read_statement(LAYOUT, zengin.join(parts))
    assert [str(e) for e in errors] == [expected]
    assert statement.transactions == ()


def test_a_utf8_file_and_lf_line_ends_are_refused_whole() -> None:
    good = zengin.statement(TAXES)
    assert _errors(good.replace(b"\r\n", b"\n")) == ["file: line ends are LF; zengin-nyushukkin needs CRLF or "
                                                     "no line breaks"]
    utf8 = good.decode("cp932").encode("utf-8")
    assert _errors(utf8) == ["file: the file is UTF-8; zengin-nyushukkin files are cp932 (Shift_JIS)"]


def test_accounts_are_written_bank_branch_type_number() -> None:
    assert str(BankAccount.parse(" 0001-001-1-1234567 ")) == "0001-001-1-1234567"
    for bad in ("0001-001-3-1234567", "1-001-1-1234567", "0001001 1 1234567"):
        with pytest.raises(ValueError, match="BBBB-SSS-T-NNNNNNN"):
            BankAccount.parse(bad)


def test_remitter_names_compare_without_width_small_kana_or_spaces() -> None:
    assert kana_key("ｶ)ｼﾕｳﾉｳ ﾀﾞｲｺｳ") == kana_key("ｶ)ｼｭｳﾉｳﾀﾞｲｺｳ") == kana_key("カ)シュウノウダイコウ")
    assert kana_key("ｶ)ｼﾕｳﾉｳ") != kana_key("ｶ)ｼﾕｳﾉ")
