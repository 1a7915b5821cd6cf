"""The data behind each chart: a `Context` (database, filter, scope) in, one polars frame out.

Every read goes through the named queries of `finops.store.reports`, the same ones `/v1/spend` and
`/v1/findings` answer from, so finance and engineering see one set of numbers. Money stays DECIMAL; the
frames here are what the CSV downloads hold, before any chart folds small series together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
from finops.dashboards.filters import ViewFilter

from finops.alert.budgets import list_budgets
from finops.store import reports
from finops.store.db import Database

__all__ = [
    "Context",
    "alerts",
    "buckets",
    "burn_down",
    "feature_spend",
    "findings",
    "kind_spend",
    "model_spend",
    "month_forecasts",
    "month_to_date",
    "reconciliation",
    "team_spend",
]

MAX_TABLE_ROWS = 10_000


@dataclass(frozen=True)
class Context:
    """One dashboard request: the database, its filter, the caller's teams, and the team of a team view."""

    db: Database
    filter: ViewFilter
    time_limit_ms: int
    team: str | None = None

    @property
    def teams(self) -> list[str] | None:
        """The team filter of every read (None: every team, buckets included)."""
        if self.team is not None:
            return [self.team]
        return list(self.filter.teams) if self.filter.teams is not None else None

    @property
    def company_wide(self) -> bool:
        """True when nothing narrows the view to teams: company-wide reads (bills, bucket teams) apply."""
        return self.teams is None

    def spend(self, *dims: str, kinds: Sequence[str] | None = None, by_time: bool = True) -> pl.DataFrame:
        grain = (self.filter.grain,) if by_time else ()
        query = reports.SpendQuery(
            start=self.filter.start,
            end=self.filter.end,
            group_by=(*grain, *dims),
            teams=self.teams,
            kinds=kinds,
        )
        frame = reports.spend_frame(self.db, query, time_limit_ms=self.time_limit_ms)
        return frame.rename({self.filter.grain: "period"}) if by_time else frame


_MEASURES = ("cost_usd", "requests", "unpriced_requests")


def team_spend(ctx: Context) -> pl.DataFrame:
    """period, team, cost_usd, requests, unpriced_requests."""
    return ctx.spend("team").select("period", "team", *_MEASURES)


def feature_spend(ctx: Context) -> pl.DataFrame:
    """period, team, feature, cost_usd, requests, unpriced_requests."""
    return ctx.spend("team", "feature").select("period", "team", "feature", *_MEASURES)


def kind_spend(ctx: Context) -> pl.DataFrame:
    """period, kind (`tokens`, `gpu`, `gpu idle`), cost_usd: GPU spend split into jobs and idle capacity."""
    frame = ctx.spend("kind", "team")
    kind = pl.when((pl.col("kind") == "gpu") & (pl.col("team") == "__idle__")).then(pl.lit("gpu idle"))
    return (
        frame.with_columns(kind=kind.otherwise(pl.col("kind")))
        .group_by("period", "kind")
        .agg(pl.col("cost_usd").sum(), pl.col("requests").sum())
        .sort("period", "kind")
    )


def model_spend(ctx: Context) -> pl.DataFrame:
    """provider, model, cost_usd, requests and token sums of token spend, costliest first."""
    frame = ctx.spend("provider", "model", kinds=["tokens"], by_time=False)
    return frame.select(
        "provider", "model", *_MEASURES, "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"
    ).sort("cost_usd", "provider", "model", descending=[True, False, False], nulls_last=True)


def month_to_date(ctx: Context) -> dict[str, Decimal | date]:
    """This month to the as-of day, the same days of last month, and last month's total (exact)."""
    today = ctx.filter.as_of_day
    this_start = today.replace(day=1)
    last_start = (this_start - timedelta(days=1)).replace(day=1)
    same_days = min(today.day - 1, (this_start - last_start).days)  # clamped to last month's length
    query = reports.SpendQuery(start=last_start, end=today, group_by=("day",), teams=ctx.teams)
    daily = reports.spend_frame(ctx.db, query, time_limit_ms=ctx.time_limit_ms).select("day", "cost_usd")

    def total(start: date, end: date) -> Decimal:
        value = daily.filter(pl.col("day") >= start, pl.col("day") < end)["cost_usd"].sum()
        return Decimal(value or 0)

    return {
        "this_month": total(this_start, today),
        "last_month_same_days": total(last_start, last_start + timedelta(days=same_days)),
        "last_month": total(last_start, this_start),
        "this_start": this_start,
        "last_start": last_start,
        "as_of_day": today,
    }


def month_forecasts(ctx: Context) -> pl.DataFrame:
    """The latest month-end forecast of each team (and of the company for a company-wide view; the named
    buckets have their own chart), with the budget its breach date is computed against: team,
    actual_to_date_usd, forecast_usd, lo/hi 80 and 95, budget_usd, breach_date, method, period."""
    frame = reports.period_forecasts(ctx.db, as_of=ctx.filter.as_of, teams=ctx.teams, time_limit_ms=ctx.time_limit_ms)
    return frame.filter(pl.col("feature").is_null(), ~pl.col("team").str.starts_with("__").fill_null(False)).select(
        "period",
        "team",
        "scope",
        "actual_to_date_usd",
        "forecast_usd",
        "lo80_usd",
        "hi80_usd",
        "lo95_usd",
        "hi95_usd",
        "budget_id",
        "budget_usd",
        "breach_date",
        "method",
        "forecast_start",
        "daily_forecast_usd",
    )


def buckets(ctx: Context) -> pl.DataFrame:
    """bucket, cost_usd, requests, unpriced_requests for each named bucket."""
    query = reports.SpendQuery(start=ctx.filter.start, end=ctx.filter.end, teams=ctx.teams)
    return reports.bucket_spend(ctx.db, query, time_limit_ms=ctx.time_limit_ms)


def reconciliation(ctx: Context) -> pl.DataFrame:
    """Per day and billed provider: our price, the bill, the gap. Empty unless the view is company-wide."""
    frame = reports.reconciliation_daily(
        ctx.db, start=ctx.filter.start, end=ctx.filter.end, time_limit_ms=ctx.time_limit_ms
    )
    return frame if ctx.company_wide else frame.clear()


def findings(ctx: Context) -> pl.DataFrame:
    """Findings whose window overlaps the range, costliest first, with their evidence ids."""
    query = reports.FindingsQuery(start=ctx.filter.start, end=ctx.filter.end, teams=ctx.teams, limit=MAX_TABLE_ROWS)
    return reports.findings_frame(ctx.db, query, time_limit_ms=ctx.time_limit_ms)


def alerts(ctx: Context) -> pl.DataFrame:
    """Alerts fired in the range (to the end of its last day), newest first, of the view's teams."""
    return reports.alerts_frame(
        ctx.db,
        start=ctx.filter.start,
        end=ctx.filter.end,
        teams=ctx.teams,
        limit=MAX_TABLE_ROWS,
        time_limit_ms=ctx.time_limit_ms,
    )


_CONE = ("lo95_usd", "lo80_usd", "hi80_usd", "hi95_usd")


def burn_down(ctx: Context) -> pl.DataFrame:
    """The month containing the last day of the range (not later than the as-of day), one row per day:
    team, charge_day, actual_usd, cumulative_usd, and for the current month forecast_usd (the day's point
    forecast), forecast_cumulative_usd and the cone lo95_usd, lo80_usd, hi80_usd, hi95_usd; with the
    month's budget_usd, breach_date and month_forecast_usd repeated on every row.

    Order of operations:
      1. actual daily spend of the team from the first of the month to the as-of day (or the month's end);
      2. the latest forecast of the month: its daily points after the actuals, accumulated on top of the
         actual to date; the cone spreads the period total's interval over the remaining days in
         proportion to the point forecast (the interval of the total is exact; the daily cone is drawn);
      3. the budget: the one the forecast's breach date was computed against, else the team's monthly one.
    """
    assert ctx.team is not None, "a burn-down is of one team"
    last = min(ctx.filter.end - timedelta(days=1), ctx.filter.as_of_day)
    start = last.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    actual_end = min(end, ctx.filter.as_of_day) if ctx.filter.as_of_day > start else end
    query = reports.SpendQuery(start=start, end=actual_end, group_by=("day",), teams=[ctx.team])
    daily = reports.spend_frame(ctx.db, query, time_limit_ms=ctx.time_limit_ms).select(
        pl.col("day").alias("charge_day"), pl.col("cost_usd").fill_null(0).alias("actual_usd")
    )
    days = pl.DataFrame({"charge_day": pl.date_range(start, end, "1d", closed="left", eager=True)})
    frame = days.join(daily, on="charge_day", how="left").with_columns(
        pl.when(pl.col("charge_day") < actual_end).then(pl.col("actual_usd").fill_null(0)).alias("actual_usd")
    )
    frame = frame.with_columns(cumulative_usd=pl.col("actual_usd").cum_sum())
    return _with_forecast(ctx, frame, start, end)


def _with_forecast(ctx: Context, frame: pl.DataFrame, start: date, end: date) -> pl.DataFrame:
    rows = reports.period_forecasts(
        ctx.db, as_of=ctx.filter.as_of, teams=[ctx.team or ""], time_limit_ms=ctx.time_limit_ms
    ).filter(pl.col("feature").is_null())
    current = rows.height > 0 and start <= ctx.filter.as_of_day < end
    money = pl.Decimal(38, 12)
    if not current:
        empty = [pl.lit(None, money).alias(c) for c in ("forecast_usd", "forecast_cumulative_usd", *_CONE)]
        return _finish(ctx, frame.with_columns(empty), _monthly_budget(ctx), None, None)
    row = rows.row(0, named=True)
    actual: Decimal = row["actual_to_date_usd"]
    remaining: Decimal = row["forecast_usd"] - actual
    path = pl.DataFrame(
        {
            "charge_day": pl.date_range(
                row["forecast_start"],
                row["forecast_start"] + timedelta(days=len(row["daily_forecast_usd"]) - 1),
                "1d",
                eager=True,
            ),
            "forecast_usd": pl.Series(row["daily_forecast_usd"], dtype=money),
        }
    ).with_columns(forecast_cumulative_usd=pl.lit(actual, money) + pl.col("forecast_usd").cum_sum())
    share = pl.col("forecast_cumulative_usd") - pl.lit(actual, money)
    cone = [(pl.lit(actual, money) + share * pl.lit(_ratio(row[c] - actual, remaining), money)).alias(c) for c in _CONE]
    frame = frame.join(path.with_columns(cone), on="charge_day", how="left")
    budget = row["budget_usd"] if row["budget_usd"] is not None else _monthly_budget(ctx)
    return _finish(ctx, frame, budget, row["breach_date"], row["forecast_usd"])


def _finish(
    ctx: Context, frame: pl.DataFrame, budget: Decimal | None, breach: date | None, forecast: Decimal | None
) -> pl.DataFrame:
    money = pl.Decimal(38, 12)
    return frame.select(
        pl.lit(ctx.team).alias("team"),
        pl.all(),
        pl.lit(budget, money).alias("budget_usd"),
        pl.lit(breach, pl.Date).alias("breach_date"),
        pl.lit(forecast, money).alias("month_forecast_usd"),
    )


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole).quantize(Decimal("1e-12")) if whole else Decimal(1)


def _monthly_budget(ctx: Context) -> Decimal | None:
    amounts = [
        b.amount_usd
        for b in list_budgets(ctx.db, team=ctx.team)
        if b.period_kind == "month" and b.feature is None and b.tag is None and b.team == ctx.team
    ]
    return min(amounts) if amounts else None
