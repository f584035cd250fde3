"""File layouts as data: read (and write) CSV and fixed-width files described by TOML tables.

A layout names its encoding, its record kinds and each field's type and size. Reading
validates every field and returns either the records or every error with its line and
field; nothing here knows what the records mean. The tables live with their owners, who
pass their folder to load_layout(): the ward ledger's in gateway/layouts/, the receipts
feed's in reconciliation/layouts/, the collection agencies' in adapters/agency/layouts/ and
PayPay's settlement report in adapters/paypay/layouts/.
"""
from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

from domain.calendar import ERAS, from_wareki, to_wareki

MAX_ERRORS = 200
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc: C0, DEL and C1 controls


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based; 0 = the file as a whole
    field: str | None
    message: str
    unit: str = "line"  # what the file's numbered parts are called: line, or record

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}" if self.line else "file"
        return f"{where}, field {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # digits | text | code | integer | date | time | wareki | filler
    length: int | None = None  # bytes, fixed width only
    max_bytes: int | None = None
    min: int | None = None
    max: int | None = None
    format: str | None = None
    optional: bool = False
    charset: str = "cp932"  # "unicode" for text that is never written to a cp932 file
    null_values: tuple[str, ...] = ()  # values that mean "none" (e.g. 00000000 for a date not yet known)
    prefix: str | None = None  # a marker the value must start with, dropped (EAN before a barcode)
    choices: tuple[str, ...] = ()  # the only values allowed (a record's type code), when given
    era: str | None = None  # wareki dates: the era their YYMMDD is in (domain.calendar.ERAS)
    absent: bool = False  # CSV: the column may be left out of the header (every record then has it empty)
    default: str | None = None  # the text an empty field (or an absent column) stands for, e.g. "0"
    strip: bool = True  # False: spaces around the value are part of it (CSV only; fixed width pads)


@dataclass(frozen=True)
class RecordSpec:
    name: str
    kind: str | None
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class Layout:
    name: str
    format: str  # csv | fixed
    encoding: str
    records: dict[str, RecordSpec]
    record_length: int | None = None
    kind_length: int = 0
    header_line: bool = True  # CSV: the first line names the columns
    # Fixed width: "crlf" (every record ends with CRLF) or "optional" (CRLF after every record,
    # or none at all: records follow each other, as banks send 全銀協 files).
    line_breaks: str = "crlf"

    @property
    def data(self) -> RecordSpec:
        return self.records["data"]


@dataclass
class Record:
    line: int
    kind: str  # the record's name in the layout: header, data, trailer, end
    values: dict[str, Any] = field(default_factory=dict)
    text: str | None = None  # a CSV record's line as received, decoded, without its line end (`read(texts=True)`)


class LayoutError(RuntimeError):
    """A layout name or table that cannot be used."""


def available_layouts(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_layout(name_or_path: str, directory: Path) -> Layout:
    """Load a layout shipped in `directory` by name, or a ward's or agency's own from a .toml path."""
    path = Path(name_or_path) if name_or_path.endswith(".toml") else directory / f"{name_or_path}.toml"
    if not path.is_file():
        raise LayoutError(f"unknown layout {name_or_path!r}; shipped: {', '.join(available_layouts(directory))}")
    raw = tomllib.loads(path.read_text("utf-8"))
    records = {
        name: RecordSpec(name, spec.get("kind"), tuple(_field_spec(f) for f in spec["fields"]))
        for name, spec in raw["records"].items()
    }
    layout = Layout(raw["name"], raw["format"], raw["encoding"], records,
                    raw.get("record_length"), raw.get("kind_length", 0), raw.get("header_line", True),
                    raw.get("line_breaks", "crlf"))
    _check_widths(layout)
    _check_fields(layout)
    return layout


def _field_spec(raw: dict[str, Any]) -> FieldSpec:
    return FieldSpec(**{**raw, "null_values": tuple(raw.get("null_values", ())),
                        "choices": tuple(raw.get("choices", ()))})


def _check_fields(layout: Layout) -> None:
    if layout.line_breaks not in ("crlf", "optional"):
        raise LayoutError(f"layout {layout.name}: line_breaks is crlf or optional, not {layout.line_breaks!r}")
    for spec in layout.records.values():
        for fspec in spec.fields:
            if fspec.type == "wareki" and fspec.era not in ERAS:
                raise LayoutError(f"layout {layout.name}: {spec.name}.{fspec.name} needs an era: "
                                  f"{', '.join(ERAS)}")


def _check_widths(layout: Layout) -> None:
    if layout.format != "fixed":
        return
    for spec in layout.records.values():
        width = layout.kind_length + sum(f.length or 0 for f in spec.fields)
        if width != layout.record_length:
            raise LayoutError(f"layout {layout.name}: {spec.name} fields add up to {width} bytes, "
                              f"not {layout.record_length}")


def convert(spec: FieldSpec, raw: str, *, checked: bool = False) -> Any:
    """Return the typed value of one field; raise ValueError with a reason a person can act on.

    `checked`: the caller already knows the text holds no control characters.
    """
    if spec.type == "filler":
        return None
    value = raw.strip() if spec.strip else raw
    if value in spec.null_values:
        return None
    if value == "" and spec.default is not None:
        value = spec.default
    if value == "":
        if spec.optional:
            return None if spec.type in ("date", "time") else ""
        raise ValueError("is empty")
    if spec.prefix is not None:
        if not value.startswith(spec.prefix):
            raise ValueError(f"must start with {spec.prefix}, got {value[:len(spec.prefix) + 4]!r}")
        value = value.removeprefix(spec.prefix)
    if not checked and _CONTROL.search(value):
        raise ValueError("contains control characters")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"must be {' or '.join(spec.choices)}, got {value!r}")
    return _CONVERTERS[spec.type](spec, value)


def _digits(spec: FieldSpec, value: str) -> str:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"must be digits only, got {value!r}")
    if spec.length and len(value) != spec.length:
        raise ValueError(f"must be {spec.length} digits, got {value!r}")
    if spec.max_bytes and len(value) > spec.max_bytes:
        raise ValueError(f"must be at most {spec.max_bytes} digits, got {len(value)} ({value!r})")
    return value


def _integer(spec: FieldSpec, value: str) -> int:
    if not (value.isascii() and value.lstrip("-").isdigit() and value.count("-") <= 1):
        raise ValueError(f"must be a whole number, got {value!r}")
    number = int(value, 10)
    if (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
        shown = "{:,}" if (spec.max or 0) > 99_999 else "{}"  # amounts get separators, years do not
        raise ValueError(f"must be between {shown.format(spec.min)} and {shown.format(spec.max)}, "
                         f"got {shown.format(number)}")
    return number


def _date(spec: FieldSpec, value: str) -> date:
    return _strict(value, spec.format or "%Y-%m-%d", "date").date()


def _wareki(spec: FieldSpec, value: str) -> date:
    assert spec.era is not None  # load_layout checks
    return from_wareki(value, spec.era)


def _time(spec: FieldSpec, value: str) -> time:
    return _strict(value, spec.format or "%H:%M", "time").time()


@lru_cache(maxsize=8192)  # a file holds a few hundred dates and at most 1,440 minutes, over and over
def _strict(value: str, fmt: str, what: str) -> datetime:
    try:
        parsed = datetime.strptime(value, fmt)
    except ValueError:
        parsed = None
    # strptime also takes 2026-6-30: insist on the exact form so a shifted field is caught.
    if parsed is None or parsed.strftime(fmt) != value:
        raise ValueError(f"is not a {what} in the form {_human(fmt)}, got {value!r}")
    return parsed


def _text(spec: FieldSpec, value: str) -> str:
    if spec.type == "code" and not (value.isascii() and value.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"must be letters and digits, got {value!r}")
    try:
        size = len(value.encode("cp932"))
    except UnicodeEncodeError as exc:
        if spec.charset == "cp932":  # written back in cp932 files (receipts, agency data)
            raise ValueError(f"contains {value[exc.start]!r}, which cannot be written in cp932") from None
        size = len(value.encode("utf-8"))
    if spec.max_bytes is not None and size > spec.max_bytes:
        raise ValueError(f"is longer than {spec.max_bytes} bytes ({size})")
    return value


_CONVERTERS: dict[str, Callable[[FieldSpec, str], Any]] = {
    "digits": _digits, "integer": _integer, "date": _date, "time": _time, "text": _text, "code": _text,
    "wareki": _wareki,
}


def _human(fmt: str | None) -> str:
    return (fmt or "%Y-%m-%d").replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD") \
        .replace("%H", "HH").replace("%M", "MM").replace("%S", "SS")


def read(layout: Layout, data: bytes, *, first: int = 1, whole: bool = True,
         texts: bool = False) -> tuple[list[Record], list[LineError]]:
    """Read every record of `data`; return the records and every error found (capped).

    A fixed-width file can also be read in pieces cut after a CRLF: `first` numbers the
    piece's first record, and `whole=False` leaves the checks of the file as a whole
    (`fixed_file_problem`) to the caller. `texts=True` keeps each CSV record's decoded line in
    `Record.text` (the line as received, evidence for a person; a fixed-width record is found
    again in the file's bytes by its number); off, a large file costs no more memory than its values.
    """
    items = _read_csv(layout, data, texts) if layout.format == "csv" else _read_fixed(layout, data, first, whole)
    records: list[Record] = []
    errors: list[LineError] = []
    for item in items:
        if isinstance(item, LineError):
            errors.append(item)
            if len(errors) >= MAX_ERRORS:
                errors.append(LineError(0, None, f"more than {MAX_ERRORS} errors; stopped reading"))
                break
        else:
            records.append(item)
    return records, errors


def field_values(layout: Layout, data: bytes, name: str, *, limit: int | None = None) -> list[str]:
    """The data records' values of the field `name`, as written, in the file's order (at most `limit`).

    A quick look into a file before it is read in full (which wards a core-system file names, to
    find it on record): a record that cannot be read is passed over, not reported; `read` is
    what checks a file. Empty when the layout's data records have no such field.
    """
    spec = layout.data
    index = next((i for i, fspec in enumerate(spec.fields) if fspec.name == name), None)
    if index is None:
        return []
    values: list[str] = []
    if layout.format == "csv":  # line by line, as `read` cuts them: the first line alone costs no more than itself
        stream = io.BytesIO(data)
        stream.seek(3 if data.startswith(b"\xef\xbb\xbf") else 0)
        rows = (_csv_fields(raw.rstrip(b"\r\n").decode(layout.encoding, errors="replace")) for raw in stream)
        column: int | None = index
        if layout.header_line:
            header = next(rows, None)
            columns = None if header is None else header_columns(spec, header)
            column = None if columns is None else columns[index]
        if column is None:
            return []
        values_of: Iterator[str] = (row[column].strip() for row in rows if len(row) > column)
    else:
        start, end = _offsets(spec, layout.kind_length)[index]
        kind = (spec.kind or "").encode("ascii")
        values_of = (raw[start:end].decode("ascii", errors="replace").strip() for raw in _fixed_records(layout, data)
                     if raw[:layout.kind_length] == kind)
    for value in values_of:
        values.append(value)
        if limit is not None and len(values) >= limit:
            break
    return values


def _csv_fields(text: str) -> list[str]:
    """One CSV line's fields (a line with no quote is split as it stands; an empty line has none)."""
    if not text:
        return []
    return text.split(",") if '"' not in text else next(csv.reader([text]), [])


def _fields(spec: RecordSpec, line: int, raws: list[str | None], checked: bool = False) -> Record | list[LineError]:
    """Convert each field; a None raw (undecodable, already reported) is not converted again."""
    values: dict[str, Any] = {}
    errors: list[LineError] = []
    for fspec, raw in zip(spec.fields, raws, strict=True):
        if raw is None or fspec.type == "filler":  # fillers carry nothing: not in the values
            continue
        try:
            values[fspec.name] = convert(fspec, raw, checked=checked)
        except ValueError as exc:
            errors.append(LineError(line, fspec.name, str(exc)))
    return errors or Record(line, spec.name, values)


def _read_csv(layout: Layout, data: bytes, texts: bool = False) -> Iterator[Record | LineError]:
    spec = layout.data
    names = [f.name for f in spec.fields]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        yield LineError(0, None, "the file is empty")
        return
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    wrong = _wrong_encoding(layout, lines)
    if wrong is not None:
        yield wrong
        return
    columns: list[int | None] = list(range(len(names)))  # each field's column in the file, None when absent
    for number, raw_line in enumerate(lines, start=1):
        try:
            text = raw_line.rstrip(b"\r").decode(layout.encoding)
        except UnicodeDecodeError as exc:
            yield LineError(number, None, f"is not valid {layout.encoding} (byte 0x{raw_line[exc.start]:02x} "
                                          f"at position {exc.start + 1})")
            continue
        row = next(csv.reader(io.StringIO(text)), [])
        if number == 1 and layout.header_line:
            found = header_columns(spec, row)
            if found is None:
                yield LineError(1, None, header_rule(spec))
            else:
                columns = found
            continue
        row_width = sum(c is not None for c in columns)
        if len(row) != row_width:
            yield LineError(number, None, f"has {len(row)} columns, expected {row_width} "
                                          "(truncated or shifted line?)")
            continue
        result = _fields(spec, number, [row[c] if c is not None else "" for c in columns])
        if isinstance(result, list):
            yield from result
            continue
        if texts:
            result.text = text
        yield result
    if len(lines) < 2 and layout.header_line:
        yield LineError(0, None, "the file has a header but no records")


def header_columns(spec: RecordSpec, header: list[str]) -> list[int | None] | None:
    """Each field's column in a CSV header, by name (None: an absent-allowed column left out); None if wrong.

    Every column is named once; a column the layout does not know, or a missing one that
    may not be absent, makes the header wrong.
    """
    names = [f.name for f in spec.fields]
    if header == names:
        return list(range(len(names)))
    if not any(f.absent for f in spec.fields):  # a layout without optional columns: exactly as listed
        return None
    if len(set(header)) != len(header) or not set(header) <= set(names):
        return None
    position = {name: index for index, name in enumerate(header)}
    if any(f.name not in position and not f.absent for f in spec.fields):
        return None
    return [position.get(name) for name in names]


def header_rule(spec: RecordSpec) -> str:
    required = ",".join(f.name for f in spec.fields if not f.absent)
    extra = [f.name for f in spec.fields if f.absent]
    return f"header must be {required}" + (f" (in any order, and may add {', '.join(extra)})" if extra else "")


def _wrong_encoding(layout: Layout, lines: list[bytes]) -> LineError | None:
    """One clear error for a whole file saved in cp932 where UTF-8 is expected."""
    for number, raw_line in enumerate(lines, start=1):
        try:
            raw_line.decode(layout.encoding)
        except UnicodeDecodeError:
            try:
                b"\n".join(lines).decode("cp932")
            except UnicodeDecodeError:
                return None  # not cp932 either: report line by line
            return LineError(number, None, f"is not valid {layout.encoding}: the file looks like Shift_JIS "
                                           f"(cp932); save it as {layout.encoding} or use a cp932 layout")
    return None


def _read_fixed(layout: Layout, data: bytes, first: int, whole: bool) -> Iterator[Record | LineError]:
    assert layout.record_length is not None
    problem = fixed_file_problem(layout, data) if whole else None
    if problem is not None:
        yield problem
        if problem is not TRUNCATED:  # a truncated file is still read: its last record is named
            return
    by_kind = {spec.kind: spec for spec in layout.records.values()}
    cuts = {spec.kind: _offsets(spec, layout.kind_length) for spec in layout.records.values()}
    compiled = {spec.kind: _compiled(spec, cuts[spec.kind]) for spec in layout.records.values()}
    for number, raw in enumerate(split_fixed(layout, data), start=first):
        if len(raw) != layout.record_length:
            yield LineError(number, None, f"record is {len(raw)} bytes, expected {layout.record_length}")
            continue
        kind = raw[: layout.kind_length].decode("ascii", errors="replace")
        spec = by_kind.get(kind)
        if spec is None:
            yield LineError(number, "record_kind", f"unknown record kind {kind!r}")
            continue
        result = _fixed_fields(layout, spec, number, raw, cuts[kind], compiled[kind])
        if isinstance(result, list):
            yield from result
        else:
            yield result


def split_fixed(layout: Layout, data: bytes) -> list[bytes]:
    """Cut a fixed-width file into its records: at each CRLF, or by length where records have none."""
    assert layout.record_length is not None
    if layout.line_breaks == "optional" and b"\r\n" not in data:
        size = layout.record_length
        return [data[start:start + size] for start in range(0, len(data), size)]
    records = data.split(b"\r\n")
    if records[-1] == b"":
        records.pop()
    return records


def _fixed_records(layout: Layout, data: bytes) -> Iterator[bytes]:
    """`split_fixed`'s records one by one, each cut when it is reached."""
    assert layout.record_length is not None
    if layout.line_breaks == "optional" and b"\r\n" not in data:
        size = layout.record_length
        yield from (data[start:start + size] for start in range(0, len(data), size))
        return
    start = 0
    while start < len(data):
        end = data.find(b"\r\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start:end]
        start = end + 2


def fixed_file_problem(layout: Layout, data: bytes) -> LineError | None:
    """Return the one error that makes reading a fixed-width file record by record pointless."""
    if not data:
        return LineError(0, None, "the file is empty")
    if b"\r\n" not in data and b"\n" in data:
        needs = "CRLF or no line breaks" if layout.line_breaks == "optional" else "CRLF"
        return LineError(0, None, f"line ends are LF; {layout.name} needs {needs}")
    if layout.line_breaks == "optional" and b"\r\n" not in data and len(data) % (layout.record_length or 1):
        return _unbroken_length_problem(layout, data)
    if layout.encoding in ("cp932", JIS_X_0201) and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:  # real cp932 Japanese text is almost never valid UTF-8
            return LineError(0, None, f"the file is UTF-8; {layout.name} files are cp932 (Shift_JIS)")
    if not data.endswith(b"\r\n") and not (layout.line_breaks == "optional" and b"\r\n" not in data):
        return TRUNCATED
    return None


def _unbroken_length_problem(layout: Layout, data: bytes) -> LineError:
    """Records without line breaks, one of them short or long: every record after it is shifted."""
    size = layout.record_length or 1
    kinds = {spec.kind.encode("ascii") for spec in layout.records.values() if spec.kind}
    first = next((n for n in range(len(data) // size) if data[n * size:n * size + layout.kind_length] not in kinds),
                 None)
    where = f"; record {first + 1} is the first that does not start with a record kind" if first is not None else ""
    return LineError(0, None, f"the file has no line breaks and is {len(data):,} bytes, not a whole number of "
                              f"{size}-byte records{where}", "record")


TRUNCATED = LineError(0, None, "the file does not end with CRLF: truncated?")

# 全銀協 files are one byte a character: ASCII and half-width kana (JIS X 0201), read as cp932
# (which gives the same characters for those bytes) once every byte is known to be one of them.
JIS_X_0201 = "jisx0201"
_JIS_X_0201_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0xA1, 0xE0))


def codec(encoding: str) -> str:
    """The Python codec that reads a layout's encoding."""
    return "cp932" if encoding == JIS_X_0201 else encoding


def _fixed_fields(layout: Layout, spec: RecordSpec, number: int, raw: bytes, cuts: tuple[tuple[int, int], ...],
                  compiled: _Compiled) -> Record | list[LineError]:
    if raw.isascii():  # the common case: decode once, cut by offsets (bytes and characters agree)
        text = raw.decode("ascii")
        if text.isprintable():  # ASCII without control characters: the compiled converters
            try:
                return Record(number, spec.name, {name: conv(text[start:end]) for name, conv, start, end in compiled})
            except ValueError:
                pass  # a field is wrong: the full path below names every one
        return _fields(spec, number, [text[start:end] for start, end in cuts], not _CONTROL.search(text))
    raws: list[str | None] = []
    errors: list[LineError] = []
    offset = layout.kind_length
    for fspec in spec.fields:
        chunk = raw[offset: offset + (fspec.length or 0)]
        offset += fspec.length or 0
        if layout.encoding == JIS_X_0201:
            wrong = chunk.translate(None, _JIS_X_0201_BYTES)
            if wrong:
                errors.append(LineError(number, fspec.name, f"byte 0x{wrong[0]:02x} (record position "
                                                            f"{offset - len(chunk) + chunk.index(wrong[0]) + 1}) is "
                                                            "not JIS X 0201 (letters, digits, half-width kana)"))
                raws.append(None)
                continue
        try:
            raws.append(chunk.decode(codec(layout.encoding)))
        except UnicodeDecodeError:
            errors.append(LineError(number, fspec.name, f"is not valid {layout.encoding} (a broken or "
                                                        "split two-byte character?)"))
            raws.append(None)
    result = _fields(spec, number, raws)
    return errors + result if isinstance(result, list) else (errors or result)


_Compiled = tuple[tuple[str, Callable[[str], Any], int, int], ...]  # (field, converter, start, end)


@lru_cache(maxsize=64)
def _compiled(spec: RecordSpec, cuts: tuple[tuple[int, int], ...]) -> _Compiled:
    return tuple((f.name, _fast_converter(f), start, end)
                 for f, (start, end) in zip(spec.fields, cuts, strict=True) if f.type != "filler")


_UNSEEN = object()


def _fast_converter(spec: FieldSpec) -> Callable[[str], Any]:
    """`convert` specialised once for one field, for text known to hold no control characters.

    The same value, or the same ValueError: a cheap test takes the common case (a digits
    field filled with digits; a date, time or short text seen before in this field) and
    everything else goes through `convert` itself.
    """
    def full(raw: str) -> Any:
        return convert(spec, raw, checked=True)

    if (spec.type == "digits" and spec.length and spec.prefix is None and not spec.null_values and not spec.choices
            and (spec.max_bytes is None or spec.max_bytes >= spec.length)):
        width = spec.length

        def digits(raw: str) -> Any:
            return raw if len(raw) == width and raw.isascii() and raw.isdigit() else full(raw)
        return digits
    if (spec.type == "code" and spec.prefix is None and not spec.null_values and spec.max_bytes is None
            and not spec.choices):
        def code(raw: str) -> Any:  # letters and digits filling the field: no spaces to strip
            return raw if raw.isascii() and raw.isalnum() else full(raw)
        return code
    if spec.type in ("date", "time", "wareki") or (spec.type == "text" and (spec.length or spec.max_bytes or 99) <= 8):
        seen: dict[str, Any] = {}  # a file holds a few hundred dates and at most 1,440 minutes, over and over

        def repeated(raw: str) -> Any:
            value = seen.get(raw, _UNSEEN)
            if value is _UNSEEN:
                value = full(raw)  # raises for a bad value: only good ones are remembered
                if len(seen) < 100_000:
                    seen[raw] = value
            return value
        return repeated
    return full


def _offsets(spec: RecordSpec, start: int) -> tuple[tuple[int, int], ...]:
    cuts = []
    for fspec in spec.fields:
        cuts.append((start, start + (fspec.length or 0)))
        start += fspec.length or 0
    return tuple(cuts)


def encode_fixed(layout: Layout, kind: str, values: dict[str, Any]) -> bytes:
    """Return one fixed-width record (without CRLF); text padded by bytes, never split."""
    spec = layout.records[kind]
    parts = [(spec.kind or "").encode("ascii")]
    for fspec in spec.fields:
        parts.append(encode_field(layout, fspec, values.get(fspec.name)))
    return b"".join(parts)


def encode_field(layout: Layout, spec: FieldSpec, value: Any) -> bytes:
    """One field of a fixed-width record: text padded by bytes, never split; numbers zero-padded."""
    size = spec.length or 0
    if spec.type == "filler" or value is None:
        return b" " * size
    if spec.type == "integer":
        return f"{value:0{size}d}".encode("ascii")
    if spec.type == "wareki":
        assert spec.era is not None
        return to_wareki(value, spec.era).encode("ascii")
    if spec.type in ("date", "time"):
        return value.strftime(spec.format or "%Y%m%d").encode("ascii")
    encoded = b""
    for char in str(value):  # cut by bytes without splitting a two-byte character
        piece = char.encode(codec(layout.encoding))
        if len(encoded) + len(piece) > size:
            break
        encoded += piece
    return encoded.ljust(size, b" ")


def write_csv_line(layout: Layout, values: dict[str, Any]) -> str:
    """Return one CSV data line (no newline) for `values` in the layout's column order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="")
    writer.writerow([csv_value(f, values.get(f.name)) for f in layout.data.fields])
    return out.getvalue()


def csv_value(spec: FieldSpec, value: Any) -> str:
    """One value as a CSV field of `spec`: dates and times in its format, None as empty."""
    if isinstance(value, date | time):
        return value.strftime(spec.format or ("%Y-%m-%d" if isinstance(value, date) else "%H:%M"))
    return "" if value is None else str(value)


def csv_header(layout: Layout) -> str:
    return ",".join(f.name for f in layout.data.fields)
