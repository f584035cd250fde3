"""Idempotency keys: one owner per key, even under concurrency; replay; conflicting bodies refused."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from gateway.db import Database, transaction, utcnow
from gateway.models import IdempotencyKey, Municipality
from gateway.services import idempotency
from tests.rows import by_id


def _municipality_id(session) -> int:  # type: ignore[no-untyped-def]
    muni_id = session.scalar(select(Municipality.id))
    assert muni_id is not None
    return int(muni_id)


def test_the_same_key_and_body_replays_the_stored_response(session) -> None:  # type: ignore[no-untyped-def]
    muni = _municipality_id(session)
    digest = idempotency.request_hash({"b": 2, "a": 1})
    first = idempotency.claim(session, muni, "key-1", digest)
    assert first.key_id is not None and first.replay is None
    idempotency.complete(session, muni, first.key_id, 201, {"id": 7})
    again = idempotency.claim(session, muni, "key-1", idempotency.request_hash({"a": 1, "b": 2}))
    assert again.key_id is None and again.replay == (201, {"id": 7})


def test_the_same_key_with_another_body_is_refused(session) -> None:  # type: ignore[no-untyped-def]
    muni = _municipality_id(session)
    idempotency.claim(session, muni, "key-2", idempotency.request_hash({"amount": 1}))
    with pytest.raises(idempotency.IdempotencyConflict):
        idempotency.claim(session, muni, "key-2", idempotency.request_hash({"amount": 2}))


def test_a_key_still_in_progress_is_reported_as_such(session) -> None:  # type: ignore[no-untyped-def]
    muni = _municipality_id(session)
    idempotency.claim(session, muni, "key-3", "h")
    with pytest.raises(idempotency.IdempotencyInProgress):
        idempotency.claim(session, muni, "key-3", "h")


def test_a_released_key_can_be_claimed_again(session) -> None:  # type: ignore[no-untyped-def]
    muni = _municipality_id(session)
    claim = idempotency.claim(session, muni, "key-4", "h")
    assert claim.key_id is not None
    idempotency.release(session, muni, claim.key_id)
    assert idempotency.claim(session, muni, "key-4", "h").key_id is not None


def test_keys_are_kept_at_least_a_day_and_purged_after_their_retention(session) -> None:  # type: ignore[no-untyped-def]
    muni = _municipality_id(session)
    claim = idempotency.claim(session, muni, "key-5", "h")
    row = by_id(session, IdempotencyKey, claim.key_id)
    assert row.expires_at - row.created_at >= timedelta(hours=24)
    assert idempotency.purge_expired(session) == 0
    with transaction(session):
        session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert idempotency.purge_expired(session) == 1


def test_concurrent_claims_of_one_key_have_exactly_one_owner(database: Database) -> None:
    with database.session() as session:
        muni = _municipality_id(session)
    owners: list[int] = []
    refused: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        with database.session() as session:
            barrier.wait()
            try:
                claim = idempotency.claim(session, muni, "shared-key", "same-body")
                if claim.key_id is not None:
                    owners.append(claim.key_id)
            except idempotency.IdempotencyInProgress as exc:
                refused.append(exc.code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(owners) == 1 and len(refused) == 7
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
