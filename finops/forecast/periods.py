"""Period totals: actual to date (exact) + the forecast of the rest of the period, with calibrated intervals,
and the day the cumulative spend is projected to cross a budget.

Periods are half-open ranges of UTC days, labelled as budgets label them: `2026-11` (month), `2026-Q4`
(quarter), `2026-11-10/2026-12-10` (custom; end exclusive).

Order of operations (`period_totals`), per (series, period) ending after the cutoff day (the first day the
model forecasts; a period may start after it when the newest data is older than the period):
  1. actual to date: the exact DECIMAL sum of the days in [period_start, cutoff); `forecast_start` is the
     later of the cutoff and period_start;
  2. remaining: the sum of the daily point forecasts of [forecast_start, period_end) (H days; floats);
  3. interval of the remaining total: remaining + z x H x scale, z the calibrated multiplier of the series'
     method at horizon H (the longest calibrated horizon h <= H, widened by sqrt(H / h) when shorter; the
     default multipliers for a short series, which could not be backtested); bounds clipped at zero and
     widened to hold the point;
  4. DECIMAL at the boundary: each float is rounded to 1e-6 USD and added to the exact actual to date.
`breach_dates` then walks the cumulative spend (actual days, then forecast days) of each (series, period)
that has a budget and returns the first day it exceeds the smallest budget amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from finops.forecast.model import DEFAULT_HORIZON, DEFAULT_MULTIPLIERS, MIN_POOLED, DailyForecast

__all__ = ["MONEY", "Period", "breach_dates", "calendar_periods", "custom_period", "period_totals"]

MONEY = pl.Decimal(38, 12)
_ROUND = 6  # decimals a float forecast keeps when it becomes money (1e-6 USD)


@dataclass(frozen=True)
class Period:
    """A half-open range of UTC days [start, end), its kind and label."""

    kind: str  # month | quarter | custom
    label: str
    start: date
    end: date


def calendar_periods(day: date) -> list[Period]:
    """The month and the quarter that contain `day`."""
    month_end = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    first = 3 * ((day.month - 1) // 3) + 1
    quarter_end = date(day.year + (first == 10), (first + 2) % 12 + 1, 1)
    return [
        Period("month", f"{day.year:04d}-{day.month:02d}", date(day.year, day.month, 1), month_end),
        Period("quarter", f"{day.year:04d}-Q{(first - 1) // 3 + 1}", date(day.year, first, 1), quarter_end),
    ]


def custom_period(start: date, end: date) -> Period:
    """A custom budget period [start, end), labelled `start/end` (ISO 8601 interval; end exclusive)."""
    return Period("custom", f"{start.isoformat()}/{end.isoformat()}", start, end)


def period_totals(
    daily: DailyForecast, actuals: pl.DataFrame, periods: pl.DataFrame, *, value_col: str
) -> pl.DataFrame:
    """One row per row of `periods` (id, `period`, `period_kind`, `period_start`, `period_end`; each must
    contain the cutoff day): actual to date, the forecast total and its intervals, `forecast_lo_80` ...

    `actuals` holds the exact daily spend (id, time, `value_col` DECIMAL) before the cutoff."""
    idc, tc, cutoff = daily.id_col, daily.time_col, daily.cutoff
    bad = periods.filter(pl.col("period_end") <= cutoff)
    if bad.height:
        raise ValueError(f"periods must end after the cutoff day {cutoff}; these do not: {bad.rows()[:3]}")
    if periods.height and int(periods.select((pl.col("period_end") - cutoff).dt.total_days().max()).item()) > (
        daily.horizon_days
    ):
        raise ValueError(f"a period ends after the forecast horizon of {daily.horizon_days} days from {cutoff}")
    return (
        periods.pipe(_actual_to_date, actuals, cutoff, idc, tc, value_col)
        .pipe(_remaining, daily)
        .pipe(_multipliers, daily)
        .pipe(_bounds, daily)
        .pipe(_to_money, daily)
    )


def _actual_to_date(
    periods: pl.DataFrame, actuals: pl.DataFrame, cutoff: date, idc: str, tc: str, value_col: str
) -> pl.DataFrame:
    """Step 1."""
    keys = [idc, "period"]
    summed = (
        periods.select(*keys, "period_start")
        .join(actuals.filter(pl.col(tc) < cutoff).select(idc, tc, value_col), on=idc)
        .filter(pl.col(tc) >= pl.col("period_start"))
        .group_by(keys)
        .agg(pl.col(value_col).cast(MONEY).sum().alias("actual_to_date"))
    )
    # the first day forecast: the cutoff, or the period's first day when it starts later (the newest data is
    # older than the period)
    start = pl.max_horizontal(pl.lit(cutoff), pl.col("period_start"))
    return periods.join(summed, on=keys, how="left").with_columns(
        pl.col("actual_to_date").fill_null(pl.lit(0).cast(MONEY)).cast(MONEY),
        forecast_start=start,
        remaining_days=(pl.col("period_end") - start).dt.total_days().cast(pl.Int64),
    )


def _remaining(periods: pl.DataFrame, daily: DailyForecast) -> pl.DataFrame:
    """Step 2: `remaining` (float) and `daily_forecast` (the days' point forecasts, in order)."""
    idc, tc = daily.id_col, daily.time_col
    keys = [idc, "period"]
    path = (
        periods.select(*keys, "forecast_start", "period_end")
        .join(daily.paths, on=idc)
        .filter(pl.col(tc) >= pl.col("forecast_start"), pl.col(tc) < pl.col("period_end"))
        .sort(*keys, tc)
        .group_by(keys, maintain_order=True)
        .agg(pl.col("forecast").sum().alias("remaining"), pl.col("forecast").alias("daily_forecast"))
    )
    return periods.join(path, on=keys, how="left").join(daily.series, on=idc, how="left")


def _multipliers(periods: pl.DataFrame, daily: DailyForecast) -> pl.DataFrame:
    """Step 3a: z multipliers per level: from the calibration of the series' method at the longest calibrated
    horizon <= H; for a short series (nothing to backtest) or an uncalibrated horizon, the defaults."""
    levels, config = daily.config.levels, daily.config
    zcols = [f"z_{side}_{level}" for level in levels for side in ("lo", "hi")]
    table = daily.calibration.select("method", "horizon", "n", *zcols).sort("horizon")
    joined = periods.sort("remaining_days").join_asof(
        table.rename({"horizon": "_cal_h", "n": "_cal_n"}),
        left_on="remaining_days",
        right_on="_cal_h",
        by="method",
        strategy="backward",
        check_sortedness=False,  # both sides are sorted by horizon, so each `by` group is
    )
    default = (pl.col("history_days") < config.min_model_days) | pl.col("_cal_h").is_null()
    return joined.with_columns(
        *(
            pl.when(default)
            .then(pl.lit(DEFAULT_MULTIPLIERS[level][side == "hi"]))
            .otherwise(pl.col(f"z_{side}_{level}"))
            .alias(f"z_{side}_{level}")
            for level in levels
            for side in ("lo", "hi")
        ),
        _cal_h=pl.when(default).then(pl.lit(DEFAULT_HORIZON)).otherwise(pl.col("_cal_h")),
        _default=default,
    )


def _bounds(periods: pl.DataFrame, daily: DailyForecast) -> pl.DataFrame:
    """Step 3b: bounds of the remaining total, and the interval part of the note."""
    h = pl.col("remaining_days").cast(pl.Float64)
    widen = pl.when(h > pl.col("_cal_h")).then((h / pl.col("_cal_h")).sqrt()).otherwise(1.0)
    spread = h * pl.col("scale") * widen
    bounds = []
    for level in daily.config.levels:
        lo = (pl.col("remaining") + pl.col(f"z_lo_{level}") * spread).clip(lower_bound=0.0)
        hi = (pl.col("remaining") + pl.col(f"z_hi_{level}") * spread).clip(lower_bound=0.0)
        bounds += [
            pl.min_horizontal(lo, pl.col("remaining")).alias(f"remaining_lo_{level}"),
            pl.max_horizontal(hi, pl.col("remaining")).alias(f"remaining_hi_{level}"),
        ]
    widened = pl.when(h > pl.col("_cal_h")).then(pl.format(", widened to {} days", pl.col("remaining_days")))
    basis = (
        pl.when(pl.col("_default"))
        .then(
            pl.concat_str(
                pl.lit("interval: default multipliers ("),
                pl.when(pl.col("history_days") < daily.config.min_model_days)
                .then(pl.lit("short history"))
                .otherwise(pl.lit(f"fewer than {MIN_POOLED} backtest totals")),
                pl.lit(f"; from a {DEFAULT_HORIZON}-day synthetic backtest)"),
                widened.otherwise(pl.lit("")),
            )
        )
        .otherwise(
            pl.concat_str(
                pl.format("interval: conformal from {} backtest totals of {} days", pl.col("_cal_n"), pl.col("_cal_h")),
                widened.otherwise(pl.lit("")),
            )
        )
    )
    return periods.with_columns(*bounds, note=pl.concat_str(pl.col("note"), pl.lit("; "), basis))


def _to_money(periods: pl.DataFrame, daily: DailyForecast) -> pl.DataFrame:
    """Step 4: the floats become DECIMAL (rounded to 1e-6 USD) on top of the exact actual to date."""
    idc = daily.id_col

    def money(col: str) -> pl.Expr:
        return pl.col("actual_to_date") + pl.col(col).round(_ROUND).cast(MONEY)

    # the days are rounded once and `remaining` is their exact sum, so the daily path adds up to it; the
    # bounds, rounded on their own, are widened to hold the point again
    days = pl.col("daily_forecast").list.eval(pl.element().round(_ROUND).cast(MONEY))
    remaining = pl.col("daily_forecast").list.sum().cast(MONEY)
    point = pl.col("actual_to_date") + pl.col("remaining")
    intervals = [
        (pl.min_horizontal if side == "lo" else pl.max_horizontal)(money(f"remaining_{side}_{level}"), point).alias(
            f"forecast_{side}_{level}"
        )
        for level in daily.config.levels
        for side in ("lo", "hi")
    ]
    periods = periods.with_columns(daily_forecast=days).with_columns(remaining=remaining)
    return periods.select(
        idc,
        "period",
        "period_kind",
        "period_start",
        "period_end",
        "forecast_start",
        "remaining_days",
        "actual_to_date",
        "remaining",
        point.alias("forecast"),
        *intervals,
        "daily_forecast",
        "method",
        "note",
        "history_days",
    ).sort(idc, "period_start", "period_end")


def breach_dates(
    totals: pl.DataFrame, actuals: pl.DataFrame, budgets: pl.DataFrame, *, id_col: str, time_col: str, value_col: str
) -> pl.DataFrame:
    """`totals` with `budget_id`, `budget_usd` and `breach_date`: the first UTC day on which the cumulative
    spend of the period (actual days, then forecast days) exceeds the budget; NULL when it never does in
    the period or the scope has no budget for it.

    `budgets` has id, `period`, `budget_id`, `amount_usd`. When several budgets share a scope and period
    the smallest amount is used (its breach comes first; ties: the lowest budget_id); the
    `daily_forecast` column lets a reader find the day for another amount."""
    keys = [id_col, "period"]
    binding = (
        budgets.sort("amount_usd", "budget_id")
        .group_by(keys, maintain_order=True)
        .first()
        .select(*keys, "budget_id", pl.col("amount_usd").cast(MONEY).alias("budget_usd"))
    )
    scoped = totals.join(binding, on=keys, how="inner")
    actual_days = (
        scoped.select(*keys, "period_start", "forecast_start")
        .join(actuals.select(id_col, time_col, value_col), on=id_col)
        .filter(pl.col(time_col) >= pl.col("period_start"), pl.col(time_col) < pl.col("forecast_start"))
        .select(*keys, pl.col(time_col).alias("_day"), pl.col(value_col).cast(MONEY).alias("_spend"))
    )
    forecast_days = (
        scoped.select(*keys, "forecast_start", "daily_forecast")
        .explode("daily_forecast")
        .with_columns(_i=pl.int_range(pl.len()).over(keys))
        .select(
            *keys,
            pl.col("forecast_start").dt.offset_by(pl.format("{}d", pl.col("_i"))).alias("_day"),
            pl.col("daily_forecast").cast(MONEY).alias("_spend"),
        )
        .drop_nulls("_spend")
    )
    crossed = (
        pl.concat([actual_days, forecast_days])
        .sort(*keys, "_day")
        .with_columns(_cum=pl.col("_spend").cum_sum().over(keys))
        .join(binding, on=keys)
        .filter(pl.col("_cum") > pl.col("budget_usd"))
        .group_by(keys)
        .agg(pl.col("_day").min().alias("breach_date"))
    )
    return totals.join(binding, on=keys, how="left").join(crossed, on=keys, how="left")
