"""Business days in Japan: weekends, national holidays and the year-end closure (12/29-1/3).

Business dates are Japan's (Asia/Tokyo, no summer time); moments are stored in UTC.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

TOKYO = ZoneInfo("Asia/Tokyo")


def business_date(moment: datetime) -> date:
    """The business date (Asia/Tokyo) of an aware moment."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are refused: attach a timezone")
    return moment.astimezone(TOKYO).date()


@lru_cache(maxsize=64)
def _japan_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("JP", years=year).keys())


def is_business_day(day: date) -> bool:
    """Tell whether public offices and banks are open on `day`."""
    if day.weekday() >= 5:
        return False
    if (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3):
        return False
    return day not in _japan_holidays(day.year)


@lru_cache(maxsize=4096)
def next_business_day(day: date) -> date:
    """Return `day` itself if it is a business day, else the first business day after it."""
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


@lru_cache(maxsize=4096)  # slip issuing asks once per slip; a year has a few dozen due dates
def store_deadline(due_date: date, offset_days: int) -> date:
    """Return the store deadline: `offset_days` after the due date, moved to a business day."""
    return next_business_day(due_date + timedelta(days=offset_days))


def business_day_after(day: date, days: int = 1) -> date:
    """Return the `days`-th business day after `day`."""
    while days > 0:
        day += timedelta(days=1)
        days -= is_business_day(day)
    return day


# Japanese eras (和暦) in files that give the year within an era and not the era itself
# (全銀協 formats: YYMMDD). A layout names the era its dates are in.
ERAS: dict[str, tuple[str, date]] = {"reiwa": ("令和", date(2019, 5, 1)), "heisei": ("平成", date(1989, 1, 8))}


def from_wareki(yymmdd: str, era: str) -> date:
    """Return the date of a 和暦 YYMMDD in `era` (reiwa: R08 is 2026); ValueError with a reason."""
    name, start = ERAS[era]
    if len(yymmdd) != 6 or not (yymmdd.isascii() and yymmdd.isdigit()):
        raise ValueError(f"is not a 和暦 date YYMMDD, got {yymmdd!r}")
    year, month, day = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    try:
        value = date(start.year + year - 1, month, day) if year else None
    except ValueError:
        value = None
    if value is None or value < start:
        raise ValueError(f"is not a date in {name} (YYMMDD, year {name}1 = {start.year}), got {yymmdd!r}")
    return value


def to_wareki(day: date, era: str) -> str:
    """Return `day` as YYMMDD in `era`."""
    start = ERAS[era][1]
    if day < start or day.year - start.year + 1 > 99:
        raise ValueError(f"{day} is not in {ERAS[era][0]}")
    return f"{day.year - start.year + 1:02d}{day:%m%d}"
