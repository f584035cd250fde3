"""The agency file staged for one import: temporary tables, filled by COPY on PostgreSQL.

KEYS holds every record's key (what the records of payments seen before need); STAGE the
records of payments not seen before, in full; DECISIONS what Python decided for each of
those (PostgreSQL), written from at the end. All go with the transaction (ON COMMIT DROP;
on SQLite `drop_stage` removes them).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, Integer, MetaData, String, Table, Text, insert
from sqlalchemy.orm import Session

from adapters.agency import AgencyReport
from domain.calendar import TOKYO
from gateway.db import UTCDateTime
from gateway.progress import Progress

_metadata = MetaData()
STAGE = Table(
    "agency_stage", _metadata,
    Column("seq", Integer, primary_key=True),
    Column("record", Integer), Column("kind", String(12)), Column("match_key", String(32)),
    Column("barcode", String(44)), Column("slip_number", String(16)), Column("reissue", Integer),
    Column("amount", BigInteger), Column("paid_at", UTCDateTime), Column("paid_on", Date),
    Column("store_code", String(10)), Column("chain_code", String(6)), Column("channel", String(40)),
    Column("remittance_on", Date), Column("line", Text),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
# Every record's key: what the records of payments seen before need (a 確報 of a million of them
# stages five columns, not fifteen), the record as received among them. Only the records of new
# payments go on to STAGE.
KEYS = Table(
    "agency_keys", _metadata,
    Column("seq", Integer), Column("kind", String(12)), Column("match_key", String(32)),
    Column("remittance_on", Date), Column("line", Text),
    # the file's first record of its payment and kind: a record the file holds again repeats it, and
    # only the first updates a payment reported before (its values and its line, on either database)
    Column("first_of_key", Boolean),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
# The new store payments are read in this order.
STAGE_ORDER_INDEX = "CREATE INDEX ix_agency_stage_order ON agency_stage (paid_at, match_key)"
# What Python decided for each new payment, by its first staged record; the rows themselves
# are then written from the stage in SQL (PostgreSQL).
DECISIONS = Table(
    "agency_decisions", _metadata,
    Column("seq", Integer), Column("report_id", Integer), Column("payment_id", Integer),
    Column("slip_id", Integer), Column("assessment_id", Integer), Column("applied", Boolean),
    Column("overpaid", Boolean), Column("preliminary", Boolean), Column("final", Boolean),
    Column("cancel", Boolean), Column("remittance_on", Date),
    # The staged record of each kind (its line is the one kept): the first, `seq`, or another of the file.
    Column("preliminary_seq", Integer), Column("final_seq", Integer), Column("cancel_seq", Integer),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)


Lines = Callable[[AgencyReport], str | None]  # a report's record as received (AgencyFile.raw_line)


def stage_keys(session: Session, reports: list[AgencyReport], progress: Progress, lines: Lines) -> None:
    """Put every record's key and line in a temporary table (COPY on PostgreSQL, executemany on SQLite).

    Each line is made when its chunk is staged (`lines`), so the file's lines are never all held at once.
    """
    drop_stage(session)
    KEYS.create(session.connection())
    seen: dict[str, set[str]] = {}  # kind -> match keys staged (the reports' own strings: a few MB a million)

    def first_of_key(report: AgencyReport) -> bool:
        keys = seen.setdefault(report.kind, set())
        if report.match_key in keys:
            return False
        keys.add(report.match_key)
        return True

    def row(seq: int, report: AgencyReport, line: str | None) -> tuple[Any, ...]:
        return (seq, report.kind, report.match_key, report.remittance_on, line, first_of_key(report))

    def copy_line(seq: int, report: AgencyReport, line: str | None) -> str:
        remittance = "\\N" if report.remittance_on is None else report.remittance_on.isoformat()
        first = "t" if first_of_key(report) else "f"
        return f"{seq}\t{report.kind}\t{report.match_key}\t{remittance}\t{_copy_line_text(line)}\t{first}\n"

    progress.start("staging the records", len(reports))
    for start in range(0, len(reports), STAGE_CHUNK):
        chunk = list(enumerate(reports[start:start + STAGE_CHUNK], start=start))
        _copy(session, KEYS, chunk, lines, row, copy_line)
        progress.advance(len(chunk))
    analyze(session, KEYS)
    progress.finish()


def stage_new_records(session: Session, records: list[tuple[int, AgencyReport]], lines: Lines) -> None:
    """Put the records of payments not seen before in full in a temporary table, indexed for reading in order."""
    STAGE.create(session.connection())
    for start in range(0, len(records), STAGE_CHUNK):
        _copy(session, STAGE, records[start:start + STAGE_CHUNK], lines, _stage_row, _copy_line)
    session.connection().exec_driver_sql(STAGE_ORDER_INDEX)
    analyze(session, STAGE)


def _copy(session: Session, stage: Table, records: list[tuple[int, AgencyReport]], lines: Lines,
          row: Callable[[int, AgencyReport, str | None], tuple[Any, ...]],
          line: Callable[[int, AgencyReport, str | None], str]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        assert driver is not None
        columns = ", ".join(c.name for c in stage.columns)
        with driver.cursor().copy(f"COPY {stage.name} ({columns}) FROM STDIN") as copy:
            copy.write("".join([line(seq, report, lines(report)) for seq, report in records]))
    else:
        names = [c.name for c in stage.columns]
        connection.execute(insert(stage), [dict(zip(names, row(seq, report, lines(report)), strict=True))
                                           for seq, report in records])


def analyze(session: Session, stage: Table) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(f"ANALYZE {stage.name}")  # temporary tables get no autovacuum


STAGE_CHUNK = 50_000


def _stage_row(seq: int, report: AgencyReport, line: str | None) -> tuple[Any, ...]:
    paid_at = datetime.combine(report.paid_on, report.paid_time, tzinfo=TOKYO)
    return (seq, report.record, report.kind, report.match_key, report.barcode, report.barcode[13:29],
            int(report.barcode[29]), report.amount, paid_at, report.paid_on, report.store_code, report.chain_code,
            report.channel, report.remittance_on, line)


def _copy_line(seq: int, report: AgencyReport, line: str | None) -> str:
    """`_stage_row` in COPY's text format (the store's time is Japan's: +09:00, no summer time)."""
    remittance = "\\N" if report.remittance_on is None else report.remittance_on.isoformat()
    day = report.paid_on.isoformat()
    return (f"{seq}\t{report.record}\t{report.kind}\t{report.match_key}\t{report.barcode}\t{report.barcode[13:29]}\t"
            f"{report.barcode[29]}\t{report.amount}\t{day} {report.paid_time.isoformat()}+09:00\t{day}\t"
            f"{_copy_text(report.store_code)}\t{_copy_text(report.chain_code)}\t{_copy_text(report.channel)}\t"
            f"{remittance}\t{_copy_line_text(line)}\n")


def _copy_text(value: str) -> str:
    if value.isprintable() and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_line_text(value: str | None) -> str:
    """A record as received in COPY's text format: NULL when the adapter kept none."""
    return "\\N" if value is None else _copy_text(value)


def drop_stage(session: Session) -> None:
    DECISIONS.drop(session.connection(), checkfirst=True)
    STAGE.drop(session.connection(), checkfirst=True)
    KEYS.drop(session.connection(), checkfirst=True)


