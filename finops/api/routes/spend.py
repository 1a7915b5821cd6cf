"""`GET /v1/spend`: attributed spend over a UTC date range, grouped by fixed dimensions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from finops.api.deps import DbDep, Reader, SettingsDep
from finops.api.models import SpendPage, SpendRow, SpendTotals
from finops.api.paging import date_range, page_limit
from finops.api.routing import BodyLimitedRoute
from finops.errors import InputError
from finops.store.reports import GROUPS, SpendQuery, data_version, parse_group_by, spend_page, spend_totals

router = APIRouter(route_class=BodyLimitedRoute, tags=["spend"])

Names = Annotated[list[str] | None, Query(max_length=100)]


@router.get("/v1/spend", response_model=SpendPage, response_model_exclude_unset=True)
def get_spend(
    caller: Reader,
    db: DbDep,
    settings: SettingsDep,
    start: dt.date | None = None,
    end: Annotated[dt.date | None, Query(description="Exclusive; default tomorrow (UTC).")] = None,
    group_by: Annotated[str | None, Query(description=f"Comma-separated: {', '.join(GROUPS)}.")] = None,
    team: Names = None,
    feature: Names = None,
    provider: Names = None,
    model: Names = None,
    kind: Annotated[list[Literal["tokens", "gpu"]] | None, Query(max_length=2)] = None,
    limit: Annotated[int, Query(ge=1)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> SpendPage:
    """Spend per group, exact decimal dollars; rows of the caller's teams only."""
    start, end = date_range(start, end)
    query = SpendQuery(
        start=start,
        end=end,
        group_by=parse_group_by(group_by),
        teams=caller.team_filter(team),
        features=feature,
        providers=provider,
        models=model,
        kinds=kind,
        limit=page_limit(limit, settings),
        offset=offset,
    )
    version = data_version(db)  # before the page: a run that starts after it is seen by the next page
    page = spend_page(db, query, time_limit_ms=settings.api_query_time_limit_ms)
    totals = spend_totals(db, query, time_limit_ms=settings.api_query_time_limit_ms)
    if not page.rows and offset == 0:
        _explain_a_comma_list(team=team, feature=feature, provider=provider, model=model)
    return SpendPage(
        start=start,
        end=end,
        group_by=list(query.group_by),
        source=query.source,
        rows=[SpendRow(**row) for row in page.rows],
        totals=SpendTotals(**totals),
        limit=query.limit,
        offset=offset,
        next_offset=offset + query.limit if page.has_more else None,
        data_version=version,
    )


def _explain_a_comma_list(**filters: list[str] | None) -> None:
    """An empty answer to a filter value holding a comma (`team=ads,search`) is most likely a list written as
    `group_by` takes one: say how filters take several values instead of answering nothing."""
    for name, values in filters.items():
        listed = next((v for v in values or () if "," in v), None)
        if listed is not None:
            parts = [p.strip() for p in listed.split(",") if p.strip()]
            raise InputError(
                f"No spend has {name} '{listed[:100]}'; {name} takes one value per parameter: "
                + "&".join(f"{name}={p}" for p in parts[:5])
                + ".",
                parameter=name,
            )
