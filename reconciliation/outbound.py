"""Files sent to another system, whatever the feed: rendered through a layout, numbered, kept, resent.

The receipts feed (`reconciliation.receipts`, for the core system) and the counter revenue
feed (`reconciliation.counter_revenue`, for financial accounting) share this: a file is
encoded from a layout table and read back before it leaves (a value the layout would cut
or change is refused, never sent wrong); each municipality's files of a feed are numbered
1, 2, ... in `OutboundFile` (the database refuses a number twice), their bytes kept so a
resend is the same file byte for byte; a `sha256sum` sidecar goes beside every file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
import zlib
from dataclasses import dataclass
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


def load_feed_layout(name_or_path: str, directory: Path, prefix: str) -> Layout:
    """Load a feed's shipped layout by name (those of `directory` named `prefix`...), or a ward's own .toml.

    The feeds share one folder of tables; each offers only its own by name.
    """
    shipped = [name for name in layouts.available_layouts(directory) if name.startswith(prefix)]
    if not name_or_path.endswith(".toml") and name_or_path not in shipped:
        raise LayoutError(f"unknown layout {name_or_path!r}; shipped: {', '.join(shipped)}")
    return layouts.load_layout(name_or_path, directory)


def result(layout: Layout, data: bytes, count: int, total: int, sequence: int) -> ExportResult:
    return ExportResult(data, count, total, hashlib.sha256(data).hexdigest(), layout.name, sequence)


def encode_records(layout: Layout, records: Records, *, what: str, error: type[GatewayError]) -> bytes:
    """The file's bytes; the same records always give the same bytes.

    Raises `error` when a value would not read back unchanged (a layout that cuts it,
    overflows or cannot encode it): a file for another system must never post a wrong value.
    """
    try:
        output = _encode(layout, records)
    except UnicodeEncodeError as exc:
        raise error(f"layout {layout.name}: {exc.object[exc.start:exc.end]!r} cannot be written "
                    f"in {layout.encoding}") from None
    _check_reads_back(layout, output, records, what, error)
    return output


def _encode(layout: Layout, records: Records) -> bytes:
    if layout.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")  # CRLF, as RFC 4180 and the receiving systems' tools expect
        if layout.header_line:
            out.write(layouts.csv_header(layout) + "\r\n")
        fields = layout.data.fields
        writer.writerows([layouts.csv_value(f, values.get(f.name)) for f in fields] for _, values in records)
        return out.getvalue().encode(layout.encoding)
    return b"".join(layouts.encode_fixed(layout, kind, values) + b"\r\n" for kind, values in records)


def _check_reads_back(layout: Layout, output: bytes, written: Records, what: str,
                      error: type[GatewayError]) -> None:
    if layout.format == "csv" and not written:
        return  # a header alone (or nothing): the engine reads no records from it by design
    records, errors = layouts.read(layout, output)
    problems = [str(e) for e in errors]
    unit = "record" if layout.format == "fixed" else "line"
    if not errors:
        for record, (kind, values) in zip(records, written, strict=True):
            for spec in layout.records[kind].fields:
                if spec.type == "filler":
                    continue
                theirs, ours = record.values.get(spec.name), values.get(spec.name)
                if theirs != ours and not (theirs in ("", None) and ours is None):
                    problems.append(f"{unit} {record.line}, field {spec.name}: {ours!r} would be read back as "
                                    f"{theirs!r}")
    if problems:
        raise error(f"layout {layout.name} cannot hold these {what}: {problems[0]}", details={"errors": problems[:20]})


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
