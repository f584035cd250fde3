"""The gateway's clock: the wall clock, or the moment a played day set, going on from there."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain import clock
from gateway.db import utcnow


def test_the_clock_is_the_wall_clock_unless_a_moment_is_played() -> None:
    assert not clock.played()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    moment = datetime(2026, 11, 4, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    with clock.playing(moment):
        assert clock.played()
        assert timedelta(0) <= utcnow() - moment < timedelta(seconds=1)  # the services read it
        assert abs(clock.timestamp() - moment.timestamp()) < 1
        later = moment + timedelta(hours=8)
        with clock.playing(later):  # nests
            assert timedelta(0) <= clock.now() - later < timedelta(seconds=1)
        assert timedelta(0) <= clock.now() - moment < timedelta(seconds=1)
    assert not clock.played() and abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)


def test_a_played_moment_is_set_back_when_the_body_fails_and_a_naive_one_is_refused() -> None:
    with pytest.raises(RuntimeError), clock.playing(datetime(2026, 1, 5, tzinfo=UTC)):
        raise RuntimeError("the day failed")
    assert not clock.played()
    with pytest.raises(ValueError, match="naive"), clock.playing(datetime(2026, 1, 5)):  # noqa: DTZ001
        pass
    assert not clock.played()
