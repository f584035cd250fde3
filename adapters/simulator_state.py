"""Where a simulator keeps its objects: in memory, or in a store that several processes share.

Every simulator keeps its state (sessions, payments, refunds, events) in named buckets, each
a mapping of string keys to objects, and reads or changes them only inside `state.unit()`.
Alone, a bucket is a plain dict in memory: each simulator, and so each process, has its own,
and nothing is copied (tests and the contract suite run as fast as before). Attached to a
StateStore, each unit is one transaction of the store: the store's lock for the simulator's
scope is taken first, the objects the unit reads are loaded (as JSON, through the bucket's
codec), and those it changed are written back when it ends. So `kokin serve`, `kokin recon run`
and `kokin scheduler run` in separate processes see one sandbox provider.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol


class StoredObjects(Protocol):
    """One unit's view of a scope in the store: JSON texts by (bucket, key)."""

    def get(self, bucket: str, key: str) -> str | None: ...

    def all(self, bucket: str) -> dict[str, str]: ...

    def put(self, bucket: str, key: str, text: str) -> None: ...

    def delete(self, bucket: str, key: str) -> None: ...


class StateStore(Protocol):
    """Shared storage: `unit(scope)` locks the scope, yields its objects and commits on success."""

    def unit(self, scope: str) -> AbstractContextManager[StoredObjects]: ...


@dataclass(frozen=True)
class Codec:
    """How a bucket's objects become JSON values and back (the identity for plain dicts and strings)."""

    encode: Callable[[Any], Any] = lambda value: value
    decode: Callable[[Any], Any] = lambda value: value


PLAIN = Codec()


class SimulatorState:
    """A simulator's buckets and its lock (thread-safe, re-entrant)."""

    def __init__(self, buckets: Mapping[str, Codec]) -> None:
        self._codecs = dict(buckets)
        self._lock = threading.RLock()
        self._memory: dict[str, dict[str, Any]] = {name: {} for name in self._codecs}
        self._store: StateStore | None = None
        self._scope = ""
        self._unit: dict[str, _StoredBucket] | None = None
        self._depth = 0

    @property
    def shared(self) -> bool:
        """True when the objects live in a store that other processes may change."""
        return self._store is not None

    def attach(self, store: StateStore, scope: str) -> None:
        """Keep the objects in `store` under `scope` from now on (the memory's are not copied)."""
        with self._lock:
            self._store, self._scope = store, scope

    @contextmanager
    def unit(self) -> Iterator[None]:
        """Hold the lock (and, when shared, one transaction of the store) for one operation."""
        with self._lock:
            if self._store is None or self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._store.unit(self._scope) as stored:
                self._unit = {name: _StoredBucket(stored, name, codec) for name, codec in self._codecs.items()}
                self._depth = 1
                try:
                    yield
                    for bucket in self._unit.values():
                        bucket.flush()
                finally:
                    self._unit, self._depth = None, 0

    def bucket(self, name: str) -> MutableMapping[str, Any]:
        """The bucket `name`; when shared, only inside a unit."""
        if self._store is None:
            return self._memory[name]
        if self._unit is None:
            raise RuntimeError("a shared simulator's objects are read inside `state.unit()` only")
        return self._unit[name]


class _StoredBucket(MutableMapping[str, Any]):
    """A bucket of the store for one unit: objects loaded on first use, changed ones written back."""

    def __init__(self, stored: StoredObjects, name: str, codec: Codec) -> None:
        self._stored, self._name, self._codec = stored, name, codec
        self._objects: dict[str, Any] = {}
        self._loaded: dict[str, str] = {}  # key -> the JSON text as read, to tell what changed
        self._deleted: set[str] = set()
        self._complete = False

    def __getitem__(self, key: str) -> Any:
        if key in self._objects:
            return self._objects[key]
        if key in self._deleted or self._complete:
            raise KeyError(key)
        text = self._stored.get(self._name, key)
        if text is None:
            raise KeyError(key)
        return self._remember(key, text)

    def __setitem__(self, key: str, value: Any) -> None:
        self._objects[key] = value
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018 - KeyError for a key that is not there, as a dict
        del self._objects[key]
        self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return iter(list(self._objects))

    def __len__(self) -> int:
        self._load_all()
        return len(self._objects)

    def _load_all(self) -> None:
        if not self._complete:
            for key, text in self._stored.all(self._name).items():
                if key not in self._objects and key not in self._deleted:
                    self._remember(key, text)
            self._complete = True

    def _remember(self, key: str, text: str) -> Any:
        self._loaded[key] = text
        value = self._objects[key] = self._codec.decode(json.loads(text))
        return value

    def flush(self) -> None:
        for key in self._deleted:
            if key in self._loaded:
                self._stored.delete(self._name, key)
        for key, value in self._objects.items():
            text = json.dumps(self._codec.encode(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            if self._loaded.get(key) != text:
                self._stored.put(self._name, key, text)


class MemoryStore:
    """A StateStore in this process's memory, objects kept as JSON text: tests of sharing and codecs."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.rows: dict[tuple[str, str, str], str] = {}

    @contextmanager
    def unit(self, scope: str) -> Iterator[StoredObjects]:
        with self._lock:
            changed = _MemoryRows(scope, dict(self.rows))
            yield changed
            self.rows = changed.rows  # all or nothing, as a transaction


class _MemoryRows:
    def __init__(self, scope: str, rows: dict[tuple[str, str, str], str]) -> None:
        self.scope, self.rows = scope, rows

    def get(self, bucket: str, key: str) -> str | None:
        return self.rows.get((self.scope, bucket, key))

    def all(self, bucket: str) -> dict[str, str]:
        return {k: v for (s, b, k), v in self.rows.items() if (s, b) == (self.scope, bucket)}

    def put(self, bucket: str, key: str, text: str) -> None:
        self.rows[(self.scope, bucket, key)] = text

    def delete(self, bucket: str, key: str) -> None:
        self.rows.pop((self.scope, bucket, key), None)
