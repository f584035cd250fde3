"""Sandbox mode's simulated providers: their state in the database, their pages on the gateway.

`attach_simulators` (called by the app factory) keeps every configured simulator's objects in
the table sandbox_state, one row per object, so that `kokin serve`, `kokin recon run` and
`kokin scheduler run` in separate processes see the same Stripe, PayPay and Square; with
SANDBOX_STATE = "memory" each process keeps its own, as before. It also points the hosted pages
the simulators hand out (Stripe Checkout, the page a PayPay QR code opens) at the gateway's own
/sandbox pages, on the host of the request that opened the checkout, or SANDBOX_BASE_URL (by
default the first municipality's pay_base_url) outside a request.
"""
from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, has_request_context, request
from sqlalchemy import BigInteger, Connection, Engine, Text, cast, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapters.paypay.simulator import PayPaySimulator
from adapters.simulator_state import MemoryStore, StateStore
from adapters.stripe.simulator import StripeSimulator
from gateway.db import utcnow
from gateway.models import SandboxObject, table

STATE = table(SandboxObject)
LOCK = ""  # the bucket and key of a scope's lock row
DELIVERIES = "sandbox-deliveries"  # the scope of the log of notifications the sandbox pages delivered
KEEP_DELIVERIES = 200
DEFAULT_BASE_URL = "http://127.0.0.1:5000"


class DatabaseStore:
    """A StateStore on the app's database: one transaction a unit, the scope's lock row first.

    The lock row also counts the units. A process keeps the texts it has read or written and
    uses them while the count its lock statement returns is one more than its own last unit
    left: then no other process has had the scope since, and a unit costs the lock statement
    and its own writes, sent together at its end.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._make_lock = insert(STATE).on_conflict_do_nothing()
        upsert = insert(STATE)
        self._upsert = upsert.on_conflict_do_update(
            index_elements=[STATE.c.scope, STATE.c.bucket, STATE.c.key],
            set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at})
        self._lock = threading.RLock()  # one unit at a time in this process: the texts kept are shared
        self._seen: dict[str, int] = {}  # scope -> the count this process's last unit left
        self._kept: dict[str, _Kept] = {}

    @contextmanager
    def unit(self, scope: str) -> Iterator[_Rows]:
        with self._lock:
            try:
                with self._engine.begin() as connection:
                    count = self._take_lock(connection, scope)
                    if self._seen.get(scope) != count - 1:  # another process has had the scope: read afresh
                        self._kept[scope] = _Kept()
                    rows = _Rows(connection, scope, self._kept.setdefault(scope, _Kept()))
                    yield rows
                    rows.write(self._upsert)
                self._seen[scope] = count
            except BaseException:  # rolled back: what was kept may hold writes that never were
                self._seen.pop(scope, None)
                self._kept.pop(scope, None)
                raise

    def _take_lock(self, connection: Connection, scope: str) -> int:
        """Lock the scope (a row lock on PostgreSQL, the write lock on SQLite) before any read; count the unit."""
        lock = (update(STATE).where(STATE.c.scope == scope, STATE.c.bucket == LOCK, STATE.c.key == LOCK)
                .values(value=cast(cast(STATE.c.value, BigInteger) + 1, Text), updated_at=utcnow())
                .returning(STATE.c.value))
        count = connection.scalar(lock)
        if count is None:
            connection.execute(self._make_lock, {"scope": scope, "bucket": LOCK, "key": LOCK, "value": "0",
                                                 "updated_at": utcnow()})
            count = connection.scalar(lock)
        return int(count)


@dataclass
class _Kept:
    texts: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (bucket, key) -> text; None: absent
    complete: set[str] = field(default_factory=set)  # buckets read whole


class _Rows:
    def __init__(self, connection: Connection, scope: str, kept: _Kept) -> None:
        self._connection, self._scope, self._kept = connection, scope, kept
        self._puts: dict[tuple[str, str], str] = {}
        self._deletes: set[tuple[str, str]] = set()

    def get(self, bucket: str, key: str) -> str | None:
        if (bucket, key) not in self._kept.texts and bucket not in self._kept.complete:
            self._kept.texts[(bucket, key)] = self._connection.scalar(select(STATE.c.value).where(
                STATE.c.scope == self._scope, STATE.c.bucket == bucket, STATE.c.key == key))
        return self._kept.texts.get((bucket, key))

    def all(self, bucket: str) -> dict[str, str]:
        if bucket not in self._kept.complete:
            for key, value in self._connection.execute(select(STATE.c.key, STATE.c.value).where(
                    STATE.c.scope == self._scope, STATE.c.bucket == bucket)):
                self._kept.texts[(bucket, key)] = value
            self._kept.complete.add(bucket)
        return {k: v for (b, k), v in self._kept.texts.items() if b == bucket and v is not None}

    def put(self, bucket: str, key: str, text: str) -> None:
        self._puts[(bucket, key)] = self._kept.texts[(bucket, key)] = text
        self._deletes.discard((bucket, key))

    def delete(self, bucket: str, key: str) -> None:
        self._puts.pop((bucket, key), None)
        self._deletes.add((bucket, key))
        self._kept.texts[(bucket, key)] = None

    def write(self, upsert: Any) -> None:
        """Send the unit's writes together."""
        now = utcnow()
        if self._puts:
            self._connection.execute(upsert, [{"scope": self._scope, "bucket": b, "key": k, "value": v,
                                               "updated_at": now} for (b, k), v in self._puts.items()])
        for bucket, key in self._deletes:
            self._connection.execute(delete(STATE).where(
                STATE.c.scope == self._scope, STATE.c.bucket == bucket, STATE.c.key == key))


def simulators(app: Flask) -> dict[str, Any]:
    """The configured adapters' simulators by adapter name (empty outside sandbox mode)."""
    return {name: adapter.simulator for name, adapter in app.extensions["kokin.adapters"].items()
            if getattr(adapter, "simulator", None) is not None}


def attach_simulators(app: Flask) -> dict[str, Any]:
    """Share the simulators' state through the database and send their pages to /sandbox; return them."""
    found = simulators(app)
    if not found:
        return found
    mode = app.config.get("SANDBOX_STATE", "database")
    if mode not in ("database", "memory"):
        raise RuntimeError(f"SANDBOX_STATE must be 'database' or 'memory', not {mode!r}")
    store: StateStore = DatabaseStore(app.extensions["kokin.db"].engine) if mode == "database" else MemoryStore()
    app.extensions["kokin.sandbox_store"] = store
    fallback = str(app.config.get("SANDBOX_BASE_URL")
                   or (app.config["MUNICIPALITIES"] or [{}])[0].get("pay_base_url") or DEFAULT_BASE_URL)

    def page(path: str) -> str:
        base = request.host_url if has_request_context() else fallback
        return base.rstrip("/") + path

    for name, simulator in found.items():
        if mode == "database":
            simulator.state.attach(store, name)
        if isinstance(simulator, StripeSimulator):
            simulator.hosted_page_url = lambda session_id: page(f"/sandbox/stripe/checkout/{session_id}")
        elif isinstance(simulator, PayPaySimulator):
            simulator.payment_page_url = lambda reference: page(f"/sandbox/paypay/codes/{reference}")
    return found


def record_delivery(store: StateStore, adapter: str, reference: str, event: str, status: int, answer: str) -> None:
    """Log one notification a sandbox page delivered to /webhooks/<adapter> (the newest few are kept)."""
    at = utcnow()
    entry = {"at": at.isoformat(), "adapter": adapter, "reference": reference, "event": event, "status": status,
             "answer": answer[:200]}
    with store.unit(DELIVERIES) as rows:
        rows.put("delivery", f"{at.isoformat()}-{secrets.token_hex(4)}", json.dumps(entry, ensure_ascii=False))
        keys = sorted(rows.all("delivery"))
        for old in keys[:-KEEP_DELIVERIES]:
            rows.delete("delivery", old)


def deliveries(store: StateStore, limit: int = 50) -> list[dict[str, Any]]:
    """The notifications the sandbox pages delivered, newest first."""
    with store.unit(DELIVERIES) as rows:
        found = rows.all("delivery")
    entries = [json.loads(found[key]) for key in sorted(found, reverse=True)[:limit]]
    for entry in entries:
        entry["at"] = datetime.fromisoformat(entry["at"])
    return entries

