"""Read a ledger file in pieces: validate every record, protect payer data, make staging rows.

Payer names are encrypted and payer references replaced by their keyed hash before they reach
a table (the stage included).

A million-record file is cut into pieces of whole lines; each piece is read, checked and
turned into rows for the import's staging table by itself, in a worker process per core
when the file is large (forked: the cipher and reference data are inherited, never pickled).
Nothing is kept per record but its staging row, so memory follows the piece, not the file.
What needs the whole file (envelope, count and total, duplicates) is decided from each
piece's summary and, for duplicates, by the database over the staged rows.
"""
from __future__ import annotations

import codecs
import hashlib
import hmac
import itertools
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from domain.eltax import additions_problem, el_number_problem, el_qr_problem
from domain.identifiers import is_valid_municipality_code, municipality_check_digit
from domain.layouts import MAX_ERRORS, TRUNCATED, Layout, LineError, Record, fixed_file_problem, read
from gateway.crypto import DataCipher

PRESCRIPTION_YEARS = 5  # a claim's due date is never further than this past its fiscal year
PIECE_BYTES = 4 << 20  # about 40,000 records: a piece's rows and text stay a few tens of MB


@dataclass(frozen=True)
class References:
    """What a record is checked against: municipalities by code, funds by (municipality id, code)."""

    municipalities: dict[str, int]
    funds: dict[tuple[int, str], tuple[int, bool]]  # -> (fund type id, active)


@dataclass
class Piece:
    """What one run of the file's lines holds, as the import needs it."""

    layout_errors: list[LineError] = field(default_factory=list)
    row_errors: list[LineError] = field(default_factory=list)
    header_mismatches: list[LineError] = field(default_factory=list)  # fixed: data records of another code
    others: list[Record] = field(default_factory=list)  # header, trailer and end records
    kinds: list[tuple[str, int]] = field(default_factory=list)  # runs of record kinds: (kind, count)
    records: int = 0  # data records read
    total: int = 0
    copy_text: str = ""  # PostgreSQL: the staging rows in COPY's text format
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # SQLite: the staging rows


@dataclass(frozen=True)
class _Context:
    layout: Layout
    references: References
    cipher: DataCipher
    name_key: bytes  # keys the digests that compare payer names in the stage; this import's own, never stored
    header_code: str | None  # fixed: the header's municipality code
    copy: bool


_context: _Context | None = None  # the worker's, set when it starts


def read_pieces(layout: Layout, data: bytes, references: References, cipher: DataCipher, *, name_key: bytes,
                copy: bool, workers: int) -> Iterator[Piece]:
    """Yield the file's pieces in order, read by up to `workers` processes (a few pieces ahead at most)."""
    if layout.format == "fixed":
        problem = fixed_file_problem(layout, data)
        if problem is not None:
            yield Piece(layout_errors=[problem])
            if problem is not TRUNCATED:  # a truncated file is still read: its last record is named
                return
    context = _Context(layout, references, cipher, name_key, _header_code(layout, data), copy)
    pieces = _cut(layout, data)
    if workers < 2 or len(pieces) < 2 or threading.active_count() > 1:
        yield from (_read(context, *piece) for piece in pieces)
        return
    # Forked (no interpreter to start, nothing pickled but the bytes), so only from a process
    # that runs no other thread: the command line, not a threaded server.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_start_worker, initargs=(context,)) as pool:
        yield from _in_order(pool, pieces, ahead=workers + 1)


def _start_worker(context: _Context) -> None:
    global _context
    _context = context


def _read_in_worker(first: int, piece: bytes, whole: bool) -> Piece:
    assert _context is not None
    return _read(_context, first, piece, whole)


def _in_order(pool: ProcessPoolExecutor, pieces: list[tuple[int, bytes, bool]], ahead: int) -> Iterator[Piece]:
    """Results in order, with at most `ahead` pieces in flight: memory stays that of a few pieces."""
    waiting: deque[Future[Piece]] = deque()
    for first, piece, whole in pieces:
        waiting.append(pool.submit(_read_in_worker, first, piece, whole))
        if len(waiting) > ahead:
            yield waiting.popleft().result()
    while waiting:
        yield waiting.popleft().result()


def _header_code(layout: Layout, data: bytes) -> str | None:
    if layout.format != "fixed":
        return None
    end = data.find(b"\r\n")
    records, _ = read(layout, data[:end + 2] if end >= 0 else data, whole=False)
    if records and records[0].kind == "header":
        code: str = records[0].values["municipality_code"]
        return code
    return None


def _cut(layout: Layout, data: bytes) -> list[tuple[int, bytes, bool]]:
    """[(number of the piece's first line, its bytes, whether it is read as the file itself)].

    A CSV piece after the first carries a copy of the header line; a CSV not wholly in its
    encoding is read whole, as it always was (it is refused, with the errors it always had).
    """
    if layout.format == "fixed":
        return [(first, data[start:end], False) for first, start, end in _runs(data, 0, b"\r\n", 1)]
    body = data.removeprefix(b"\xef\xbb\xbf")
    newline = body.find(b"\n")
    if newline < 0 or not body[newline + 1:].strip() or not _decodes(body, layout.encoding):
        return [(1, data, True)]
    header = body[:newline + 1]
    return [(first, body[:end] if first == 2 else header + body[start:end], first == 2)
            for first, start, end in _runs(body, newline + 1, b"\n", 2)]


def _decodes(data: bytes, encoding: str) -> bool:
    decoder, view = codecs.getincrementaldecoder(encoding)(), memoryview(data)
    try:
        for start in range(0, len(data), PIECE_BYTES):
            decoder.decode(view[start:start + PIECE_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _runs(data: bytes, start: int, end_of_line: bytes, first: int) -> Iterator[tuple[int, int, int]]:
    while start < len(data):
        cut = data.find(end_of_line, start + PIECE_BYTES)
        end = len(data) if cut < 0 else cut + len(end_of_line)
        yield first, start, end
        first += data.count(end_of_line, start, end)
        start = end


def _read(context: _Context, first: int, piece: bytes, whole: bool) -> Piece:
    """Read one piece: layout errors, row checks, and its staging rows (names encrypted while it is clean)."""
    layout = context.layout
    if layout.format == "fixed":
        records, errors = read(layout, piece, first=first, whole=False)
    else:
        records, errors = read(layout, piece)
        if not whole:  # line 1 is the copy of the header: checked with the first piece
            shift = first - 2
            records = [replace(r, line=r.line + shift) for r in records]
            errors = [replace(e, line=e.line + shift) if e.line else e for e in errors if e.line != 1]
    result = Piece(layout_errors=errors)
    _rows(context, records, result)
    return result


def _rows(context: _Context, records: list[Record], result: Piece) -> None:
    kinds = result.kinds
    checked: dict[str, str | None] = {}
    lines: list[str] = []
    encrypt = not result.layout_errors
    for record in records:
        if kinds and kinds[-1][0] == record.kind:
            kinds[-1] = (record.kind, kinds[-1][1] + 1)
        else:
            kinds.append((record.kind, 1))
        if record.kind != "data":
            result.others.append(record)
            continue
        values = record.values
        result.records += 1
        result.total += values["amount"]
        errors = _check(context, record, checked)
        if errors:
            result.row_errors += errors
            encrypt = False
        if context.header_code is not None and values["municipality_code"] != context.header_code:
            result.header_mismatches.append(LineError(record.line, "municipality_code",
                                                      f"differs from the header's {context.header_code}"))
        row = _stage_row(context, record, encrypt)
        if context.copy:
            lines.append(_copy_line(row))
        else:
            result.rows.append(row)
    result.copy_text = "".join(lines)


def _check(context: _Context, record: Record, checked: dict[str, str | None]) -> list[LineError]:
    values, line = record.values, record.line
    errors: list[LineError] = []
    code = values["municipality_code"]
    if code not in checked:
        checked[code] = municipality_problem(code, context.references.municipalities)
    problem = checked[code]
    fund = values["fund_code"]
    if problem:
        errors.append(LineError(line, "municipality_code", problem))
    else:
        known = context.references.funds.get((context.references.municipalities[code], fund))
        if known is None:
            errors.append(LineError(line, "fund_code", f"{fund!r} is not a fund of municipality {code}"))
        elif not known[1]:
            errors.append(LineError(line, "fund_code", f"fund {fund!r} is inactive in municipality {code}"))
    year, due = values["fiscal_year"], values["due_date"]
    if not date(year, 4, 1) <= due <= date(year + 1 + PRESCRIPTION_YEARS, 3, 31):
        errors.append(LineError(line, "due_date", f"{due} is outside fiscal year {year} "
                                f"and its {PRESCRIPTION_YEARS}-year limitation period"))
    return errors + _eltax_errors(values, line)


def _eltax_errors(values: dict[str, Any], line: int) -> list[LineError]:
    """The eL番号, the eL-QR payload and the additions of a layout that has them (domain.eltax)."""
    errors: list[LineError] = []
    if values.get("el_number"):
        problem = el_number_problem(values["el_number"])
        if problem:
            errors.append(LineError(line, "el_number", problem))
    if values.get("el_qr"):
        problem = el_qr_problem(values["el_qr"])
        if problem:
            errors.append(LineError(line, "el_qr", problem))
    additions = additions_problem(values["amount"], values.get("late_fee", 0), values.get("dunning_fee", 0))
    if additions:
        errors.append(LineError(line, *additions))
    return errors


@dataclass
class FileCheck:
    """What the whole file's checks need from its pieces."""

    layout_errors: list[LineError] = field(default_factory=list)
    row_errors: list[LineError] = field(default_factory=list)
    header_mismatches: list[LineError] = field(default_factory=list)
    others: list[Record] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # the record kinds, a run of data records as one
    headers: int = 0
    records: int = 0
    total: int = 0
    capped: bool = False

    def add(self, piece: Piece) -> bool:
        """Take in one piece; False once the layout errors reached the cap (reading stops there)."""
        room = MAX_ERRORS - len(self.layout_errors)
        errors = piece.layout_errors
        if len(errors) >= room:  # the file read whole would have stopped at the cap's error
            stop = errors[room - 1].line if room > 0 else 0
            self.layout_errors += errors[:room]
            self.layout_errors.append(LineError(0, None, f"more than {MAX_ERRORS} errors; stopped reading"))
            self.row_errors += [e for e in piece.row_errors if e.line < stop]
            self.capped = True
            return False
        self.layout_errors += errors
        self.row_errors += piece.row_errors
        self.header_mismatches += piece.header_mismatches
        self.others += piece.others
        for kind, count in piece.kinds:
            self.headers += count if kind == "header" else 0
            if not (self.kinds and self.kinds[-1] == kind == "data"):
                self.kinds += [kind] * (1 if kind == "data" else count)
        self.records += piece.records
        self.total += piece.total
        return True


def envelope_errors(check: FileCheck, references: References, *, counts_comparable: bool) -> list[LineError]:
    """Check header first, trailer and end last, and the trailer's count and total.

    When records were already refused, the count and total cannot be compared: the refused
    records are missing from them and a mismatch would only repeat those errors.
    """
    kinds = check.kinds
    errors: list[LineError] = []
    if not kinds or kinds[0] != "header":
        errors.append(LineError(1, "record_kind", "the first record must be the header (kind 1)"))
    if check.headers > 1:
        errors.append(LineError(0, None, "more than one header record"))
    if kinds[-2:] != ["trailer", "end"]:
        errors.append(LineError(0, None, "the file must end with a trailer (kind 8) and an end record "
                                         "(kind 9): truncated file?"))
        return errors
    header, trailer = check.others[0], check.others[-2]
    if counts_comparable and trailer.values["record_count"] != check.records:
        errors.append(LineError(trailer.line, "record_count",
                                f"trailer says {trailer.values['record_count']:,} records, file has "
                                f"{check.records:,}"))
    if counts_comparable and trailer.values["total_amount"] != check.total:
        errors.append(LineError(trailer.line, "total_amount",
                                f"trailer says {trailer.values['total_amount']:,} yen, records add up to "
                                f"{check.total:,}"))
    if header.kind == "header":
        problem = municipality_problem(header.values["municipality_code"], references.municipalities)
        errors += [LineError(header.line, "municipality_code", problem)] if problem else check.header_mismatches
    return errors


def municipality_problem(code: str, municipalities: dict[str, int]) -> str | None:
    if not is_valid_municipality_code(code):
        return f"{code} has a wrong check digit (expected {municipality_check_digit(code[:5])})"
    if code not in municipalities:
        return f"{code} is not a configured municipality"
    return None


# The staging table's columns, in this order (ledger_import.STAGE).
STAGE_COLUMNS = ("line", "municipality_code", "municipality_id", "source_key", "fund_type_id", "fiscal_year",
                 "installment", "payer_ref_hmac", "payer_name_enc", "name_digest", "amount", "due_date",
                 "late_fee", "dunning_fee", "el_number", "el_qr")


def _stage_row(context: _Context, record: Record, encrypt: bool) -> tuple[Any, ...]:
    """The record as a staging row; the name only encrypted (and digested), and only while the file may apply.

    The payer reference is staged as its keyed hash, never as text: the stage is a table too.
    """
    values, references = record.values, context.references
    municipality_id = references.municipalities.get(values["municipality_code"])
    fund = references.funds.get((municipality_id, values["fund_code"])) if municipality_id else None
    name = values["payer_name"]
    token = context.cipher.encrypt(name) if encrypt and name else None
    digest = name_digest(context.name_key, name) if encrypt else None
    return (record.line, values["municipality_code"], municipality_id, values["assessment_id"],
            fund[0] if fund else None, values["fiscal_year"], values["installment"],
            context.cipher.payer_ref_hmac(values["municipality_code"], values["payer_ref"]), token,
            digest, values["amount"], values["due_date"], values.get("late_fee", 0), values.get("dunning_fee", 0),
            values.get("el_number") or None, values.get("el_qr") or None)


def name_digest(name_key: bytes, name: str) -> bytes:
    """A keyed digest of a payer name: compares names in the stage without their text being there."""
    return hmac.new(name_key, name.encode("utf-8"), hashlib.sha256).digest()[:16]


def _copy_line(row: tuple[Any, ...]) -> str:
    """A staging row in COPY's text format (a Fernet token is base64: bytea takes it as it is)."""
    (line, code, municipality_id, source_key, fund_id, year, installment, payer_ref_hmac, token, digest, amount, due,
     late_fee, dunning_fee, el_number, el_qr) = row
    return (f"{line}\t{code}\t{_null(municipality_id)}\t{_copy_text(source_key)}\t{_null(fund_id)}\t{year}\t"
            f"{installment}\t{payer_ref_hmac}\t{_null(token and token.decode('ascii'))}\t"
            f"{_null(digest and HEX + digest.hex())}\t{amount}\t{due.isoformat()}\t{late_fee}\t{dunning_fee}\t"
            f"{_null(el_number)}\t{_null(el_qr and _copy_text(el_qr))}\n")


HEX = "\\\\x"  # bytea's hex form, its backslash escaped for COPY


def _null(value: int | str | None) -> str:
    return "\\N" if value is None else str(value)


def _copy_text(value: str) -> str:
    if "\\" not in value:  # the layouts refuse control characters (tabs, line ends) in every field
        return value
    return value.replace("\\", "\\\\")


NAME_CHUNK = 20_000  # stored names compared at a time
_Named = tuple[int, bytes | None, bytes]  # (line, the stored name's token or None, the staged name's digest)


def changed_names(rows: Iterator[_Named], cipher: DataCipher, *, name_key: bytes,
                  workers: int) -> list[int]:
    """Return the lines whose stored name (a token, or None) differs from the staged name's digest.

    Decrypting is the cost (a re-sent million-row file holds a million known names): large
    batches are compared by up to `workers` forked processes, as the file was read.
    """
    chunks = _chunks(rows, NAME_CHUNK)
    first = next(chunks, None)
    if first is None:
        return []
    second = next(chunks, None)
    if second is None or workers < 2 or threading.active_count() > 1:
        batches = (b for b in (first, second) if b is not None)
        return [line for batch in itertools.chain(batches, chunks) for line in _compare(cipher, name_key, batch)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_start_comparer, initargs=(cipher, name_key)) as pool:
        waiting: deque[Future[list[int]]] = deque()
        changed: list[int] = []
        for batch in itertools.chain((first, second), chunks):
            waiting.append(pool.submit(_compare_in_worker, batch))
            if len(waiting) > workers + 1:
                changed += waiting.popleft().result()
        while waiting:
            changed += waiting.popleft().result()
    return changed


def _chunks(rows: Iterator[_Named], size: int) -> Iterator[list[_Named]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


_comparer: tuple[DataCipher, bytes] | None = None


def _start_comparer(cipher: DataCipher, name_key: bytes) -> None:
    global _comparer
    _comparer = (cipher, name_key)


def _compare_in_worker(batch: list[_Named]) -> list[int]:
    assert _comparer is not None
    return _compare(*_comparer, batch)


def _compare(cipher: DataCipher, name_key: bytes, batch: list[_Named]) -> list[int]:
    return [line for line, stored, staged in batch
            if name_digest(name_key, cipher.decrypt(stored) if stored else "") != staged]


def default_workers() -> int:
    return len(os.sched_getaffinity(0))
