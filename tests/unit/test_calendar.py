"""Business dates are Japan's: a moment stored in UTC belongs to the Tokyo date it falls on."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.calendar import business_date


@pytest.mark.parametrize(("moment", "day"), [
    (datetime(2026, 12, 1, 14, 59, 59, tzinfo=UTC), date(2026, 12, 1)),  # 23:59:59 in Tokyo
    (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), date(2026, 12, 2)),  # midnight in Tokyo
    (datetime(2027, 3, 31, 15, 0, tzinfo=UTC), date(2027, 4, 1)),  # a new fiscal year begins in Tokyo first
])
def test_a_moment_belongs_to_the_tokyo_date_it_falls_on(moment: datetime, day: date) -> None:
    assert business_date(moment) == day


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        business_date(datetime(2026, 12, 1, 12, 0))
