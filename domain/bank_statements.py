"""Bank statements (全銀協 入出金取引明細 and layouts like it): accounts, transactions, checks.

A layout table (gateway/layouts/zengin-nyushukkin.toml) says where each field is; this module
checks what the file means as a whole: record kinds in order (per account a header, its
transactions and a trailer; one end record), each trailer's counts and totals of deposits and
withdrawals against the account's transactions. Each transaction gets a reference that is
the same every time the same statement is read, so a statement imported twice records once.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date

from domain import layouts
from domain.layouts import Layout, LineError, Record

# A ward's bank account as configuration writes it: bank code (4 digits), branch code (3),
# deposit type (1: 1 普通, 2 当座, 4 貯蓄, 9 その他) and account number (7), e.g. 0001-001-1-1234567.
ACCOUNT_FORMAT = "BBBB-SSS-T-NNNNNNN"
_ACCOUNT = re.compile(r"(\d{4})-(\d{3})-([1249])-(\d{7})")
DEPOSIT, WITHDRAWAL = "1", "2"  # 入払区分


@dataclass(frozen=True)
class BankAccount:
    bank: str
    branch: str
    type: str
    number: str

    @classmethod
    def parse(cls, text: str) -> BankAccount:
        """Read BBBB-SSS-T-NNNNNNN; ValueError naming the expected form."""
        found = _ACCOUNT.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"bank account {text!r} is not {ACCOUNT_FORMAT} (bank, branch, deposit type "
                             "1/2/4/9, account number)")
        return cls(*found.groups())

    def __str__(self) -> str:
        return f"{self.bank}-{self.branch}-{self.type}-{self.number}"


@dataclass(frozen=True)
class Transaction:
    """One data record of a statement: money into (deposit) or out of the account."""

    record: int  # record number in the file, 1-based
    account: BankAccount  # from the account's header
    inquiry_number: str  # 照会番号
    booked_on: date  # 勘定日
    deposit: bool  # 入金; False: 出金
    amount: int  # yen
    remitter_name: str  # half-width kana as the bank gives it; empty for most withdrawals
    reference: str  # stable: the same transaction read again gives the same reference


@dataclass(frozen=True)
class Statement:
    accounts: tuple[BankAccount, ...]
    transactions: tuple[Transaction, ...]

    @property
    def deposits(self) -> list[Transaction]:
        return [t for t in self.transactions if t.deposit]

    @property
    def withdrawals(self) -> list[Transaction]:
        return [t for t in self.transactions if not t.deposit]


_NEXT = {"start": ("header",), "header": ("data", "trailer"), "data": ("data", "trailer"),
         "trailer": ("header", "end"), "end": ()}
_SHOWN = {"start": "the start of the file", "header": "a header (kind 1)", "data": "a data record (kind 2)",
          "trailer": "a trailer (kind 8)", "end": "the end record (kind 9)"}


def read_statement(layout: Layout, data: bytes) -> tuple[Statement, list[LineError]]:
    """Read and check a whole statement; return it and every error (record, field, why).

    The statement is only good when the errors are none: then every account's trailer
    agrees with its transactions.
    """
    records, errors = layouts.read(layout, data)
    errors = [replace(e, unit="record") for e in errors]
    problem = layouts.fixed_file_problem(layout, data)
    if problem is not None and problem is not layouts.TRUNCATED:
        return Statement((), ()), errors
    names = {spec.kind: spec.name for spec in layout.records.values()}
    raw_kinds = [raw[:layout.kind_length].decode("ascii", "replace") for raw in layouts.split_fixed(layout, data)]
    kinds = [(number, names[k]) for number, k in enumerate(raw_kinds, start=1) if k in names]
    accounts, transactions, found = _walk(kinds, {r.line: r for r in records})
    return Statement(tuple(accounts), tuple(transactions)), errors + found


def _walk(kinds: list[tuple[int, str]], good: dict[int, Record]) -> tuple[
        list[BankAccount], list[Transaction], list[LineError]]:
    """Check the order of record kinds; check each account's trailer; collect its transactions."""
    errors: list[LineError] = []
    accounts: list[BankAccount] = []
    transactions: list[Transaction] = []
    state, complete = "start", False
    account: BankAccount | None = None
    group: list[Record] = []  # the good data records of the account being read
    for number, name in kinds:
        if name not in _NEXT[state]:
            expected = " or ".join(_SHOWN[n] for n in _NEXT[state]) or "nothing"
            errors.append(LineError(number, "record_kind", f"{_SHOWN[name]} cannot follow {_SHOWN[state]}; "
                                                           f"expected {expected}", "record"))
        if name == "header":
            account, group = _account(good.get(number), errors), []
            complete = account is not None
        elif name == "data":
            record = good.get(number)
            complete = complete and record is not None and state in ("header", "data")
            if record is not None:
                group.append(record)
        elif name == "trailer" and account is not None:
            trailer = good.get(number)
            if complete and trailer is not None:
                errors += _trailer_errors(trailer, group)
                accounts.append(account)
                transactions += _transactions(account, group)
            account = None
        state = name
    if state != "end":
        errors.append(LineError(0, None, f"the file ends after {_SHOWN[state]}; a statement ends with a "
                                         "trailer (kind 8) and the end record (kind 9)", "record"))
    return accounts, transactions, errors


def _account(header: Record | None, errors: list[LineError]) -> BankAccount | None:
    if header is None:
        return None
    values = header.values
    number = values["account_number"]
    if number[:-7].strip("0"):
        errors.append(LineError(header.line, "account_number", f"has more than 7 digits ({number}); accounts are "
                                                               f"configured as {ACCOUNT_FORMAT}", "record"))
        return None
    return BankAccount(values["bank_code"], values["branch_code"], values["deposit_type"], number[-7:])


def _trailer_errors(trailer: Record, group: list[Record]) -> list[LineError]:
    deposits = [r.values["amount"] for r in group if r.values["direction"] == DEPOSIT]
    withdrawals = [r.values["amount"] for r in group if r.values["direction"] == WITHDRAWAL]
    found = {"deposit_count": len(deposits), "deposit_total": sum(deposits),
             "withdrawal_count": len(withdrawals), "withdrawal_total": sum(withdrawals), "record_count": len(group)}
    shown = {"deposit_count": "deposits", "deposit_total": "yen of deposits", "withdrawal_count": "withdrawals",
             "withdrawal_total": "yen of withdrawals", "record_count": "data records"}
    return [LineError(trailer.line, name, f"trailer says {trailer.values[name]:,} {shown[name]}, the account's "
                                          f"data records have {value:,}", "record")
            for name, value in found.items() if trailer.values[name] != value]


def _transactions(account: BankAccount, group: list[Record]) -> list[Transaction]:
    seen: Counter[str] = Counter()
    out = []
    for record in group:
        values = record.values
        key = "|".join(str(part) for part in (
            account, values["inquiry_number"], values["booked_on"].isoformat(), values.get("value_on") or "",
            values["direction"], values["transaction_type"], values["amount"], values.get("remitter_code", ""),
            values.get("remitter_name", ""), values.get("description", ""), values.get("edi", "")))
        seen[key] += 1  # the same fields twice in one account's records: two transactions, told apart by order
        digest = hashlib.sha256(f"{key}|{seen[key]}".encode()).hexdigest()[:24]
        out.append(Transaction(record.line, account, values["inquiry_number"], values["booked_on"],
                               values["direction"] == DEPOSIT, values["amount"], values.get("remitter_name") or "",
                               f"zengin-{values['inquiry_number']}-{digest}"))
    return out


_SMALL_KANA = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")


def kana_key(name: str) -> str:
    """A remitter name as compared: width, small kana (banks send large ones) and spaces do not count."""
    return "".join(unicodedata.normalize("NFKC", name).translate(_SMALL_KANA).upper().split())
