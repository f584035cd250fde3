"""The exception queue accounting staff work through: raised once, assigned, commented, resolved.

Every action is an audit event; a resolution that moves money needs a second person
(service check and a database CHECK on recon_exceptions).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.db import transaction, utcnow
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.models import RESOLUTIONS, ExceptionComment, ReconException, table
from gateway.services.events import record_event
from gateway.services.playbooks import playbook_of


def list_exceptions(session: Session, municipality_id: int, *, kind: str | None = None, status: str | None = None,
                    limit: int = 100) -> Sequence[ReconException]:
    """Return the municipality's exceptions, newest first."""
    query = select(ReconException).where(ReconException.municipality_id == municipality_id)
    if kind is not None:
        query = query.where(ReconException.kind == kind)
    if status is not None:
        query = query.where(ReconException.status == status)
    return session.scalars(query.order_by(ReconException.id.desc()).limit(limit)).all()


_EXCEPTIONS_TABLE = table(ReconException)


def raise_exceptions(session: Session, municipality_id: int, exceptions: list[dict[str, Any]]) -> Counter[str]:
    """Insert exceptions not recorded before (ON CONFLICT DO NOTHING); count the new ones by kind."""
    if not exceptions:
        return Counter()
    now = utcnow()
    if len(exceptions) > BULK_EXCEPTIONS and session.get_bind().dialect.name == "postgresql":
        stage_exceptions(session, exceptions)
        return raise_staged_exceptions(session, municipality_id)
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    new: Counter[str] = Counter()
    for start in range(0, len(exceptions), 1_000):
        chunk = [{"municipality_id": municipality_id, "status": "open", "created_at": now, "amount": None,
                  "slip_number": None, "payment_id": None, "agency_report_id": None, **e}
                 for e in exceptions[start:start + 1_000]]
        statement = (dialect_insert(_EXCEPTIONS_TABLE).values(chunk).on_conflict_do_nothing()
                     .returning(_EXCEPTIONS_TABLE.c.kind))
        new.update(session.scalars(statement).all())
    return new


BULK_EXCEPTIONS = 1_000  # more at once are COPYed (a file of unknown slips raises one per record)
_COPIED = ("kind", "subject_key", "business_date", "amount", "slip_number", "payment_id", "agency_report_id",
           "details")


def stage_exceptions(session: Session, exceptions: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY exceptions into this transaction's temporary table; `raise_staged_exceptions` raises them."""
    connection = session.connection()
    connection.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS exceptions_to_raise (kind varchar(40), "
                               "subject_key varchar(120), business_date date, amount bigint, slip_number varchar(16), "
                               "payment_id integer, agency_report_id integer, details json) ON COMMIT DROP")
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor().copy(f"COPY exceptions_to_raise ({', '.join(_COPIED)}) FROM STDIN") as copy:
        for e in exceptions:
            copy.write_row([Json(e[c]) if c == "details" else e.get(c) for c in _COPIED])


def raise_staged_exceptions(session: Session, municipality_id: int) -> Counter[str]:
    """Insert the staged exceptions not recorded before (one INSERT ... ON CONFLICT DO NOTHING); count the new ones."""
    connection = session.connection()
    if not connection.exec_driver_sql("SELECT to_regclass('pg_temp.exceptions_to_raise')").scalar():
        return Counter()
    columns = ", ".join(_COPIED)
    raised = connection.exec_driver_sql(
        f"""WITH raised AS (INSERT INTO recon_exceptions (municipality_id, status, created_at, {columns})
                            SELECT %(municipality_id)s, 'open', %(now)s, {columns} FROM exceptions_to_raise
                            ON CONFLICT DO NOTHING RETURNING kind)
            SELECT kind, count(*) FROM raised GROUP BY kind""", {"municipality_id": municipality_id, "now": utcnow()})
    counted = Counter({kind: count for kind, count in raised})
    connection.exec_driver_sql("TRUNCATE exceptions_to_raise")
    return counted


def get_exception(session: Session, municipality_id: int, exception_id: int) -> ReconException:
    """One exception of the municipality, or NotFound."""
    found = session.scalar(select(ReconException).where(ReconException.id == exception_id,
                                                        ReconException.municipality_id == municipality_id))
    if found is None:
        raise NotFound(f"exception {exception_id} does not exist", code="unknown_exception")
    return found


def _locked(session: Session, municipality_id: int, exception_id: int) -> ReconException:
    found = session.scalar(select(ReconException).where(ReconException.id == exception_id,
                                                        ReconException.municipality_id == municipality_id)
                           .with_for_update())
    if found is None:
        raise NotFound(f"exception {exception_id} does not exist", code="unknown_exception")
    return found


def _audit(session: Session, item: ReconException, action: str, actor: str, **data: Any) -> None:
    record_event(session, f"exception.{action}", "recon_exception", item.id, municipality_id=item.municipality_id,
                 actor=actor, data={"kind": item.kind, **data})


def assign_exception(session: Session, municipality_id: int, exception_id: int, assignee: str, *,
                     actor: str) -> ReconException:
    """Give the exception to a member of staff (or back to nobody with an empty name)."""
    with transaction(session):
        item = _locked(session, municipality_id, exception_id)
        assign_step(session, item, assignee, actor)
    return item


def assign_step(session: Session, item: ReconException, assignee: str, actor: str) -> None:
    item.assigned_to = assignee.strip()[:100] or None
    _audit(session, item, "assigned", actor, assigned_to=item.assigned_to)


def comment_exception(session: Session, municipality_id: int, exception_id: int, text: str, *,
                      actor: str) -> ExceptionComment:
    """Add a note to the exception (what was found out, whom the agency said to call...)."""
    if not text.strip():
        raise GatewayError("a comment needs some text", code="empty_comment", status=422)
    with transaction(session):
        item = _locked(session, municipality_id, exception_id)
        comment = ExceptionComment(exception_id=item.id, municipality_id=item.municipality_id,
                                   author=actor[:100], text=text.strip()[:2000])
        session.add(comment)
        _audit(session, item, "commented", actor)
    return comment


def check_resolution(resolution: str, note: str) -> None:
    if resolution not in RESOLUTIONS:
        raise GatewayError(f"unknown resolution {resolution!r}; one of {', '.join(RESOLUTIONS)}",
                           code="unknown_resolution", status=422)
    if not note.strip():
        raise GatewayError("say why: a resolution needs a note", code="empty_note", status=422)


def resolve_exception(session: Session, municipality_id: int, exception_id: int, resolution: str, note: str, *,
                      actor: str) -> ReconException:
    """Resolve with a reason the kind's playbook allows; one that moves money (refund, 充当, write-off), or
    that the playbook gives to two people, waits for a second person."""
    check_resolution(resolution, note)
    with transaction(session):
        item = _locked(session, municipality_id, exception_id)
        refusal = resolve_refusal(session, item, resolution)
        if refusal is not None:
            raise refusal
        resolve_step(session, item, resolution, note, actor)
    return item


def resolve_refusal(session: Session, item: ReconException, resolution: str) -> GatewayError | None:
    if item.status != "open":  # resolved, or a proposal waits for its second person
        return Conflict(f"exception {item.id} is {item.status}", code="exception_not_open")
    if playbook_of(session, item.municipality_id, item.kind).allows(resolution) is None:
        return GatewayError(f"the playbook of {item.kind} does not allow {resolution}",
                            code="resolution_not_in_playbook", status=422)
    return None


def resolve_step(session: Session, item: ReconException, resolution: str, note: str, actor: str) -> None:
    play = playbook_of(session, item.municipality_id, item.kind).allows(resolution)
    assert play is not None  # checked by resolve_refusal
    item.resolution, item.resolution_note = resolution, note.strip()[:500]
    if play.second_person:  # always when it moves money
        item.status, item.proposed_by, item.resolved_by = "pending_approval", actor[:100], None
        _audit(session, item, "resolution_proposed", actor, resolution=resolution)
    else:
        item.status, item.resolved_by, item.resolved_at = "resolved", actor[:100], utcnow()
        _audit(session, item, "resolved", actor, resolution=resolution)


def decide_resolution(session: Session, municipality_id: int, exception_id: int, *, approve: bool,
                      actor: str) -> ReconException:
    """A second person approves (or sends back) a resolution that moves money; never the proposer."""
    with transaction(session):
        item = _locked(session, municipality_id, exception_id)
        refusal = decide_refusal(item, actor)
        if refusal is not None:
            raise refusal
        decide_step(session, item, approve, actor)
    return item


def decide_refusal(item: ReconException, actor: str) -> GatewayError | None:
    if item.status != "pending_approval":
        return Conflict(f"exception {item.id} is {item.status}", code="not_pending_approval")
    if item.proposed_by == actor:
        return GatewayError("the person who proposed a resolution cannot approve it", code="four_eyes_required",
                            status=403)
    return None


def decide_step(session: Session, item: ReconException, approve: bool, actor: str) -> None:
    if approve:
        item.status, item.resolved_by, item.resolved_at = "resolved", actor[:100], utcnow()
    else:
        item.status, item.proposed_by, item.resolution = "open", None, None
    _audit(session, item, "resolution_approved" if approve else "resolution_sent_back", actor)


def comments_of(session: Session, municipality_id: int, exception_id: int) -> Sequence[ExceptionComment]:
    return session.scalars(select(ExceptionComment).where(ExceptionComment.municipality_id == municipality_id,
                                                          ExceptionComment.exception_id == exception_id)
                           .order_by(ExceptionComment.id)).all()
