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

import hashlib
import os
import tempfile
import tomllib
import zlib
from dataclasses import dataclass
from datetime import date, time
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


def result(layout: Layout, data: bytes, count: int, total: int, sequence: int) -> ExportResult:
    return ExportResult(data, count, total, hashlib.sha256(data).hexdigest(), layout.name, sequence)


def encode_records(layout: Layout, records: Records, *, what: str, error: type[GatewayError]) -> bytes:
    """The file's bytes; the same records always give the same bytes.

    Raises `error` when a value would not read back unchanged (a layout that cuts it,
    overflows, strips or cannot encode it), naming its line and field: a file for another
    system must never post a wrong value. The check is the reader's own
    (`layouts.convert`) on the field as written, made once per distinct value of a field: a
    million records hold few distinct values in most fields, so the check costs little more
    than the writing.
    """
    writer = _Writer(layout, what, error)
    lines = [layouts.csv_header(layout).encode(layout.encoding)] \
        if layout.format == "csv" and layout.header_line else []
    first = len(lines) + 1
    lines += [writer.record(kind, values, n) for n, (kind, values) in enumerate(records, start=first)
              if kind in layout.records]
    return b"".join(line + b"\r\n" for line in lines)  # CRLF, as the receiving systems' tools expect


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


_REMEMBERED = 50_000  # cells kept per field by value; beyond, a field of unique values is written afresh


class _Writer:
    """Writes the records of a layout, each distinct value (or text shape) of a field checked once."""

    def __init__(self, layout: Layout, what: str, error: type[GatewayError]) -> None:
        self.layout, self.what, self.error = layout, what, error
        self.unit = "line" if layout.format == "csv" else "record"
        # Per record kind: each field with the cells written for its values so far, and the text shapes checked.
        self.fields: dict[str, list[tuple[layouts.FieldSpec, dict[tuple[type, Any], bytes], set[Any]]]] = {}

    def record(self, kind: str, values: dict[str, Any], line: int) -> bytes:
        fields = self.fields.get(kind)
        if fields is None:
            fields = self.fields[kind] = [(field, {}, set()) for field in self.layout.records[kind].fields]
        cells = []
        for field, known, shapes in fields:
            value = values.get(field.name)
            key = (type(value), value)
            cell = known.get(key)
            if cell is None:
                shape = _shape(value)
                if shape is not None and shape in shapes:
                    cell = self._cell(field, value)
                else:
                    cell = self._write(field, value, line)
                    if shape is not None:
                        shapes.add(shape)
                if len(known) < _REMEMBERED:
                    known[key] = cell
            cells.append(cell)
        if self.layout.format == "csv":
            return b",".join(cells)
        return (self.layout.records[kind].kind or "").encode("ascii") + b"".join(cells)

    def _cell(self, spec: layouts.FieldSpec, value: Any) -> bytes:
        """The field as written (not checked)."""
        if self.layout.format == "csv":
            text = layouts.csv_value(spec, value)
            cell = text.encode(self.layout.encoding)
            return b'"' + cell.replace(b'"', b'""') + b'"' if ("," in text or '"' in text) else cell
        return layouts.encode_field(self.layout, spec, value)

    def _refuse(self, line: int, spec: layouts.FieldSpec, why: str) -> GatewayError:
        return self.error(f"layout {self.layout.name} cannot hold these {self.what}: {self.unit} {line}, "
                          f"field {spec.name}: {why}")

    def _write(self, spec: layouts.FieldSpec, value: Any, line: int) -> bytes:
        """The field as written, checked to read back as `value`."""
        layout = self.layout
        try:
            cell = self._cell(spec, value)
            text = cell.decode(layout.encoding)
            if layout.format == "csv":
                text = layouts.csv_value(spec, value)
            elif spec.length is not None and len(cell) != spec.length:
                raise ValueError(f"takes {len(cell)} bytes, the field has {spec.length}")
        except UnicodeEncodeError as exc:
            raise self._refuse(line, spec, f"{exc.object[exc.start:exc.end]!r} cannot be written in "
                                           f"{layout.encoding}") from None
        except ValueError as exc:
            raise self._refuse(line, spec, f"{value!r} {exc}") from None
        if spec.type == "filler":
            return cell
        try:
            back = layouts.convert(spec, text)
        except ValueError as exc:
            back = f"nothing ({exc})"
        if back != value and not (back in ("", None) and value is None):
            raise self._refuse(line, spec, f"{value!r} would be read back as {back!r}")
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


def keep(sent: OutboundFile, exported: ExportResult) -> None:
    """Keep the file's figures and bytes (zlib) on its row."""
    sent.record_count, sent.total_amount, sent.sha256 = exported.count, exported.total, exported.sha256
    sent.content = zlib.compress(exported.data, 6)


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
