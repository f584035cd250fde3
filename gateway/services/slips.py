"""Issue, reissue and look up payment slips (納付書)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import Row, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import barcode as gs1
from domain.calendar import store_deadline
from domain.identifiers import is_wardless_pay_token, make_slip_number, pay_token_maker, ward_code_of_pay_token
from gateway.db import transaction, utcnow
from gateway.errors import Conflict, NotFound
from gateway.models import Assessment, FundType, IssueRun, Municipality, Slip, SlipNumberSeries
from gateway.models.base import on_ward
from gateway.progress import NoProgress, Progress
from gateway.services.events import record_event

BATCH_SIZE = 5000
MAX_REISSUE = 9  # one digit in the barcode; past it the instalment gets a new number
SLIPS = cast(Table, Slip.__table__)  # for Core inserts; declarative types __table__ loosely


@dataclass
class IssueResult:
    issue_run_id: int
    issued: int = 0
    reissued: int = 0
    without_barcode: int = 0


def issue_slips(session: Session, municipality_code: str, *, fund_code: str | None = None,
                fiscal_year: int | None = None, progress: Progress | None = None,
                batch_size: int = BATCH_SIZE) -> IssueResult:
    """Issue a slip for every instalment that has no live one; commit batch by batch.

    Idempotent: a second run finds nothing to do. An instalment whose slip was voided
    (amendment, reissue) gets the same number with the reissue count incremented.
    Instalments imported after the run has started are left to the next run. A batch is
    `batch_size` consecutive instalment ids, so it holds at most that many slips.
    """
    progress = progress or NoProgress()
    muni = _municipality(session, municipality_code)
    if fund_code is not None and session.scalar(
            select(FundType.id).where(FundType.municipality_id == muni.id, FundType.code == fund_code)) is None:
        raise NotFound(f"{fund_code!r} is not a fund of municipality {municipality_code}", code="unknown_fund")
    filters = _filters(muni.id, fund_code, fiscal_year)
    with transaction(session):
        run = IssueRun(municipality_id=muni.id, fund_code=fund_code, fiscal_year=fiscal_year)
        session.add(run)
        session.flush()
    result = IssueResult(run.id)
    count, first_id, last_id = session.execute(_without_live_slip(filters)).one()
    progress.start("issuing slips", count)
    for start in range(first_id or 0, (last_id or -1) + 1, batch_size):
        window = session.execute(_instalments(filters, start, start + batch_size)).all()
        session.rollback()  # end the read; each batch is written in its own transaction
        if window:
            progress.advance(_issue_batch(session, muni, run.id, window, result))
    progress.finish()
    with transaction(session):
        session.execute(update(IssueRun).where(IssueRun.municipality_id == muni.id, IssueRun.id == run.id)
                        .values(slip_count=result.issued, finished_at=utcnow()))
    return result


def _municipality(session: Session, code: str) -> Municipality:
    muni = session.scalar(select(Municipality).where(Municipality.code == code))
    if muni is None:
        raise NotFound(f"municipality {code} is not configured")
    return muni


# SQLite has no statistics: left alone it reads a batch's ward by its (municipality, source_key,
# installment) index, every instalment of the ward for each batch. Its (municipality_id, id) index
# reads the batch's range of ids alone.
_BY_WARD_AND_ID = "INDEXED BY uq_assessments_ward_id"
# Likewise an instalment's slips, by their instalment's index rather than every slip of the ward.
_SLIPS_BY_INSTALMENT = "INDEXED BY ix_slips_assessment_id"


def _filters(municipality_id: int, fund_code: str | None, fiscal_year: int | None) -> list[Any]:
    # A batch is a range of ids of the ward: the (municipality_id, id) key serves it on both
    # databases (PostgreSQL's primary key, SQLite's unique index, migration 0026).
    # An instalment the core system closed (paid elsewhere, cancelled) gets no slip.
    filters: list[Any] = [Assessment.municipality_id == municipality_id, Assessment.closed_reason.is_(None)]
    if fund_code is not None:
        filters.append(FundType.code == fund_code)
    if fiscal_year is not None:
        filters.append(Assessment.fiscal_year == fiscal_year)
    return filters


def _without_live_slip(filters: list[Any]) -> Any:
    """Select how many instalments have no live slip, and the lowest and highest of their ids."""
    live = (select(Slip.id).where(Slip.municipality_id == Assessment.municipality_id,
                                  Slip.assessment_id == Assessment.id, Slip.status != "void")
            .with_hint(Slip, _SLIPS_BY_INSTALMENT, "sqlite").exists())
    return (select(func.count(), func.min(Assessment.id), func.max(Assessment.id))
            .join(FundType, on_ward(Assessment, "fund_type_id", FundType)).where(*filters, ~live)
            .with_hint(Assessment, _BY_WARD_AND_ID, "sqlite"))


def _instalments(filters: list[Any], first_id: int, end_id: int) -> Any:
    """Select the instalments with ids from `first_id` up to `end_id` (excluded), live slip or not.

    Batches are ranges of the primary key, not "the next N without a live slip" (ORDER BY
    id LIMIT N, anti-joined with slips): PostgreSQL planned that as a sort of every
    remaining instalment and a scan of every slip per batch, quadratic over a year's run.
    Which instalments need a slip is decided by `_slip_history`, in the writing transaction.
    """
    return (select(Assessment.id, Assessment.fiscal_year, Assessment.amount, Assessment.due_date,
                   FundType.company_code)
            .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
            .where(*filters, Assessment.id >= first_id, Assessment.id < end_id).order_by(Assessment.id)
            .with_hint(Assessment, _BY_WARD_AND_ID, "sqlite"))


class _LastSlip(NamedTuple):
    live: bool  # this slip or an earlier one of the instalment is not void
    number: str
    reissue: int


def _slip_history(session: Session, municipality_id: int, window: Sequence[Row[Any]]) -> dict[int, _LastSlip]:
    """Return the latest slip of each assessment of `window` that has slips, by assessment id.

    Reads the slips of the window's id range: the windows of a run are disjoint, so a run
    reads each slip at most once, and a range is far cheaper to send and plan than an IN
    list of thousands of ids. Assessments of the range outside the window are ignored.
    """
    rows = session.execute(select(Slip.id, Slip.assessment_id, Slip.number, Slip.reissue, Slip.status)
                           .where(Slip.municipality_id == municipality_id,
                                  Slip.assessment_id.between(window[0].id, window[-1].id))
                           .with_hint(Slip, _SLIPS_BY_INSTALMENT, "sqlite")).all()
    history: dict[int, _LastSlip] = {}
    # Sorted here, not in SQL: with ORDER BY id, SQLite walks the whole slips table.
    for _, assessment_id, number, reissue, status in sorted(rows):
        earlier_live = assessment_id in history and history[assessment_id].live
        history[assessment_id] = _LastSlip(earlier_live or status != "void", number, reissue)
    return history


def _issue_batch(session: Session, muni: Municipality, run_id: int, window: Sequence[Row[Any]],
                 result: IssueResult) -> int:
    """Issue the slips `window` needs in one transaction; return how many."""
    try:
        with transaction(session):
            rows = _slip_rows(session, muni, run_id, window)
            if not rows:
                return 0
            # Core, not the ORM bulk path: the same executemany without building ORM state per row.
            session.connection().execute(insert(SLIPS), rows)
            reissued = sum(1 for r in rows if r["reissue"] > 0)
            record_event(session, "slips.issued", "issue_run", run_id, municipality_id=muni.id,
                         data={"count": len(rows), "reissues": reissued,
                               "first": rows[0]["number"], "last": rows[-1]["number"]})
    except IntegrityError as exc:
        raise Conflict("another run issued slips for some of these instalments at the same time; "
                       "run `kokin slips issue` again to continue", code="slips_issued_concurrently") from exc
    result.issued += len(rows)
    result.reissued += reissued
    result.without_barcode += sum(1 for r in rows if r["barcode"] is None)
    return len(rows)


def _slip_rows(session: Session, muni: Municipality, run_id: int, window: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """Build the slip rows of the instalments in `window` that have no live slip."""
    history = _slip_history(session, muni.id, window)
    fresh: dict[int, list[Row[Any]]] = defaultdict(list)
    numbered: list[tuple[Row[Any], str, int]] = []
    for item in window:
        last = history.get(item.id)
        if last is not None and last.live:
            continue
        if last is not None and last.reissue < MAX_REISSUE:
            numbered.append((item, last.number, last.reissue + 1))
        else:
            fresh[item.fiscal_year].append(item)
    for year, items in fresh.items():
        first = _allocate_serials(session, muni.id, year, len(items))
        numbered.extend((item, make_slip_number(year, first + i), 0) for i, item in enumerate(items))
    now = utcnow()
    prefixes, pay_token = _issuer_prefixes(muni, [item for item, _, _ in numbered]), pay_token_maker(muni.code)
    return [_slip_row(muni, run_id, prefixes, pay_token, item, number, reissue, now)
            for item, number, reissue in numbered]


def _issuer_prefixes(muni: Municipality, items: list[Row[Any]]) -> dict[str | None, str]:
    """Return the barcode prefix by fund company code (None: the municipality's), checked once per batch."""
    codes = {item.company_code for item in items if item.amount <= gs1.MAX_BARCODE_AMOUNT}
    return {code: gs1.issuer_prefix(code or muni.company_code, muni.client_code) for code in codes}


def _slip_row(muni: Municipality, run_id: int, prefixes: dict[str | None, str], pay_token: Callable[[], str],
              item: Row[Any], number: str, reissue: int, now: Any) -> dict[str, Any]:
    deadline = None
    code = None
    if item.amount <= gs1.MAX_BARCODE_AMOUNT:
        deadline = store_deadline(item.due_date, muni.store_deadline_offset_days)
        # compose(), not encode(): `number` was made by make_slip_number or read from a slip.
        code = gs1.compose(prefixes[item.company_code], number, reissue, deadline, item.amount)
    return {"municipality_id": muni.id, "assessment_id": item.id, "number": number, "reissue": reissue,
            "amount": item.amount, "due_date": item.due_date, "store_deadline": deadline, "barcode": code,
            "pay_token": pay_token(), "status": "issued", "issue_run_id": run_id, "issued_at": now}


def _allocate_serials(session: Session, municipality_id: int, fiscal_year: int, count: int) -> int:
    """Reserve `count` consecutive serials; return the first. The row lock serialises issuers."""
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(dialect_insert(SlipNumberSeries)
                    .values(municipality_id=municipality_id, fiscal_year=fiscal_year, next_serial=1)
                    .on_conflict_do_nothing())
    end = session.scalar(
        update(SlipNumberSeries)
        .where(SlipNumberSeries.municipality_id == municipality_id, SlipNumberSeries.fiscal_year == fiscal_year)
        .values(next_serial=SlipNumberSeries.next_serial + count)
        .returning(SlipNumberSeries.next_serial)
    )
    assert end is not None
    return end - count


def reissue_slip(session: Session, municipality_id: int, number: str, *, reason: str, actor: str) -> Slip:
    """Void the live slip with this number and issue its reissue (count + 1); return the new slip."""
    muni = session.get(Municipality, municipality_id)
    assert muni is not None
    with transaction(session):
        current = session.scalar(select(Slip).where(Slip.municipality_id == municipality_id, Slip.number == number)
                                 .order_by(Slip.reissue.desc()).limit(1).with_for_update(of=Slip))
        if current is None:
            raise NotFound(f"slip {number} does not exist")
        if current.status != "issued":
            raise Conflict(f"slip {number} is {current.status}; only an issued slip can be reissued",
                           code=f"slip_{current.status}")
        current.status, current.voided_at, current.void_reason = "void", utcnow(), reason[:100]
        session.flush()
        record_event(session, "slip.voided", "slip", f"{number}-{current.reissue}", municipality_id=municipality_id,
                     data={"reason": reason}, actor=actor)
        run = IssueRun(municipality_id=municipality_id, slip_count=1, finished_at=utcnow())
        session.add(run)
        session.flush()
        filters = _filters(municipality_id, None, None)
        item = session.execute(_instalments(filters, current.assessment_id, current.assessment_id + 1)).one()
        rows = _slip_rows(session, muni, run.id, [item])
        slip_id = session.scalar(insert(Slip).returning(Slip.id), rows[0])
        record_event(session, "slip.reissued", "slip", f"{rows[0]['number']}-{rows[0]['reissue']}",
                     municipality_id=municipality_id, data={"reason": reason}, actor=actor)
    slip = session.get(Slip, (slip_id, municipality_id))
    assert slip is not None
    return slip


def get_slip(session: Session, municipality_id: int, number: str) -> Slip:
    """Return the latest issue (highest reissue count) of a slip number."""
    slip = session.scalar(select(Slip).where(Slip.municipality_id == municipality_id, Slip.number == number)
                          .order_by(Slip.reissue.desc()).limit(1))
    if slip is None:
        raise NotFound(f"slip {number} does not exist")
    return slip


def get_slip_by_token(session: Session, token: str) -> Slip:
    """The slip a pay link names, found on its ward: the token names it (domain.identifiers.pay_token_maker).

    A token made before tokens named their ward is found by the token alone (on Citus, every
    node is asked): links printed on slips still in residents' hands keep working. Anything
    else is no token of ours and is not looked up.
    """
    code, slip = ward_code_of_pay_token(token), None
    if code is not None:
        ward = session.scalar(select(Municipality.id).where(Municipality.code == code))
        if ward is not None:
            slip = session.scalar(select(Slip).where(Slip.municipality_id == ward, Slip.pay_token == token))
    elif is_wardless_pay_token(token):
        slip = session.scalar(select(Slip).where(Slip.pay_token == token).limit(1))
    if slip is None:
        raise NotFound("this payment link is not valid")
    return slip


def slip_query(municipality_id: int, *, assessment_id: str | None = None, fund_code: str | None = None,
               fiscal_year: int | None = None, status: str | None = None) -> Any:
    """Return the query for a filtered slip listing, newest issues last."""
    query = (select(Slip).join(Assessment, on_ward(Slip, "assessment_id", Assessment))
             .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
             .where(Slip.municipality_id == municipality_id))
    if assessment_id is not None:
        query = query.where(Assessment.source_key == assessment_id)
    if fund_code is not None:
        query = query.where(FundType.code == fund_code)
    if fiscal_year is not None:
        query = query.where(Assessment.fiscal_year == fiscal_year)
    if status is not None:
        query = query.where(Slip.status == status)
    return query.order_by(Slip.id)


def slips_of_run(session: Session, issue_run_id: int) -> list[int]:
    """Return the ids of the slips an issue run created, in issue order."""
    return list(session.scalars(select(Slip.id).where(Slip.issue_run_id == issue_run_id).order_by(Slip.id)))
