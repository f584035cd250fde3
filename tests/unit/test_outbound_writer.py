"""The writer of files for other systems: a column at a time, each value checked to read back as itself."""
from __future__ import annotations

from datetime import date, time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import layouts
from domain.layouts import FieldSpec, Layout, RecordSpec
from gateway.errors import ReceiptsNotWritable
from reconciliation.outbound import Block, Same, encode_blocks, encode_records

FIELDS = (FieldSpec("id", "code", max_bytes=12), FieldSpec("key", "text", max_bytes=10, optional=True),
          FieldSpec("year", "integer", min=2000, max=2099), FieldSpec("amount", "integer", min=1, max=99_999),
          FieldSpec("fee", "integer", min=0, max=999, optional=True),
          FieldSpec("on", "date", format="%Y-%m-%d"), FieldSpec("at", "time", format="%H:%M"),
          FieldSpec("kind", "code", max_bytes=8, choices=("receipt", "reversal")))
CSV = Layout("test-csv", "csv", "cp932", {"data": RecordSpec("data", None, FIELDS)})


def _values(n: int, **changes: Any) -> dict[str, Any]:
    values = {"id": f"R-{n:05d}", "key": f"01-{n:04d}", "year": 2026, "amount": 1_000 + n, "fee": None,
              "on": date(2026, 7, 31), "at": time(9, n % 60), "kind": "receipt"}
    return values | changes


def _encode(rows: list[dict[str, Any]]) -> bytes:
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    return encode_blocks(CSV, [Block("data", columns, len(rows))], what="receipts", error=ReceiptsNotWritable)


def test_a_file_written_a_column_at_a_time_reads_back_as_its_values() -> None:
    rows = [_values(n) for n in range(1, 200)] + [_values(200, key="墨田,区", fee=0)]
    data = _encode(rows)
    records, errors = layouts.read(CSV, data)
    assert errors == [] and [r.values for r in records] == [row | {"fee": "" if row["fee"] is None else row["fee"]}
                                                            for row in rows]  # an empty number reads as ""
    assert data.endswith(b"\r\n") and b'"\x96\x6e\x93\x63,\x8b\xe6"' in data  # the comma quoted, in cp932
    assert data == encode_records(CSV, [("data", row) for row in rows], what="receipts", error=ReceiptsNotWritable)


@pytest.mark.parametrize(("change", "line", "field", "why"), [
    ({"amount": 100_000}, 5, "amount", "must be between 1 and 99999, got 100000"),
    ({"amount": 0}, 5, "amount", "must be between 1 and 99999"),
    ({"year": 2100}, 5, "year", "2100"),
    ({"id": "R-0000000000005"}, 5, "id", "is longer than 12 bytes"),
    ({"key": "x" * 11}, 5, "key", "is longer than 10 bytes"),
    ({"key": "\u2603"}, 5, "key", "cannot be written in cp932"),
    ({"kind": "refund"}, 5, "kind", "must be receipt or reversal"),
    ({"at": time(9, 5, 30)}, 5, "at", "would be read back as"),
    ({"on": None}, 5, "on", "is empty"),
])
def test_a_value_that_would_not_read_back_is_refused_naming_its_line_and_field(
        change: dict[str, Any], line: int, field: str, why: str) -> None:
    rows = [_values(n) for n in range(1, 10)]
    rows[line - 1] = _values(line, **change)  # the first line is the header: record n is on line n + 1
    with pytest.raises(ReceiptsNotWritable) as refused:
        _encode(rows)
    assert f"line {line + 1}, field {field}:" in str(refused.value) and why in str(refused.value)


@given(st.lists(st.integers(min_value=-10**6, max_value=10**6), min_size=1, max_size=50))
def test_numbers_are_refused_exactly_when_one_of_them_is_out_of_range(numbers: list[int]) -> None:
    rows = [_values(n, amount=amount) for n, amount in enumerate(numbers)]
    outside = [n for n, amount in enumerate(numbers) if not 1 <= amount <= 99_999]
    if not outside:
        assert [r.values["amount"] for r in layouts.read(CSV, _encode(rows))[0]] == numbers
        return
    with pytest.raises(ReceiptsNotWritable) as refused:
        _encode(rows)
    assert "field amount" in str(refused.value)


def test_a_column_of_one_value_and_a_missing_column_are_written_alike() -> None:
    rows = [_values(n) for n in range(1, 4)]
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name in rows[0] if name != "fee"}
    columns["year"] = Same(2026)
    data = encode_blocks(CSV, [Block("data", columns, 3)], what="receipts", error=ReceiptsNotWritable)
    assert data == _encode(rows)
