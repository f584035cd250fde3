"""eLTAX payment data: slips paid with their eL-QR or eL番号 at 地方税お支払サイト, in an app or at a bank.

The ward receives the payments as data from eLTAX and the money from 地方税共同機構, later
(shared/domain/ward-interchange.md, "eLTAX and eL-QR"). An `EltaxAdapter` reads that data,
whose layout is a table (adapters/eltax/layouts/*.toml: the ward maps it to the data it
actually receives), validates a file in full and returns plain payments. Like an agency
adapter it knows nothing of slips: matching on the eL番号 is the gateway's.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

from adapters.agency import AgencyFileRejected
from domain import layouts
from domain.layouts import Layout, LineError, Record

LAYOUT_DIR = Path(__file__).parent / "layouts"
Method = Literal["card", "netbank", "app", "bank_counter"]
METHODS: tuple[Method, ...] = ("card", "netbank", "app", "bank_counter")


@dataclass(frozen=True)
class EltaxPayment:
    """One payment as eLTAX reports it: a slip's eL番号 paid in full at a moment, remitted later."""

    line: int  # line number in the file, 1-based (the header is line 1)
    record_id: str  # eLTAX's own id of the payment: the same in every file that carries it
    el_number: str  # eL番号 as printed on the slip, digits
    amount: int  # yen, as paid
    paid_on: date  # Asia/Tokyo
    paid_time: time
    method: Method
    remitted_on: date | None  # when 地方税共同機構 remits it; None while not yet known
    text: str | None = None  # the record as received, decoded, without its line end (`EltaxAdapter._text`)

    @property
    def match_key(self) -> str:
        """The payment this record speaks of, in any file: its record id, namespaced apart from agencies' keys."""
        return hashlib.sha256(f"eltax|{self.record_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class EltaxFile:
    adapter: str
    payments: list[EltaxPayment]

    @property
    def total_amount(self) -> int:
        return sum(p.amount for p in self.payments)


@dataclass
class EltaxAdapter:
    """Read eLTAX payment data: `layout_name` names a shipped table or a .toml path."""

    name: str
    layout_name: str = "eltax-csv"
    # The data's method codes -> ours (card, netbank, app, bank_counter); by default they are ours.
    methods: Mapping[str, str] = field(default_factory=lambda: {m: m for m in METHODS})
    # The name(s) 地方税共同機構's remittances carry on the ward's bank statement (half-width kana).
    remitter_kana: tuple[str, ...] = ()
    pull_url: str | None = None  # eLTAX data is downloaded by staff and imported; never pulled

    def __post_init__(self) -> None:
        self.layout: Layout = layouts.load_layout(self.layout_name, LAYOUT_DIR)
        unknown = sorted(set(self.methods.values()) - set(METHODS))
        if unknown:
            raise ValueError(f"{self.name}: methods map to {', '.join(unknown)}; known: {', '.join(METHODS)}")

    def read(self, data: bytes, *, workers: int = 1) -> EltaxFile:
        """Validate the whole file and return its payments; raise AgencyFileRejected listing every error.

        A record id twice in one file is an error (eLTAX sends each payment once per file);
        the same record id in a later file is the gateway's to recognise.
        """
        del workers  # one process: eLTAX files are a day's payments, not a million records
        records, errors = layouts.read(self.layout, data, texts=True)
        payments: list[EltaxPayment] = []
        first_line: dict[str, int] = {}
        for record in records:
            payment = self._payment(record, self._text(record, data), errors)
            if payment is None:
                continue
            seen = first_line.setdefault(payment.record_id, payment.line)
            if seen != payment.line:
                errors.append(LineError(payment.line, "record_id", f"repeats the record id of line {seen}"))
                continue
            payments.append(payment)
        if not payments and not errors:
            errors.append(LineError(0, None, "the file has no payments"))
        if errors:
            raise AgencyFileRejected(self.name, sorted(errors, key=lambda e: (e.line, e.field or "")))
        return EltaxFile(self.name, payments)

    def _text(self, record: Record, data: bytes) -> str | None:
        """The record as received: a CSV line as read, a fixed-width record cut from the bytes by its number.

        A NUL is shown as ␀ (SYMBOL FOR NULL), as an agency's record is: no PostgreSQL text holds one.
        """
        text, length = record.text, self.layout.record_length
        if text is None and self.layout.format == "fixed" and length:
            stride = length + 2 if b"\r\n" in data else length  # CRLF after every record, or none at all
            start = (record.line - 1) * stride
            text = data[start:start + length].decode(layouts.codec(self.layout.encoding))
        return text.replace("\0", "\u2400") if text is not None and "\0" in text else text

    def _payment(self, record: Record, text: str | None, errors: list[LineError]) -> EltaxPayment | None:
        values, line = record.values, record.line
        method = self.methods.get(values["method"])
        if method is None:
            errors.append(LineError(line, "method", f"unknown method {values['method']!r}; known: "
                                                    f"{', '.join(sorted(self.methods))}"))
            return None
        remitted_on = values.get("remitted_on")
        if remitted_on is not None and remitted_on < values["paid_on"]:
            errors.append(LineError(line, "remitted_on", f"{remitted_on.isoformat()} is before the payment "
                                                         f"({values['paid_on'].isoformat()})"))
            return None
        return EltaxPayment(line, values["record_id"], values["el_number"], values["amount"], values["paid_on"],
                            values["paid_time"], method, remitted_on, text)  # type: ignore[arg-type]

    def pull(self, http: Any = None) -> bytes:
        """eLTAX data is not pulled: staff download it from eLTAX and import the file."""
        raise ValueError(f"{self.name}: eLTAX payment data is imported from a file, not pulled")


def make_eltax_adapter(name: str, options: Mapping[str, Any]) -> EltaxAdapter:
    """Build the eLTAX adapter from its configuration (layout defaults to eltax-csv)."""
    known = {"layout", "methods", "remitter_kana"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"eLTAX adapter {name}: unknown option(s) {', '.join(sorted(unknown))}")
    names = options.get("remitter_kana", ())
    return EltaxAdapter(name=name, layout_name=options.get("layout", "eltax-csv"),
                        methods=dict(options.get("methods", {m: m for m in METHODS})),
                        remitter_kana=(names,) if isinstance(names, str) else tuple(names))
