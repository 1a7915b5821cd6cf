"""`GET /v1/findings`: retry storms, cost spikes, outlier requests... whose window overlaps the range."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from finops.api.deps import DbDep, Reader, SettingsDep
from finops.api.models import FindingRow, FindingsPage
from finops.api.paging import date_range, page_limit
from finops.api.routing import BodyLimitedRoute
from finops.detect.findings import FINDING_KINDS, SEVERITIES
from finops.errors import InputError
from finops.store.reports import FindingsQuery, data_version, findings_page

router = APIRouter(route_class=BodyLimitedRoute, tags=["findings"])

Names = Annotated[list[str] | None, Query(max_length=100)]


@router.get("/v1/findings", response_model=FindingsPage)
def get_findings(
    caller: Reader,
    db: DbDep,
    settings: SettingsDep,
    start: dt.date | None = None,
    end: Annotated[dt.date | None, Query(description="Exclusive; default tomorrow (UTC).")] = None,
    kind: Names = None,
    team: Names = None,
    severity: Names = None,
    limit: Annotated[int, Query(ge=1)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> FindingsPage:
    """Findings costliest first, with their evidence (the ids of the events involved)."""
    start, end = date_range(start, end)
    _check_names("kind", kind, FINDING_KINDS)
    _check_names("severity", severity, SEVERITIES)
    query = FindingsQuery(
        start=start,
        end=end,
        kinds=kind,
        teams=caller.team_filter(team),
        severities=severity,
        limit=page_limit(limit, settings),
        offset=offset,
    )
    version = data_version(db)  # before the page: a run that starts after it is seen by the next page
    page = findings_page(db, query, time_limit_ms=settings.api_query_time_limit_ms)
    return FindingsPage(
        start=start,
        end=end,
        rows=[FindingRow(**row) for row in page.rows],
        limit=query.limit,
        offset=offset,
        next_offset=offset + query.limit if page.has_more else None,
        data_version=version,
    )


def _check_names(name: str, values: list[str] | None, allowed: tuple[str, ...]) -> None:
    """A filter value no finding can have is the caller's typo: say so rather than answer an empty page."""
    for value in values or ():
        if value not in allowed:
            raise InputError(f"{name} '{value}' is not one of: {', '.join(allowed)}.", parameter=name)
