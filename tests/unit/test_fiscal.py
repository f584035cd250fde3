"""Which fiscal year money for a claim books to: the attribution table at every boundary."""
from __future__ import annotations

from datetime import date

import pytest

from domain.fiscal import ATTRIBUTION, attribution, booked_fiscal_year, claim_fiscal_year, closing_cutoff, parse_cutoff


@pytest.mark.parametrize(("due", "claim_year"), [
    (date(2026, 4, 1), 2026), (date(2027, 3, 31), 2026), (date(2026, 3, 31), 2025), (date(2027, 4, 1), 2027),
])
def test_a_claim_belongs_to_the_fiscal_year_of_its_due_date(due: date, claim_year: int) -> None:
    assert claim_fiscal_year(due) == claim_year


@pytest.mark.parametrize(("due", "paid_on", "cutoff", "rule", "booked"), [
    # 前納: paid before the claim's year starts books to the claim's year
    (date(2026, 6, 30), date(2026, 3, 31), "05-31", "前納", 2026),
    (date(2026, 6, 30), date(2025, 12, 1), "05-31", "前納", 2026),
    # the year itself, and its 出納整理期間 up to the cut-off
    (date(2026, 6, 30), date(2026, 4, 1), "05-31", "現年度・出納整理期間", 2026),
    (date(2026, 6, 30), date(2027, 3, 31), "05-31", "現年度・出納整理期間", 2026),
    (date(2026, 6, 30), date(2027, 4, 1), "05-31", "現年度・出納整理期間", 2026),
    (date(2026, 6, 30), date(2027, 5, 31), "05-31", "現年度・出納整理期間", 2026),
    # after the cut-off: the year received (過年度収入)
    (date(2026, 6, 30), date(2027, 6, 1), "05-31", "過年度収入", 2027),
    (date(2026, 6, 30), date(2028, 4, 1), "05-31", "過年度収入", 2028),
    (date(2026, 6, 30), date(2028, 3, 31), "05-31", "過年度収入", 2027),
    # a ward that closes its data on 20 May
    (date(2026, 6, 30), date(2027, 5, 20), "05-20", "現年度・出納整理期間", 2026),
    (date(2026, 6, 30), date(2027, 5, 21), "05-20", "過年度収入", 2027),
    # a claim due in March belongs to the year ending then
    (date(2027, 3, 31), date(2027, 4, 15), "05-31", "現年度・出納整理期間", 2026),
    (date(2027, 3, 31), date(2027, 6, 1), "05-31", "過年度収入", 2027),
    # one cut-off in April
    (date(2026, 6, 30), date(2027, 4, 30), "04-30", "現年度・出納整理期間", 2026),
    (date(2026, 6, 30), date(2027, 5, 1), "04-30", "過年度収入", 2027),
])
def test_the_attribution_table_decides_at_every_boundary(due: date, paid_on: date, cutoff: str, rule: str,
                                                         booked: int) -> None:
    assert attribution(due, paid_on, cutoff).name == rule
    assert booked_fiscal_year(due, paid_on, cutoff) == booked


def test_the_table_reads_top_to_bottom_and_covers_every_day() -> None:
    assert [rule.name for rule in ATTRIBUTION] == ["前納", "現年度・出納整理期間", "過年度収入"]
    due = date(2026, 8, 31)
    day = date(2025, 1, 1)
    while day < date(2029, 1, 1):  # every day decides, and the year never goes back in time
        assert booked_fiscal_year(due, day) >= claim_fiscal_year(due)
        day = date.fromordinal(day.toordinal() + 1)


@pytest.mark.parametrize("cutoff", ["5-31", "06-01", "03-31", "04-31", "05-32", "0531", ""])
def test_a_cutoff_outside_the_closing_period_is_refused_with_why(cutoff: str) -> None:
    with pytest.raises(ValueError, match="closing cut-off|day is out of range|month must be"):
        parse_cutoff(cutoff)


def test_the_default_cutoff_is_31_may_of_the_next_year() -> None:
    assert closing_cutoff(2026) == date(2027, 5, 31)
