"""Budget periods on UTC calendar boundaries: months (`2026-11`), quarters (`2026-Q4`) and custom day ranges
(`2026-11-01/2027-01-01`, end exclusive)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

__all__ = ["PERIOD_KINDS", "Period", "PeriodKind", "custom_period", "period_at", "periods_between"]

PeriodKind = Literal["month", "quarter", "custom"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("month", "quarter", "custom")


@dataclass(frozen=True, order=True)
class Period:
    """A half-open range of UTC days [start, end) and its label."""

    start: date
    end: date
    label: str

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time(), UTC)

    def contains(self, moment: datetime) -> bool:
        return self.start_at <= moment < self.end_at

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _month(year: int, month: int) -> Period:
    end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Period(date(year, month, 1), end, f"{year:04d}-{month:02d}")


def _quarter(year: int, quarter: int) -> Period:
    first = 3 * (quarter - 1) + 1
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, first + 3, 1)
    return Period(date(year, first, 1), end, f"{year:04d}-Q{quarter}")


def custom_period(start: date, end: date) -> Period:
    return Period(start, end, f"{start.isoformat()}/{end.isoformat()}")


def period_at(kind: PeriodKind, moment: datetime, *, custom: tuple[date, date] | None = None) -> Period | None:
    """The period of `kind` that contains `moment` (UTC); None when a custom range does not contain it."""
    moment = moment.astimezone(UTC)
    if kind == "month":
        return _month(moment.year, moment.month)
    if kind == "quarter":
        return _quarter(moment.year, (moment.month - 1) // 3 + 1)
    assert custom is not None, "a custom period needs its start and end"
    period = custom_period(*custom)
    return period if period.contains(moment) else None


def periods_between(
    kind: PeriodKind, first: date, last: datetime, *, custom: tuple[date, date] | None = None, limit: int = 24
) -> list[Period]:
    """Periods of `kind` from the one containing day `first` up to the one containing `last`, oldest first
    (at most the `limit` most recent); a custom budget has its one range when it overlaps."""
    if kind == "custom":
        assert custom is not None
        period = custom_period(*custom)
        return [period] if period.end > first and period.start_at <= last else []
    found: list[Period] = []
    current = period_at(kind, last)
    assert current is not None
    while current.end > first and len(found) < limit:
        found.append(current)
        previous = period_at(kind, current.start_at - timedelta(days=1))
        assert previous is not None
        current = previous
    return sorted(found)
