"""`GET /v1/forecasts`: the newest period-end forecast of a team (or one of its features, or the company)
with its 80 % and 95 % intervals, the spend so far, the budget and the projected breach date.

Read from the `forecasts` table (`finops run` and the scheduler write it, one row per scope, period and UTC
day). The budget is the active budget of exactly that scope and period (team, or team and feature, no tag;
the smallest amount when there are several, as the forecast stage does). The breach date is the first UTC
day on which the period's cumulative spend, actual days then the forecast's daily path
(`daily_forecast_usd`), exceeds the budget: the stored `breach_date` when the forecast was computed against
that same budget and amount; otherwise (a budget created or changed since the forecast) recomputed here
from the stored daily path, by the same rule, and from the exact daily spend when the budget was already
exceeded before the forecast's first day.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from finops.alert.budgets import Budget, list_budgets
from finops.alert.periods import Period, custom_period, period_at
from finops.api.auth import Caller
from finops.api.deps import DbDep, Reader, SettingsDep
from finops.api.models import ForecastInfo
from finops.api.routing import BodyLimitedRoute
from finops.errors import InputError, NotFound
from finops.store.db import Database
from finops.store.reports import scope_daily_spend, scope_forecast

router = APIRouter(route_class=BodyLimitedRoute, tags=["forecasts"])

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_CUSTOM = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})$")
_BAD_PERIOD = (
    "period is not a month (YYYY-MM), a quarter (YYYY-Qn) or a custom budget period (YYYY-MM-DD/YYYY-MM-DD, "
    "end exclusive); e.g. period=2026-11."
)


@router.get("/v1/forecasts", response_model=ForecastInfo)
def get_forecast(
    caller: Reader,
    db: DbDep,
    settings: SettingsDep,
    team: Annotated[
        str | None, Query(max_length=200, description="Default: the key's team when it has one; else the company.")
    ] = None,
    feature: Annotated[str | None, Query(max_length=200, description="A budgeted feature of the team.")] = None,
    period: Annotated[str | None, Query(max_length=40, description="Default: the UTC month of as_of.")] = None,
    as_of: Annotated[
        dt.datetime | None, Query(description="The newest forecast made at or before; default now.")
    ] = None,
) -> ForecastInfo:
    """The newest forecast of the scope and period, the budget of that scope and period, and its breach date."""
    team, feature = scope_of(caller, team or None, feature or None)
    as_of = _utc(as_of)
    wanted = parse_period(period, as_of or dt.datetime.now(dt.UTC))
    limit_ms = settings.api_query_time_limit_ms
    row = scope_forecast(db, team=team, feature=feature, period=wanted.label, as_of=as_of, time_limit_ms=limit_ms)
    if row is None:
        raise NotFound(
            f"No forecast of this scope for {wanted.label}. `finops run` (and the scheduler) forecast every team "
            "with spend, every feature with a budget, and the company, for the current month, quarter and custom "
            "budget periods.",
            period=wanted.label,
        )
    return ForecastInfo(**(row | {"as_of": _utc(row["as_of"])} | budget_fields(db, row, limit_ms)))


def scope_of(caller: Caller, team: str | None, feature: str | None) -> tuple[str | None, str | None]:
    """(team, feature) to read: the named team if the key sees it (else `OutOfScope`), a scoped key's only team,
    or the company (team None) for a key that sees every team."""
    if team is not None:
        caller.team_filter([team])
        return team, feature
    if caller.teams is None:
        if feature is not None:
            raise InputError("A feature forecast is per team; add team= to the feature.")
        return None, None
    if len(caller.teams) == 1:
        return next(iter(caller.teams)), feature
    raise InputError(f"This key sees several teams ({', '.join(sorted(caller.teams))}); name one with team=.")


def parse_period(text: str | None, now: dt.datetime) -> Period:
    """`2026-11`, `2026-Q4` or `2026-11-10/2026-12-10` as a period; None: the UTC month of `now`."""
    if text is None or not text.strip():
        found = period_at("month", now)
        assert found is not None
        return found
    text = text.strip()
    try:
        if m := _MONTH.match(text):
            found = period_at("month", dt.datetime(int(m[1]), int(m[2]), 1, tzinfo=dt.UTC))
        elif m := _QUARTER.match(text):
            found = period_at("quarter", dt.datetime(int(m[1]), 3 * int(m[2]) - 2, 1, tzinfo=dt.UTC))
        elif m := _CUSTOM.match(text):
            start, end = dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2])
            found = custom_period(start, end) if start < end else None
        else:
            found = None
    except (ValueError, OverflowError):  # month 13, day 31 of April, year 9999's successor
        found = None
    if found is None:
        raise InputError(_BAD_PERIOD, parameter="period")
    return found


def budget_fields(db: Database, row: dict[str, Any], time_limit_ms: int) -> dict[str, Any]:
    """`budget_id`, `budget_usd` and `breach_date` for a forecast row, against the budgets as they are now."""
    budget = _matching_budget(db, row)
    if budget is None:
        return {"budget_id": None, "budget_usd": None, "breach_date": None}
    if row["budget_id"] == budget.budget_id and row["budget_usd"] == budget.amount_usd:
        breach = row["breach_date"]  # the forecast stage computed it for this very budget
    else:
        breach = breach_date(db, row, budget.amount_usd, time_limit_ms)
    return {"budget_id": budget.budget_id, "budget_usd": budget.amount_usd, "breach_date": breach}


def _matching_budget(db: Database, row: dict[str, Any]) -> Budget | None:
    if row["team"] is None:
        return None  # a budget always names a team or a tag: the company total has none
    custom = (row["period_start"], row["period_end"]) if row["period_kind"] == "custom" else None
    matching = [
        b
        for b in list_budgets(db, team=row["team"])
        if b.feature == row["feature"]
        and b.tag is None
        and b.period_kind == row["period_kind"]
        and b.custom_range == custom
    ]
    return min(matching, key=lambda b: (b.amount_usd, b.budget_id), default=None)


def breach_date(db: Database, row: dict[str, Any], amount: Decimal, time_limit_ms: int) -> dt.date | None:
    """The first day of the period on which cumulative spend exceeds `amount`: the actual days (exact, from
    `spend_daily`, read only when the actual spend before the forecast already exceeds it), then the forecast's
    daily path from `forecast_start`. None when it does not within the period."""
    running: Decimal = row["actual_to_date_usd"]
    if running > amount:
        running = Decimal(0)
        days = scope_daily_spend(
            db,
            team=row["team"],
            feature=row["feature"],
            start=row["period_start"],
            end=row["forecast_start"],
            time_limit_ms=time_limit_ms,
        )
        for day, spend in days:
            running += spend
            if running > amount:
                return day
    first: dt.date = row["forecast_start"]
    for offset, spend in enumerate(row["daily_forecast_usd"] or []):
        running += spend or Decimal(0)
        if first + dt.timedelta(days=offset) >= row["period_end"]:
            break
        if running > amount:
            return first + dt.timedelta(days=offset)
    return None


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A time as UTC; one without an offset is taken as UTC."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the last representable UTC time
        raise InputError(
            "as_of is outside the times finops reads (years 1 to 9999 in UTC); expected e.g. 2026-11-01T00:00:00Z.",
            parameter="as_of",
        ) from None
