"""What every dashboard is filtered by: a UTC date range, the teams, and the time grain.

Values arrive as text (a browser form sends `start=` when a field is left empty, which means "the
default", not an error); each mistake is one `InputError` sentence. Dates are `date` values from here on;
they are formatted for display only in the figures and the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from finops.errors import InputError

__all__ = ["GRAINS", "MAX_RANGE_DAYS", "ViewFilter", "default_range", "parse_filter"]

Grain = Literal["day", "month"]
GRAINS: tuple[Grain, ...] = ("day", "month")
MAX_RANGE_DAYS = 731  # two years: enough for month-on-month, small enough to draw


@dataclass(frozen=True)
class ViewFilter:
    """The filter of one dashboard: days [start, end) in UTC, the teams (None: every team the caller may
    see), the grain of the time series, and `as_of`, the evaluation time of the numbers shown."""

    start: date
    end: date
    teams: tuple[str, ...] | None
    grain: Grain
    as_of: datetime
    ran: bool = True  # False: no `finops run` yet, `as_of` is the time the page was asked for

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def as_of_day(self) -> date:
        """The UTC day `as_of` falls in: forecasts start there, and so does "this month"."""
        return self.as_of.astimezone(UTC).date()

    def query(self) -> dict[str, str | list[str]]:
        """The filter as query parameters (for links and the CSV downloads)."""
        params: dict[str, str | list[str]] = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "grain": self.grain,
        }
        if self.teams is not None:
            params["team"] = list(self.teams)
        return params


def default_range(as_of: datetime) -> tuple[date, date]:
    """From the first day of the month before `as_of`'s to the end of the last complete or current day."""
    as_of = as_of.astimezone(UTC)
    end = as_of.date() if as_of.time() == datetime.min.time() else as_of.date() + timedelta(days=1)
    last = end - timedelta(days=1)
    previous = (last.replace(day=1) - timedelta(days=1)).replace(day=1)
    return previous, end


def parse_filter(
    *,
    start: str | None,
    end: str | None,
    grain: str | None,
    teams: Sequence[str] | None,
    as_of: datetime,
    ran: bool = True,
) -> ViewFilter:
    """The filter from request values (already scoped: `teams` is what the caller may ask for)."""
    default_start, default_end = default_range(as_of)
    first = _date("start", start) or default_start
    last = _date("end", end) or default_end
    if last <= first:
        raise InputError(
            f"The date range {first} to {last} is empty; end is exclusive and must be after start.",
            parameter="end",
        )
    if (last - first).days > MAX_RANGE_DAYS:
        raise InputError(
            f"The date range is {(last - first).days} days; a dashboard shows at most {MAX_RANGE_DAYS}. "
            "Narrow start and end.",
            parameter="start",
        )
    chosen = (grain or "day").strip().lower() or "day"
    if chosen not in GRAINS:
        raise InputError(f"grain must be one of: {', '.join(GRAINS)}.", parameter="grain")
    return ViewFilter(
        start=first,
        end=last,
        teams=tuple(teams) if teams is not None else None,
        grain="month" if chosen == "month" else "day",
        as_of=as_of,
        ran=ran,
    )


def _date(name: str, value: str | None) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        shown = value.strip()[:40]
        raise InputError(f"{name} '{shown}' is not a date; expected YYYY-MM-DD (UTC).", parameter=name) from None
