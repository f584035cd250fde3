"""Collection agencies (収納代行): the slip barcode paid at a store or in a bill-payment app.

The money and the data travel separately (shared/domain/collection-agency-data.md): the agency
reports each payment as 速報 (preliminary), 確報 (final) and rarely 速報取消 (cancellation of
a preliminary), in files, and remits the money later. An `AgencyAdapter` reads one
agency's files, whose layout is a table (adapters/agency/layouts/*.toml), validates a file
in full and returns plain reports; it can also pull a file over HTTP. It knows nothing of
slips or payments: matching is the gateway's.
"""
from __future__ import annotations

import gc
import hashlib
import itertools
import multiprocessing
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import requests

from adapters.base import RetryableError
from domain import barcode as gs1
from domain import layouts
from domain.layouts import Layout, LineError, Record

LAYOUT_DIR = Path(__file__).parent / "layouts"
ReportKind = Literal["preliminary", "final", "cancel"]
# One agency's record-type codes (the domain document); other agencies map theirs in config.
DEFAULT_DATA_TYPES: dict[str, ReportKind] = {"01": "preliminary", "02": "final", "03": "cancel"}
# Chain and app codes of one agency's published list; configuration, not code (CONTRACT.md).
DEFAULT_CHAINS: dict[str, str] = {
    "010": "Seven-Eleven", "020": "Lawson", "030": "FamilyMart", "080": "Ministop", "760": "Seicomart",
    "530": "PayB", "750": "J-Coin", "780": "au PAY", "800": "d払い", "810": "LINE Pay", "820": "PayPay",
    "830": "楽天銀行", "840": "Bank Pay",
}


class AgencyReport(NamedTuple):
    """One data record: a store or app accepted the slip whose barcode it carries.

    A named tuple, not a dataclass: a 確報 file carries a million of them, and a tuple is
    made in a third of the time.
    """

    record: int  # record number in the file, 1-based (the header is record 1 in fixed files)
    kind: ReportKind
    barcode: str  # the 44 digits
    amount: int  # yen, as paid
    paid_on: date  # 収納日, the store's date (Asia/Tokyo)
    paid_time: time  # HH:MM at the store
    store_code: str
    chain_code: str  # normalised to at least 3 digits, as in the agency's list
    channel: str  # the chain or app's name from the chain table, or "chain <code>"
    remittance_on: date | None  # 振込予定日; none in a 速報
    accounting_on: date | None = None
    # The record as received (CSV; a fixed-width file's are cut from its bytes by `AgencyFile.raw_line`).
    raw_line: str | None = None

    @property
    def match_key(self) -> str:
        """The store payment this record speaks of: the same for its 速報, 確報 and 取消."""
        text = f"{self.barcode}|{_day_digits(self.paid_on)}|{_time_digits(self.paid_time)}|{self.store_code}"
        return hashlib.sha256(text.encode("ascii", "replace")).hexdigest()[:32]


@lru_cache(maxsize=4096)  # a file holds a few hundred days and at most 1,440 minutes, over and over
def _day_digits(day: date) -> str:
    return day.strftime("%Y%m%d")


@lru_cache(maxsize=4096)
def _time_digits(moment: time) -> str:
    return moment.strftime("%H%M")


@dataclass(frozen=True)
class AgencyFile:
    adapter: str
    created_on: date | None
    agency_code: str | None
    client_code: str | None
    reports: list[AgencyReport]
    # A fixed-width file's bytes (the caller's, not a copy), its encoding, record length and the
    # distance between records: each record's line is cut from them when asked for, so a
    # million-record file holds no million lines besides its bytes.
    data: bytes = field(default=b"", repr=False, compare=False)
    encoding: str = "cp932"
    record_length: int = 0
    stride: int = 0  # 0: the reports carry their lines (CSV)

    @property
    def total_amount(self) -> int:
        return sum(r.amount for r in self.reports)

    def raw_line(self, report: AgencyReport) -> str | None:
        """The report's record as received: decoded from the file's encoding, without its line end.

        A NUL (valid where the layout reads nothing) is shown as ␀ (SYMBOL FOR NULL): no
        PostgreSQL text holds a NUL.
        """
        if not self.stride:
            return report.raw_line
        start = (report.record - 1) * self.stride  # every record of an accepted file is record_length bytes
        text = self.data[start:start + self.record_length].decode(self.encoding)
        return text.replace("\0", "\u2400") if "\0" in text else text


class AgencyFileRejected(ValueError):
    """The file is refused whole; `errors` name each record and field and why."""

    def __init__(self, adapter: str, errors: list[LineError]) -> None:
        self.adapter = adapter
        self.errors = errors
        first = errors[0] if errors else "no reason"
        super().__init__(f"{adapter}: {len(errors)} error(s); first: {first}")


@dataclass
class AgencyAdapter:
    """Read (and pull) one agency's files: `layout` names a shipped table or a .toml path."""

    name: str
    layout_name: str
    client_code: str | None = None  # the ward's code at the agency; a file for another client is refused
    data_types: Mapping[str, ReportKind] = field(default_factory=lambda: dict(DEFAULT_DATA_TYPES))
    chains: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CHAINS))
    pull_url: str | None = None
    company_id: str | None = None
    password: str | None = field(default=None, repr=False)  # resolved from the environment by the gateway
    timeout: float = 30.0
    # The name(s) the agency's remittances carry on the ward's bank statement (振込依頼人名, half-width
    # kana): a statement's deposit from one of them is this agency's remittance.
    remitter_kana: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.layout: Layout = layouts.load_layout(self.layout_name, LAYOUT_DIR)
        self._chains_seen: dict[str, tuple[str, str]] = {}

    def read(self, data: bytes, *, workers: int = 1) -> AgencyFile:
        """Validate the whole file and return its reports; raise AgencyFileRejected listing every error.

        A large fixed-width file is read by up to `workers` processes, each a run of its
        records; the checks that need the whole file (order, count, total) come after, on
        what they found. The result, errors included, is the same as read by one.
        """
        # Readers are forked (no interpreter to start, no modules to import again), so only from a
        # process that runs no other thread: the command line, not a threaded server.
        pieces = _pieces(self.layout, data, workers if threading.active_count() == 1 else 1)
        with paused_gc():
            if len(pieces) == 1:
                parts = [self._part(*layouts.read(self.layout, data, texts=True))]
            else:
                problem = layouts.fixed_file_problem(self.layout, data)
                if problem is not None and problem is not layouts.TRUNCATED:
                    raise AgencyFileRejected(self.name, [replace(problem, unit="record")])
                with ProcessPoolExecutor(len(pieces), mp_context=multiprocessing.get_context("fork")) as pool:
                    parts = [_rows(part) for part in pool.map(_read_piece, itertools.repeat(self),
                                                              *zip(*pieces, strict=True))]
                if problem is not None:
                    parts[0].layout_errors.insert(0, problem)
                if any(len(part.layout_errors) >= layouts.MAX_ERRORS for part in parts):
                    # each piece stopped at its own limit: the file is refused anyway, and read
                    # whole it names the same first errors as it always has
                    parts = [self._part(*layouts.read(self.layout, data, texts=True))]
            return self._file(parts, data)

    def _part(self, records: list[Record], layout_errors: list[LineError]) -> _Part:
        """What the records of one run of the file hold: reports, the other records, errors."""
        part = _Part(layout_errors, first_values=records[0].values if records else None)
        runs = part.runs
        for record in records:
            if runs and runs[-1][0] == record.kind:
                runs[-1][2] += 1
            else:
                runs.append([record.kind, record.line, 1])
            if record.kind == "data":
                part.data += 1
                report = self._report(record, part.report_errors)
                if report is not None:
                    part.reports.append(report)
            else:
                part.others.append(record)
        return part

    def _file(self, parts: list[_Part], data: bytes) -> AgencyFile:
        errors = [e for part in parts for e in part.layout_errors]
        # A record with a bad field is left out of the records: checking the order, count and
        # total without it would report faults the file does not have. Those come once the
        # record errors are fixed.
        complete = not any(e.line for e in errors)
        runs = _joined([run for part in parts for run in part.runs])
        if self.layout.format == "fixed" and complete:
            errors += _structure_errors(runs)
        errors += [e for part in parts for e in part.report_errors]
        reports = list(itertools.chain.from_iterable(part.reports for part in parts))
        others = [record for part in parts for record in part.others]
        header = next((r for r in others if r.kind == "header"), None)
        trailer = next((r for r in others if r.kind == "trailer"), None)
        errors += self._header_errors(header)
        if complete:
            errors += _trailer_errors(trailer, reports, sum(part.data for part in parts))
        if not reports and not errors:
            errors.append(LineError(0, None, "the file has no data records"))
        if errors:
            named = [replace(e, unit="record") for e in errors]  # agencies number records
            raise AgencyFileRejected(self.name, sorted(named, key=lambda e: (e.line, e.field or "")))
        values = header.values if header is not None else {}
        created = values.get("created_on") or (parts[0].first_values or {}).get("created_on")
        if self.layout.format != "fixed":
            return AgencyFile(self.name, created, values.get("agency_code"), values.get("client_code"), reports)
        length = self.layout.record_length or 0
        stride = length + 2 if b"\r\n" in data else length  # CRLF after every record, or none at all
        return AgencyFile(self.name, created, values.get("agency_code"), values.get("client_code"), reports, data,
                          layouts.codec(self.layout.encoding), length, stride)

    def pull(self, http: requests.Session | None = None) -> bytes:
        """Fetch the agency's newest file: POST with the company id and system password.

        RetryableError when the agency cannot be reached or answers 5xx; ValueError when
        it refuses the credentials (a person must fix the configuration).
        """
        if not (self.pull_url and self.company_id and self.password):
            raise ValueError(f"{self.name}: pulling needs pull_url, company_id and password in the configuration")
        http = http or requests.Session()
        try:
            response = http.post(self.pull_url, data={"company_id": self.company_id, "password": self.password},
                                 timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryableError(f"{self.name}: {self.pull_url} is not answering ({type(exc).__name__})") from exc
        if response.status_code >= 500:
            raise RetryableError(f"{self.name}: the agency answered {response.status_code}")
        if response.status_code in (401, 403):
            raise ValueError(f"{self.name}: the agency refused the company id or password")
        if response.status_code != 200:
            raise ValueError(f"{self.name}: the agency answered {response.status_code}")
        return response.content

    def _report(self, record: Record, errors: list[LineError]) -> AgencyReport | None:
        values, line = record.values, record.line
        kind = self.data_types.get(values.get("data_type", ""))
        if "data_type" in values and kind is None:
            errors.append(LineError(line, "data_type", f"unknown data type {values['data_type']!r}; "
                                                       f"known: {', '.join(sorted(self.data_types))}"))
        barcode = values.get("barcode")
        if barcode is not None:
            problem = gs1.problem(barcode)
            client = barcode[gs1.CLIENT_CODE_FIELD]
            if not problem and self.client_code is not None and client != self.client_code:
                problem = f"is for client {client}, this ward is {self.client_code} at {self.name}"
            if problem:
                errors.append(LineError(line, "barcode", problem))
                barcode = None
        amount = values.get("amount")
        if barcode is not None and amount is not None and amount != int(barcode[gs1.AMOUNT_FIELD]):
            errors.append(LineError(line, "amount", f"{amount:,} yen differs from the barcode's "
                                                    f"{int(barcode[gs1.AMOUNT_FIELD]):,} yen"))
        remittance_on = values.get("remittance_on")
        if kind == "final" and remittance_on is None and "remittance_on" in values:
            errors.append(LineError(line, "remittance_on", "a 確報 must name its planned remittance date"))
        if kind is None or barcode is None:
            return None
        chain, channel = self._chain(values["chain_code"])
        text = record.text
        if text is not None and "\0" in text:  # as AgencyFile.raw_line shows it
            text = text.replace("\0", "\u2400")
        return AgencyReport(line, kind, barcode, int(barcode[gs1.AMOUNT_FIELD]) if amount is None else amount,
                            values["paid_on"], values["paid_time"], values["store_code"], chain, channel,
                            remittance_on, values.get("accounting_on"), text)

    def _chain(self, code: str) -> tuple[str, str]:
        """The chain code normalised to at least 3 digits, and its name from the chain table."""
        found = self._chains_seen.get(code)
        if found is None:
            chain = code.lstrip("0").zfill(3)
            found = self._chains_seen[code] = (chain, self.chains.get(chain, f"chain {chain}"))
        return found

    def _header_errors(self, header: Record | None) -> list[LineError]:
        if header is None or self.client_code is None or "client_code" not in header.values:
            return []
        if header.values["client_code"] != self.client_code:
            return [LineError(header.line, "client_code", f"the file is for client {header.values['client_code']}, "
                                                          f"this ward is {self.client_code} at {self.name}")]
        return []


def _structure_errors(runs: list[list[Any]]) -> list[LineError]:
    """Header first, then data, one trailer, one end record last (fixed files).

    `runs`: [kind, first record number, count] of consecutive records of a kind, in order.
    """
    errors: list[LineError] = []
    order = {"header": 0, "data": 1, "trailer": 2, "end": 3}
    for name in ("header", "trailer", "end"):
        seen, second = 0, None
        for kind, first, count in runs:
            if kind == name:
                if second is None and seen + count >= 2:
                    second = first if seen else first + 1
                seen += count
        if second is not None:
            errors.append(LineError(second, "record_kind", f"a second {name} record"))
        elif not seen and runs:
            errors.append(LineError(0, None, f"the file has no {name} record"))
    last = -1
    for kind, first, count in runs:
        rank = order[kind]
        if rank < last:
            before = [k for k, v in order.items() if v == last][0]
            errors += [LineError(first + i, "record_kind", f"a {kind} record after the {before}") for i in range(count)]
        last = max(last, rank)
    return errors


def _joined(runs: list[list[Any]]) -> list[list[Any]]:
    """Runs of the file's pieces as runs of the file: a run cut between two pieces is one again."""
    joined: list[list[Any]] = []
    for kind, first, count in runs:
        if joined and joined[-1][0] == kind and joined[-1][1] + joined[-1][2] == first:
            joined[-1][2] += count
        else:
            joined.append([kind, first, count])
    return joined


def _trailer_errors(trailer: Record | None, reports: list[AgencyReport], data: int) -> list[LineError]:
    if trailer is None:
        return []
    errors = []
    count, total = trailer.values.get("record_count"), trailer.values.get("total_amount")
    if count is not None and count != data:
        errors.append(LineError(trailer.line, "record_count", f"says {count:,} data records, the file has {data:,}"))
    if total is not None and len(reports) == data and total != sum(r.amount for r in reports):
        errors.append(LineError(trailer.line, "total_amount", f"says {total:,} yen, the data records add up to "
                                                              f"{sum(r.amount for r in reports):,} yen"))
    return errors


PARALLEL_MIN_RECORDS = 100_000  # below this, starting processes costs more than it saves


@dataclass
class _Part:
    """What one run of a file's records holds (read in this process or another)."""

    layout_errors: list[LineError]
    first_values: dict[str, Any] | None = None
    reports: list[AgencyReport] = field(default_factory=list)
    others: list[Record] = field(default_factory=list)  # header, trailer, end
    runs: list[list[Any]] = field(default_factory=list)  # [kind, first record number, count]
    report_errors: list[LineError] = field(default_factory=list)
    data: int = 0  # data records read
    columns: list[tuple[Any, ...]] = field(default_factory=list)  # the reports, in transit


def _pieces(layout: Layout, data: bytes, workers: int) -> list[tuple[int, bytes]]:
    """Cut a large fixed-width file after a CRLF into `workers` runs: [(first record number, bytes)]."""
    if layout.format != "fixed" or workers < 2 or len(data) < PARALLEL_MIN_RECORDS * (layout.record_length or 1):
        return [(1, data)]
    pieces: list[tuple[int, bytes]] = []
    start, first = 0, 1
    for n in range(1, workers):
        cut = data.find(b"\r\n", len(data) * n // workers)
        if cut < 0:
            break
        cut += 2
        pieces.append((first, data[start:cut]))
        first += data.count(b"\r\n", start, cut)
        start = cut
    if start < len(data):
        pieces.append((first, data[start:]))
    return pieces


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while a file's records are made, and restore it.

    A million records are millions of small objects without cycles; left on, the collector
    walks them again and again as they pile up: it took 40% of the time of reading a
    million-record file.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_piece(adapter: AgencyAdapter, first: int, piece: bytes) -> _Part:
    """Read one run of a fixed-width file's records (in a worker process).

    The reports travel back as columns, a tuple per field: pickled and unpickled in a
    fifth of the time of as many small tuples (`_rows` makes them reports again).
    """
    part = adapter._part(*layouts.read(adapter.layout, piece, first=first, whole=False))
    part.columns, part.reports = list(zip(*part.reports, strict=True)), []
    return part


def _rows(part: _Part) -> _Part:
    if part.columns:
        part.reports, part.columns = list(map(AgencyReport._make, zip(*part.columns, strict=True))), []
    return part


def make_agency_adapter(name: str, options: Mapping[str, Any]) -> AgencyAdapter:
    """Build an adapter from its configuration (layout defaults to the adapter's name)."""
    known = {"layout", "client_code", "data_types", "chains", "pull_url", "company_id", "password", "timeout",
             "remitter_kana"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"agency adapter {name}: unknown option(s) {', '.join(sorted(unknown))}")
    settings = {k: v for k, v in options.items() if k != "layout"}
    if "remitter_kana" in settings:  # one name or a list of them
        names = settings["remitter_kana"]
        settings["remitter_kana"] = (names,) if isinstance(names, str) else tuple(names)
    return AgencyAdapter(name=name, layout_name=options.get("layout", name), **settings)
