"""The audit record's hash chain: each event carries the hash of its predecessor in its chain.

One chain per municipality (chain key = its id; events of no municipality form chain 0).
An event's hash is SHA-256 over its predecessor's hash, its place in the chain and its
canonical body; the first event's predecessor is GENESIS. Editing an event changes its hash;
deleting one leaves a gap in the places and a predecessor hash that no longer matches;
reordering breaks the predecessor links. This form is a contract with every event already
recorded: never change it (a new form would need a new chain).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def chain_of(municipality_id: int | None) -> int:
    return municipality_id or 0


def canonical_body(municipality_id: int | None, kind: str, subject_type: str, subject_id: str, actor: str,
                   recorded_at: datetime, data: Any) -> bytes:
    """The event's fields as one byte string: JSON, keys sorted, no spaces, UTF-8, the time in UTC to the µs."""
    moment = recorded_at.astimezone(UTC).isoformat(timespec="microseconds")
    fields = [municipality_id, kind, subject_type, subject_id, actor, moment, data]
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def chain_hash(previous: str, seq: int, body: bytes) -> str:
    return hashlib.sha256(f"{previous}\n{seq}\n".encode("ascii") + body).hexdigest()


@dataclass(frozen=True)
class Broken:
    """The first entry of a chain that does not verify."""

    chain: int
    event_id: int | None
    seq: int
    reason: str


def check_link(chain: int, expected_seq: int, previous: str, event_id: int, seq: int, prev_hash: str, hash_: str,
               body: bytes) -> Broken | None:
    """Whether the event at `expected_seq` follows `previous` and its hash is its own; the first fault named."""
    if seq != expected_seq:
        if seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            return Broken(chain, event_id, seq, f"entries {missing} are missing before event {event_id} "
                                                f"(deleted?)")
        return Broken(chain, event_id, seq, f"event {event_id} repeats place {seq} (a fork or a copy)")
    if prev_hash != previous:
        return Broken(chain, event_id, seq, f"event {event_id} does not follow its predecessor "
                                            f"(reordered, or its predecessor was changed)")
    if chain_hash(previous, seq, body) != hash_:
        return Broken(chain, event_id, seq, f"event {event_id} was changed after it was recorded")
    return None
