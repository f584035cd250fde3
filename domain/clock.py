"""The one clock the gateway reads: the wall clock, unless a past day is being played.

Every service, simulator and adapter reads the time through `now()` (the services through
`gateway.db.utcnow`). `kokin demo --days N` plays a month day by day: it sets the clock to
each moment of the month in turn (`playing`), so that what the services record, what the
simulators sign and what the checks compare all live that day. Time goes on from the moment
set, as it does on the wall. Nothing else sets the clock; it is never set in serving.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)  # the played moment minus the wall clock's when it was set


def now() -> datetime:
    """The current moment, timezone-aware in UTC: the wall clock's, or the played day's."""
    return datetime.now(UTC) + _offset


def timestamp() -> float:
    """`now()` as seconds since the epoch (for the APIs that sign with epoch seconds)."""
    return now().timestamp()


@contextmanager
def playing(moment: datetime) -> Iterator[datetime]:
    """Set the clock to `moment` (aware) while the body runs; time goes on from there. Nests."""
    global _offset
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are refused: attach a timezone")
    before = _offset
    _offset = moment - datetime.now(UTC)
    try:
        yield moment
    finally:
        _offset = before


def played() -> bool:
    """Whether the clock is set away from the wall clock."""
    return _offset != timedelta(0)
