"""Shared checks of list routes: the date range and the page size."""

from __future__ import annotations

import datetime as dt

from finops.errors import InputError
from finops.settings import Settings

__all__ = ["date_range", "page_limit"]

DEFAULT_DAYS = 30


def date_range(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """[start, end) in UTC days; default the 30 days up to and including today."""
    end = end or dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    if start is None:
        start = (
            end - dt.timedelta(days=DEFAULT_DAYS)
            if end > dt.date.min + dt.timedelta(days=DEFAULT_DAYS)
            else dt.date.min
        )
    if start >= end:
        raise InputError(
            f"start {start.isoformat()} is not before end {end.isoformat()}; expected start < end "
            "(end is exclusive: start=2026-10-01&end=2026-11-01 is October).",
            start=start.isoformat(),
            end=end.isoformat(),
        )
    return start, end


def page_limit(limit: int, settings: Settings) -> int:
    if limit > settings.api_max_rows:
        raise InputError(
            f"limit is above the most rows one page returns ({settings.api_max_rows}); page with "
            "offset, or raise FINOPS_API_MAX_ROWS.",
            limit=settings.api_max_rows,
        )
    return limit
