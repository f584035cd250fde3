"""全銀協 入出金取引明細 files for tests, written byte by byte from the published record layout.

Deliberately not from gateway/layouts/zengin-nyushukkin.toml: a field misplaced in the table
must make these files fail, not be written back in the same wrong place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

RECORD = 200
ACCOUNT = "0001-001-1-1234567"


@dataclass
class Line:
    amount: int
    booked_on: date
    remitter: str = ""  # half-width kana
    deposit: bool = True
    inquiry: str = ""  # 照会番号; numbered in order when empty
    transaction_type: str = "11"  # 振込


@dataclass
class Account:
    account: str = ACCOUNT
    lines: list[Line] = field(default_factory=list)
    balance_before: int = 10_000_000


def wareki(day: date) -> bytes:
    """YYMMDD in 令和 (R08 = 2026)."""
    assert day >= date(2019, 5, 1)
    return f"{day.year - 2018:02d}{day:%m%d}".encode()


def kana(text: str, width: int) -> bytes:
    encoded = text.encode("cp932")
    assert len(encoded) <= width, text
    return encoded.ljust(width, b" ")


def header(account: str = ACCOUNT, *, created_on: date = date(2026, 7, 31), period: tuple[date, date] | None = None,
           balance: int = 10_000_000, type_code: bytes = b"03") -> bytes:
    bank, branch, kind, number = account.split("-")
    start, end = period or (created_on, created_on)
    record = (b"1" + type_code + b"0" + wareki(created_on) + wareki(start) + wareki(end)
              + bank.encode() + kana("ｻﾝﾌﾟﾙｷﾞﾝｺｳ", 15) + branch.encode() + kana("ﾎﾝﾃﾝ", 15) + b"000"
              + kind.encode() + number.rjust(10, "0").encode() + kana("ｽﾐﾀﾞｸｶｲｹｲｶﾝﾘｼｬ", 40)
              + b"1" + b" " + f"{balance:014d}".encode() + b" " * 71)
    assert len(record) == RECORD
    return record


def data(line: Line, number: int) -> bytes:
    inquiry = (line.inquiry or f"{number:08d}").encode()
    record = (b"2" + inquiry + wareki(line.booked_on) + wareki(line.booked_on) + (b"1" if line.deposit else b"2")
              + line.transaction_type.encode() + f"{line.amount:012d}".encode() + b"0" * 12 + b"000000" + b"000000"
              + b" " + b"0000000" + b"000" + b" " * 10 + kana(line.remitter, 48) + kana("ﾐﾂﾋﾞｼ", 15)
              + kana("ﾎﾝﾃﾝ", 15) + kana("ﾌﾘｺﾐ" if line.deposit else "ﾃｽｳﾘﾖｳ", 20) + b" " * 20 + b" ")
    assert len(record) == RECORD
    return record


def trailer(lines: list[Line], balance_before: int = 10_000_000) -> bytes:
    deposits = [li.amount for li in lines if li.deposit]
    withdrawals = [li.amount for li in lines if not li.deposit]
    after = balance_before + sum(deposits) - sum(withdrawals)
    record = (b"8" + f"{len(deposits):06d}".encode() + f"{sum(deposits):013d}".encode()
              + f"{len(withdrawals):06d}".encode() + f"{sum(withdrawals):013d}".encode() + b"1"
              + f"{after:014d}".encode() + f"{len(lines):07d}".encode() + b" " * 139)
    assert len(record) == RECORD
    return record


def end() -> bytes:
    return b"9" + b" " * 199


def records(*accounts: Account, created_on: date = date(2026, 7, 31)) -> list[bytes]:
    """The statement's records in order: per account a header, its lines and a trailer; the end."""
    out: list[bytes] = []
    number = 0
    for account in accounts:
        out.append(header(account.account, created_on=created_on, balance=account.balance_before))
        for line in account.lines:
            number += 1
            out.append(data(line, number))
        out.append(trailer(account.lines, account.balance_before))
    out.append(end())
    return out


def join(parts: list[bytes], *, crlf: bool = True) -> bytes:
    return b"".join(part + b"\r\n" for part in parts) if crlf else b"".join(parts)


def statement(*accounts: Account, crlf: bool = True, created_on: date = date(2026, 7, 31)) -> bytes:
    """A valid statement file, with a CRLF after every record or none at all."""
    return join(records(*accounts, created_on=created_on), crlf=crlf)


def put(record: bytes, offset: int, value: bytes) -> bytes:
    """The record with `value` written at the 0-based byte `offset` (a fault planted in one field)."""
    assert offset + len(value) <= len(record)
    return record[:offset] + value + record[offset + len(value):]
