"""Files sent to another system, whatever the feed: rendered through a layout, numbered, kept, resent.

The receipts feed (`reconciliation.receipts`, for the core system) and the counter revenue
feed (`reconciliation.counter_revenue`, for financial accounting) share this: a file is
encoded from a layout table, each value checked to read back unchanged before it leaves (a
value the layout would cut or change is refused, never sent wrong); each municipality's
files of a feed are numbered 1, 2, ... in `OutboundFile` (the database refuses a number
twice), their bytes kept so a resend is the same file byte for byte; a `sha256sum` sidecar
goes beside every file.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import os
import tempfile
import tomllib
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, time
from itertools import repeat
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from domain import layouts
from domain.layouts import Layout, LayoutError
from gateway.errors import GatewayError, NotFound
from gateway.models import OutboundFile

Records = list[tuple[str, dict[str, Any]]]  # (record name in the layout, its values by field name)


@dataclass(frozen=True)
class ExportResult:
    data: bytes
    count: int
    total: int  # yen: records less reversals (receipts), the lines' signed amounts (counter revenue)
    sha256: str  # hex digest of `data`
    layout: str
    sequence: int = 0  # 0: a review file outside the sequence

    def sidecar(self, filename: str) -> bytes:
        """Return the `sha256sum` line for the file saved as `filename`."""
        return f"{self.sha256}  {filename}\n".encode("ascii")


def load_feed_layout(name_or_path: str, directory: Path, prefix: str, fields: dict[str, frozenset[str]], *,
                     what: str) -> Layout:
    """Load a feed's shipped layout by name (those of `directory` named `prefix`...), or a ward's own .toml.

    The feeds share one folder of tables; each offers only its own by name. `fields`: what
    each record of the feed's files may name (a layout leaves fields out or reorders them,
    never invents one). Raises LayoutError for an unknown name, a broken table, a record or
    a field the feed does not have.
    """
    shipped = [name for name in layouts.available_layouts(directory) if name.startswith(prefix)]
    if not name_or_path.endswith(".toml") and name_or_path not in shipped:
        raise LayoutError(f"unknown layout {name_or_path!r}; shipped: {', '.join(shipped)}")
    try:
        layout = layouts.load_layout(name_or_path, directory)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LayoutError(f"layout {name_or_path!r} is not a usable layout table: {exc}") from exc
    if "data" not in layout.records:
        raise LayoutError(f"layout {layout.name}: no data records")
    for spec in layout.records.values():
        allowed = fields.get(spec.name)
        if allowed is None or (layout.format == "csv" and spec.name != "data"):
            raise LayoutError(f"layout {layout.name}: {what} files have no {spec.name!r} records")
        unknown = [f.name for f in spec.fields if f.type != "filler" and f.name not in allowed]
        if unknown:
            raise LayoutError(f"layout {layout.name}: {spec.name} records have no field {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(allowed))}")
    return layout


@contextmanager
def bulk() -> Iterator[None]:
    """Millions of rows and cells made at once, none of them in a cycle: no cyclic collection meanwhile.

    The collector would walk every object made so far again and again while they are made
    (a third of the time of reading a million rows).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class Packed:
    """A file's SHA-256 (hex) and its bytes compressed to keep; both known when `packing` ends."""

    sha256: str = ""
    content: bytes = b""


@contextmanager
def packing(data: bytes) -> Iterator[Packed]:
    """Hash and compress `data` in two threads while the caller goes on (both let go of the GIL)."""
    packed = Packed()
    with ThreadPoolExecutor(2, thread_name_prefix="packing") as pool:
        digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
        compressed = pool.submit(zlib.compress, data, 1)
        yield packed
        packed.sha256, packed.content = digest.result(), compressed.result()


def result(layout: Layout, data: bytes, count: int, total: int, sequence: int) -> ExportResult:
    return ExportResult(data, count, total, hashlib.sha256(data).hexdigest(), layout.name, sequence)


def encode_records(layout: Layout, records: Records, *, what: str, error: type[GatewayError]) -> bytes:
    """The file's bytes from its records one by one (see `encode_blocks`: a run of records of a kind is a block)."""
    runs: list[tuple[str, list[dict[str, Any]]]] = []
    for kind, values in records:
        if kind in layout.records:
            if runs and runs[-1][0] == kind:
                runs[-1][1].append(values)
            else:
                runs.append((kind, [values]))
    blocks = [Block(kind, {field.name: [values.get(field.name) for values in run]
                           for field in layout.records[kind].fields}, len(run)) for kind, run in runs]
    return encode_blocks(layout, blocks, what=what, error=error)


@dataclass(frozen=True)
class Same:
    """A column holding one value on every line (a municipality code, a file's sequence number)."""

    value: Any


@dataclass(frozen=True)
class Block:
    """`count` consecutive records of one kind, given by columns: each field's values, by field name.

    A column is a sequence of `count` values or `Same`; a field without a column is empty.
    """

    kind: str
    columns: Mapping[str, Sequence[Any] | Same]
    count: int


def encode_blocks(layout: Layout, blocks: Sequence[Block], *, what: str, error: type[GatewayError]) -> bytes:
    """The file's bytes; the same blocks always give the same bytes.

    Raises `error` when a value would not read back unchanged (a layout that cuts it,
    overflows, strips or cannot encode it), naming its line and field: a file for another
    system must never post a wrong value. The check is the reader's own (`layouts.convert`)
    on the field as written, made once per distinct value of a column, and for texts, times
    and dates once per *shape* (see `_shape`): a million records hold few distinct values or
    shapes in most fields, so the check costs little more than the writing. A file is
    written a column at a time: each distinct value of a field is written once, and a line
    is the join of its cells.
    """
    writer = _Writer(layout, what, error)
    csv_file = layout.format == "csv"
    first = 2 if csv_file and layout.header_line else 1
    lines: list[Any] = [layouts.csv_header(layout)] if csv_file and layout.header_line else []
    for block in blocks:
        if block.kind not in layout.records or block.count == 0:
            continue
        lines += writer.block(block, first)
        first += block.count
    if not lines:
        return b""
    if csv_file:  # CRLF, as the receiving systems' tools expect; every text was checked to encode
        return _encode("\r\n".join(lines) + "\r\n", layout.encoding)
    return b"\r\n".join(lines) + b"\r\n"


@functools.cache
def _ascii_compatible(encoding: str) -> bool:
    return "".join(map(chr, range(128))).encode(encoding) == bytes(range(128))


def _encode(text: str, encoding: str) -> bytes:
    """`text` in `encoding`; through the faster ASCII codec when the text is ASCII and the encoding agrees."""
    if text.isascii() and _ascii_compatible(encoding):
        return text.encode("ascii")
    return text.encode(encoding)


# A text's shape: each ASCII digit, upper- and lower-case letter stands for its class. Whether
# a text reads back unchanged (its characters, byte length, spaces at its ends) depends only
# on its shape, so one check serves every id, key and number written alike.
_SHAPE = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "0" * 10 + "A" * 26 + "a" * 26)
def _shape(value: Any) -> Any:
    """What decides whether `value` reads back unchanged through any format of its field, or None.

    A text: its shape. A time: which of its parts are not zero (a format without seconds
    loses a time's seconds only when it has some). A date: its year, and whether its month
    and day are not the first (a format without them loses only those).
    """
    kind = type(value)
    if kind is str:
        return value.translate(_SHAPE)
    if kind is time:
        return ("time", value.hour != 0, value.minute != 0, value.second != 0, value.microsecond != 0,
                value.tzinfo)
    if kind is date:
        return ("date", value.year, value.month != 1, value.day != 1)
    return None


_TEXTS, _INTEGERS = {str, type(None)}, {int, type(None)}


def _by_shape(spec: layouts.FieldSpec) -> bool:
    """Whether values of one shape read back alike through `spec`.

    Not when the field names particular texts (choices, null values, a prefix, a default):
    00000000 and 12345678 share a shape, but one of them may mean "none".
    """
    return not (spec.choices or spec.null_values or spec.prefix or spec.default is not None)


class _Refused(Exception):
    """A value the field cannot hold, and why (the caller names its line)."""


class _Writer:
    """Writes blocks of records column by column; remembers the shapes checked per record kind and field."""

    def __init__(self, layout: Layout, what: str, error: type[GatewayError]) -> None:
        self.layout, self.what, self.error = layout, what, error
        self.csv = layout.format == "csv"
        self.shapes: dict[tuple[str, str], set[Any]] = {}

    def block(self, block: Block, first_line: int) -> list[Any]:
        """The block's lines: text for a CSV layout (encoded with the file), bytes for a fixed one."""
        spec = self.layout.records[block.kind]
        cells = [self._column(block, field, first_line) for field in spec.fields]
        if self.csv:
            return list(map(",".join, zip(*cells, strict=True)))
        prefix = (spec.kind or "").encode("ascii")
        return [prefix + b"".join(row) for row in zip(*cells, strict=True)]

    def _column(self, block: Block, field: layouts.FieldSpec, first_line: int) -> Sequence[Any]:
        values = block.columns.get(field.name, Same(None))
        shapes = self.shapes.setdefault((block.kind, field.name), set())
        if isinstance(values, Same):
            return [self._checked(field, values.value, shapes, lambda: first_line)] * block.count
        if len(values) != block.count:
            raise ValueError(f"{block.kind} column {field.name} has {len(values)} values for {block.count} records")

        def line_of(value: Any) -> Callable[[], int]:
            return lambda: first_line + values.index(value)

        kinds = set(map(type, values))
        if self.csv and kinds <= _TEXTS and _by_shape(field):
            return self._texts(field, values, shapes, line_of)
        if self.csv and kinds <= _INTEGERS and field.type == "integer" and _by_shape(field):
            return self._integers(field, values, shapes, line_of)
        cells = {value: self._checked(field, value, shapes, line_of(value))
                 for value in dict.fromkeys(values)}  # each distinct value once, in the order of the lines
        return list(map(cells.__getitem__, values))

    def _texts(self, field: layouts.FieldSpec, values: Sequence[str | None], shapes: set[Any],
               line_of: Callable[[Any], Callable[[], int]]) -> Sequence[Any]:
        """A CSV column of texts (ids, keys, codes) and Nones: each new shape checked on its first value.

        A text needs no quotes unless its shape holds a comma or a quote, and then its cell
        is the text itself: such a column is written as it is, Nones aside.
        """
        empty = self._checked(field, None, shapes, line_of(None)) if None in values else None
        texts: Sequence[str] = values if empty is None else [v for v in values if v is not None]  # type: ignore[assignment]
        if len(set(texts[:1000])) < 100:  # few distinct texts (kinds, codes): their shapes alone
            texts = list(dict.fromkeys(texts))
        forms = "\x00".join(texts).translate(_SHAPE).split("\x00")  # one pass over the column's characters
        if len(forms) != len(texts):  # a text holds a NUL itself (and will be refused)
            forms = list(map(str.translate, texts, repeat(_SHAPE, len(texts))))
        kinds = set(forms)
        new = kinds - shapes
        if new:
            if len(new) > 8:  # many shapes (texts in kanji): each one's first text, in one pass
                first_of = dict(zip(reversed(forms), reversed(range(len(forms))), strict=True))
                firsts = sorted(first_of[form] for form in new)
            else:
                firsts = sorted(forms.index(form) for form in new)
            for n in firsts:
                self._checked(field, texts[n], shapes, line_of(texts[n]))
        if any("," in form or '"' in form for form in kinds):
            return [empty if value is None else self._cell(field, value) for value in values]
        if empty is None:
            return values  # no None among them
        return [empty if value is None else value for value in values]

    def _integers(self, field: layouts.FieldSpec, values: Sequence[int | None], shapes: set[Any],
                  line_of: Callable[[Any], Callable[[], int]]) -> Sequence[str]:
        """A CSV column of whole numbers and Nones: the smallest and the largest checked.

        A number is written in its decimal digits and read back as itself unless it is out of
        the field's range, and the numbers a field holds are all those between two bounds: if
        the smallest and the largest read back, every one between does.
        """
        cells: dict[int | None, Any] = dict.fromkeys(values)  # each distinct number, then its digits
        numbers = [number for number in cells if number is not None]
        if numbers:
            low, high = min(numbers), max(numbers)
            self._checked(field, low, shapes, line_of(low))
            self._checked(field, high, shapes, line_of(high))
        for number in numbers:
            cells[number] = str(number)
        if None in cells:
            cells[None] = self._checked(field, None, shapes, line_of(None))
        return list(map(cells.__getitem__, values))

    def _checked(self, spec: layouts.FieldSpec, value: Any, shapes: set[Any], line: Callable[[], int]) -> Any:
        """The cell of `value`, checked unless a value of its shape was; `line()` names it in a refusal."""
        shape = _shape(value) if _by_shape(spec) else None
        try:
            if shape is not None and shape in shapes:
                return self._cell(spec, value)
            cell = self._write(spec, value)
        except _Refused as refused:
            unit = "line" if self.csv else "record"
            raise self.error(f"layout {self.layout.name} cannot hold these {self.what}: {unit} {line()}, "
                             f"field {spec.name}: {refused}") from None
        if shape is not None:
            shapes.add(shape)
        return cell

    def _cell(self, spec: layouts.FieldSpec, value: Any) -> Any:
        """The field as written (not checked): text for CSV, bytes for a fixed layout."""
        if self.csv:
            text = value if type(value) is str else layouts.csv_value(spec, value)
            return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text
        return layouts.encode_field(self.layout, spec, value)

    def _write(self, spec: layouts.FieldSpec, value: Any) -> Any:
        """The field as written, checked to read back as `value`; raises _Refused."""
        layout = self.layout
        try:
            cell = self._cell(spec, value)
            if self.csv:
                cell.encode(layout.encoding)
                text = layouts.csv_value(spec, value)
            else:
                text = cell.decode(layout.encoding)
                if spec.length is not None and len(cell) != spec.length:
                    raise ValueError(f"takes {len(cell)} bytes, the field has {spec.length}")
        except UnicodeEncodeError as exc:
            raise _Refused(f"{exc.object[exc.start:exc.end]!r} cannot be written in {layout.encoding}") from None
        except ValueError as exc:
            raise _Refused(f"{value!r} {exc}") from None
        if spec.type == "filler":
            return cell
        try:
            back = layouts.convert(spec, text)
        except ValueError as exc:
            back = f"nothing ({exc})"
        if back != value and not (back in ("", None) and value is None):
            raise _Refused(f"{value!r} would be read back as {back!r}")
        return cell


def new_file(session: Session, municipality_id: int, feed: str, layout: str, actor: str) -> OutboundFile:
    """The next file of the feed's sequence, added and flushed in the caller's transaction.

    Two exports at once take the same number: the second one's commit (or this flush)
    fails on the unique constraint, and the caller turns that into a Conflict.
    """
    sequence = 1 + (session.scalar(select(func.max(OutboundFile.sequence)).where(
        OutboundFile.municipality_id == municipality_id, OutboundFile.feed == feed)) or 0)
    sent = OutboundFile(municipality_id=municipality_id, feed=feed, sequence=sequence, layout=layout,
                        record_count=0, total_amount=0, sha256="", content=b"", created_by=actor[:100])
    session.add(sent)
    session.flush()
    return sent


def keep(sent: OutboundFile, exported: ExportResult, *, content: bytes | None = None) -> None:
    """Keep the file's figures and bytes (zlib; `content` when `packing` compressed them already) on its row."""
    sent.record_count, sent.total_amount, sent.sha256 = exported.count, exported.total, exported.sha256
    sent.content = zlib.compress(exported.data, 1) if content is None else content  # level 1: 120 MiB a million


def kept_file(session: Session, municipality_id: int, feed: str, sequence: int, *, name: str,
              error: type[GatewayError]) -> ExportResult:
    """File `sequence` of the feed as it was sent (`name` names it in errors).

    Raises NotFound for a number never sent, `error` for kept bytes that no longer match.
    """
    sent = session.scalar(select(OutboundFile).where(OutboundFile.municipality_id == municipality_id,
                                                     OutboundFile.feed == feed, OutboundFile.sequence == sequence))
    if sent is None:
        raise NotFound(f"{name} was never sent")
    data = zlib.decompress(sent.content)
    if hashlib.sha256(data).hexdigest() != sent.sha256:
        raise error(f"{name}: the kept bytes do not match their SHA-256")
    return ExportResult(data, sent.record_count, sent.total_amount, sent.sha256, sent.layout, sent.sequence)


def sent_files(session: Session, municipality_id: int, feed: str) -> list[OutboundFile]:
    """The files sent, newest first (without loading their bytes)."""
    return list(session.scalars(select(OutboundFile).options(defer(OutboundFile.content))
                                .where(OutboundFile.municipality_id == municipality_id, OutboundFile.feed == feed)
                                .order_by(OutboundFile.sequence.desc())))


def write_export(exported: ExportResult, out: Path) -> Path:
    """Write the file to `out` and its `sha256sum` line to `<out>.sha256`, each atomically.

    Returns the sidecar's path. The file goes first: a reader never finds a sidecar that
    vouches for bytes not yet in place (a stale one simply does not match).
    """
    sidecar = out.with_name(out.name + ".sha256")
    write_atomically(out, exported.data)
    write_atomically(sidecar, exported.sidecar(out.name))
    return sidecar


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsynced, then renamed."""
    # mkstemp's 0600 is kept: the file holds payment data until the transfer path takes it.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
