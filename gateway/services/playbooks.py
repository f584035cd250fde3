"""What a clerk does with each kind of exception: the playbook, as data a ward can edit.

The defaults are domain/playbooks.toml; a ward's own edits are rows of exception_playbooks (one
per kind), which replace the default of that kind whole. A playbook says what the exception
means, what to check, and which resolutions are allowed, each with what it does and whether a
second person must approve it. Resolutions that move money (RESOLUTIONS: refund, 充当,
write-off) always need a second person: a playbook can add the rule to others, never take it
away. `resolve_exception` refuses a resolution the kind's playbook does not allow.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import domain
from gateway.db import transaction, utcnow
from gateway.errors import GatewayError, NotFound
from gateway.models import EXCEPTION_KINDS, RESOLUTIONS, ExceptionPlaybook
from gateway.services.events import record_event

DEFAULTS_FILE = Path(domain.__file__).with_name("playbooks.toml")
MAX_CHECKS = 12


@dataclass(frozen=True)
class Play:
    """One resolution a playbook allows."""

    code: str
    effect: str
    second_person: bool  # the playbook's rule, or always when it moves money

    @property
    def moves_money(self) -> bool:
        return RESOLUTIONS[self.code]


@dataclass(frozen=True)
class Playbook:
    kind: str
    meaning: str
    checks: tuple[str, ...]
    resolutions: tuple[Play, ...]
    edited_by: str | None = None  # None: the default

    def allows(self, code: str) -> Play | None:
        return next((play for play in self.resolutions if play.code == code), None)


def _play(code: str, effect: str, second_person: bool) -> Play:
    return Play(code, effect, bool(second_person) or RESOLUTIONS[code])


@functools.cache
def defaults() -> dict[str, Playbook]:
    """The default playbook of every kind, read and checked once."""
    data = tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    if set(data) != set(EXCEPTION_KINDS):
        raise ValueError(f"{DEFAULTS_FILE.name}: kinds {sorted(set(data) ^ set(EXCEPTION_KINDS))} differ from "
                         "EXCEPTION_KINDS")
    books = {}
    for kind, entry in data.items():
        plays = tuple(_play(p["code"], p["effect"], p.get("second_person", False)) for p in entry["resolution"])
        unknown = [p.code for p in plays if p.code not in RESOLUTIONS]
        if unknown or not plays:
            raise ValueError(f"{DEFAULTS_FILE.name} [{kind}]: unknown or no resolutions {unknown}")
        books[kind] = Playbook(kind, entry["meaning"], tuple(entry["checks"]), plays)
    return books


def _from_row(row: ExceptionPlaybook) -> Playbook:
    plays = tuple(_play(p["code"], p["effect"], p.get("second_person", False)) for p in row.resolutions
                  if p.get("code") in RESOLUTIONS)
    return Playbook(row.kind, row.meaning, tuple(row.checks), plays, edited_by=row.updated_by)


def playbook_of(session: Session, municipality_id: int, kind: str) -> Playbook:
    """The ward's playbook of `kind`: its own if it edited one, else the default."""
    if kind not in EXCEPTION_KINDS:
        raise NotFound(f"no exception kind {kind!r}", code="unknown_kind")
    row = session.get(ExceptionPlaybook, (municipality_id, kind))
    return _from_row(row) if row is not None else defaults()[kind]


def playbooks_of(session: Session, municipality_id: int) -> list[Playbook]:
    """Every kind's playbook of the ward, in the contract's order of kinds."""
    own = {row.kind: _from_row(row) for row in session.scalars(
        select(ExceptionPlaybook).where(ExceptionPlaybook.municipality_id == municipality_id))}
    return [own.get(kind) or defaults()[kind] for kind in EXCEPTION_KINDS]


def save_playbook(session: Session, municipality_id: int, kind: str, *, meaning: str, checks: list[str],
                  resolutions: list[dict[str, Any]], actor: str) -> Playbook:
    """Replace the ward's playbook of `kind`; every field checked before anything is written; audited."""
    if kind not in EXCEPTION_KINDS:
        raise NotFound(f"no exception kind {kind!r}", code="unknown_kind")
    meaning = meaning.strip()
    checks = [c.strip() for c in checks if c.strip()]
    if not meaning or len(meaning) > 2000:
        raise GatewayError("say what the exception means (1 to 2,000 characters)", code="invalid_meaning", status=422)
    if len(checks) > MAX_CHECKS or any(len(c) > 300 for c in checks):
        raise GatewayError(f"at most {MAX_CHECKS} checks of 300 characters each", code="invalid_checks", status=422)
    plays = []
    for entry in resolutions:
        code, effect = str(entry.get("code", "")), str(entry.get("effect", "")).strip()
        if code not in RESOLUTIONS:
            raise GatewayError(f"unknown resolution {code!r}", code="unknown_resolution", status=422)
        if not effect or len(effect) > 300:
            raise GatewayError(f"say what {code} does (1 to 300 characters)", code="invalid_effect", status=422)
        plays.append({"code": code, "effect": effect,
                      "second_person": bool(entry.get("second_person")) or RESOLUTIONS[code]})
    if not plays:
        raise GatewayError("allow at least one resolution", code="no_resolution", status=422)
    if len({p["code"] for p in plays}) != len(plays):
        raise GatewayError("a resolution is listed twice", code="duplicate_resolution", status=422)
    with transaction(session):
        row = session.get(ExceptionPlaybook, (municipality_id, kind), with_for_update=True)
        if row is None:
            row = ExceptionPlaybook(municipality_id=municipality_id, kind=kind)
            session.add(row)
        row.meaning, row.checks, row.resolutions = meaning, checks, plays
        row.updated_by, row.updated_at = actor[:100], utcnow()
        record_event(session, "playbook.updated", "exception_playbook", kind, municipality_id=municipality_id,
                     actor=actor, data={"kind": kind, "resolutions": [p["code"] for p in plays],
                                        "second_person": [p["code"] for p in plays if p["second_person"]]})
    return _from_row(row)


def reset_playbook(session: Session, municipality_id: int, kind: str, *, actor: str) -> None:
    """Go back to the default playbook of `kind` (audited)."""
    with transaction(session):
        row = session.get(ExceptionPlaybook, (municipality_id, kind), with_for_update=True)
        if row is not None:
            session.delete(row)
            record_event(session, "playbook.reset", "exception_playbook", kind, municipality_id=municipality_id,
                         actor=actor, data={"kind": kind})
