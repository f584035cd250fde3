"""Verifying the audit record's hash chains (domain.audit): `kokin audit verify`."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.audit import GENESIS, Broken, canonical_body, check_link
from gateway.models import AuditChainHead, Event, Municipality
from gateway.progress import NoProgress, Progress

BATCH = 5_000


@dataclass(frozen=True)
class ChainReport:
    chain: int
    municipality_code: str | None  # None: the chain of events of no municipality
    checked: int
    broken: Broken | None


def verify_chains(session: Session, municipality_code: str | None = None,
                  progress: Progress | None = None) -> list[ChainReport]:
    """Walk each chain (or the municipality's) in order; each chain's report names its first broken entry."""
    progress = progress or NoProgress()
    codes = {id_: code for id_, code in session.execute(select(Municipality.id, Municipality.code))}
    heads = {row.chain: row for row in session.scalars(select(AuditChainHead))}
    chains = sorted(set(heads) | set(session.scalars(select(Event.chain).distinct())))
    if municipality_code is not None:
        wanted = {code: id_ for id_, code in codes.items()}.get(municipality_code)
        chains = [c for c in chains if c == wanted]
    total = session.scalar(select(func.count()).select_from(Event).where(Event.chain.in_(chains))) or 0
    progress.start("audit chains", int(total))
    reports = [_verify(session, chain, heads.get(chain), codes.get(chain), progress) for chain in chains]
    progress.finish()
    return reports


def _verify(session: Session, chain: int, head: AuditChainHead | None, code: str | None,
            progress: Progress) -> ChainReport:
    expected, previous, last_seq = 1, GENESIS, 0
    while True:
        rows = session.execute(select(Event).where(Event.chain == chain, Event.chain_seq > last_seq)
                               .order_by(Event.chain_seq, Event.id).limit(BATCH)).scalars().all()
        if not rows:
            break
        for event in rows:
            body = canonical_body(event.municipality_id, event.kind, event.subject_type, event.subject_id,
                                  event.actor, event.recorded_at, event.data)
            broken = check_link(chain, expected, previous, event.id, event.chain_seq, event.prev_hash, event.hash,
                                body)
            if broken is not None:
                return ChainReport(chain, code, expected - 1, broken)
            expected, previous = expected + 1, event.hash
        last_seq = rows[-1].chain_seq
        progress.advance(len(rows))
        session.expunge_all()
    checked = expected - 1
    if head is None:
        if checked:
            return ChainReport(chain, code, checked, Broken(chain, None, checked, "the chain has no head row"))
    elif head.seq != checked or head.hash != previous:
        return ChainReport(chain, code, checked, Broken(
            chain, None, checked + 1, f"the chain ends at place {checked} but its head says {head.seq}: "
                                      "its newest entries were deleted or changed"))
    return ChainReport(chain, code, checked, None)
