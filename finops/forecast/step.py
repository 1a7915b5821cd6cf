"""`forecast_step`: the forecast stage of `finops run` (reads `spend_daily` and `budgets`, writes `forecasts`).

The stage's DuckDB reads and writes are the functions under "I/O" below (the forecast package owns its
table the way `finops.store.findings` owns `findings`); everything between them is the pure jobs of
`finops.forecast.model` and `finops.forecast.periods`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from finops.forecast.model import ForecastConfig, daily_forecast
from finops.forecast.periods import MONEY, breach_dates, calendar_periods, custom_period, period_totals
from finops.store.db import Database
from finops.store.spend import frame, registered

__all__ = ["forecast_step", "scope_history"]

_ID, _DAY, _COST = "series_id", "charge_day", "cost_usd"
_SEP = "\x1f"  # inside series ids only; never shown

_SPEND = """
    SELECT charge_day, team, feature, sum(cost_usd) AS cost_usd
    FROM spend_daily
    WHERE charge_day >= $start AND charge_day < $cutoff AND cost_usd IS NOT NULL
    GROUP BY ALL"""


def forecast_step(db: Database, as_of: datetime, run_id: int, *, config: ForecastConfig | None = None) -> int:
    """Forecast every team, budgeted feature and the company total as of `as_of`; rows written.

    Order of operations:
      1. cutoff = the UTC day of `as_of`: spend of the days before it is history (the day in progress is
         incomplete, so it is forecast whole, like the days after it);
      2. read the active team / team+feature budgets (when the `budgets` table exists) and the daily spend
         of every team, of the budgeted features and of the company (exact sums of `spend_daily`);
      3. periods: the month and quarter of the cutoff for every scope, and each custom budget period that
         contains the cutoff for its scope;
      4. forecast the daily spend of every scope (`model.daily_forecast`, one batch), then the period totals
         with their intervals (`periods.period_totals`) and the breach dates (`periods.breach_dates`);
      5. replace this UTC day's rows of `forecasts` in one transaction (a rerun for the same day, or the same
         `as_of`, leaves the same rows). When the inputs (history, budgets, periods, settings) hash to the
         fingerprint the day's rows were made from, nothing is recomputed: the rows only take the new `as_of`
         and `run_id`, so the scheduler's frequent runs cost a read, not a model fit.
    """
    config = config or ForecastConfig()
    cutoff = as_of.astimezone(UTC).date()
    budgets = _read_budgets(db)
    history, scopes = scope_history(_read_spend(db, cutoff, config.max_history_days), budgets)
    if history.height == 0:
        return _write(db, None, scopes, as_of, cutoff, run_id)
    # the days after the newest day with any spend are not known yet (a log shipper behind, a provider's
    # lag): they are forecast with the rest, not taken as $0
    data_end = _data_end(db, cutoff)
    budget_rows, periods = _periods(scopes, budgets, cutoff)
    fingerprint = _fingerprint(history, budget_rows, periods, config)
    if _same_inputs(db, cutoff, fingerprint):  # the scheduler's later runs of the day: nothing changed
        return _restamp(db, cutoff, as_of, run_id)
    horizon = int(periods.select((pl.col("period_end") - data_end).dt.total_days().max()).item())
    daily = daily_forecast(history, cutoff=data_end, horizon_days=horizon, config=config)
    totals = period_totals(daily, history, periods, value_col=_COST)
    totals = breach_dates(totals, history, budget_rows, id_col=_ID, time_col=_DAY, value_col=_COST)
    totals = totals.with_columns(
        input_fingerprint=pl.lit(fingerprint),
        data_through=pl.lit(data_end - timedelta(days=1)),
        note=pl.col("note") + _stale_note(data_end, cutoff),
    )
    return _write(db, totals, scopes, as_of, cutoff, run_id)


def _data_end(db: Database, cutoff: date) -> date:
    """The day after the newest day before `cutoff` with any spend (of any team, kind or price): the first day
    the forecast must forecast. `cutoff` when the data is current."""
    newest = db.scalar("SELECT max(charge_day) FROM spend_daily WHERE charge_day < $cutoff", {"cutoff": cutoff})
    return cutoff if newest is None else min(cutoff, newest + timedelta(days=1))


def _stale_note(data_end: date, cutoff: date) -> str:
    if data_end >= cutoff:
        return ""
    newest, last = data_end - timedelta(days=1), cutoff - timedelta(days=1)
    return (
        f"; the newest spend is of {newest}: the {(cutoff - data_end).days} day(s) since, to {last}, have no data "
        "yet and are forecast, not taken as $0"
    )


def scope_history(spend: pl.DataFrame, budgets: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """From daily spend per (charge_day, team, feature): the long frame (series_id, charge_day, cost_usd) of
    every team, every budgeted (team, feature) and the company, and the scopes (series_id, scope, team,
    feature). Exact: DECIMAL sums."""
    features = budgets.filter(pl.col("feature").is_not_null()).select("team", "feature").unique()
    parts = [
        spend.group_by(_DAY)
        .agg(pl.col(_COST).sum())
        .with_columns(scope=pl.lit("company"), team=pl.lit(None, pl.String), feature=pl.lit(None, pl.String)),
        spend.group_by(_DAY, "team")
        .agg(pl.col(_COST).sum())
        .with_columns(scope=pl.lit("team"), feature=pl.lit(None, pl.String)),
        spend.join(features, on=["team", "feature"])
        .group_by(_DAY, "team", "feature")
        .agg(pl.col(_COST).sum())
        .with_columns(scope=pl.lit("feature")),
    ]
    long = pl.concat([p.select(_DAY, "scope", "team", "feature", pl.col(_COST).cast(MONEY)) for p in parts])
    long = long.with_columns(
        pl.concat_str(
            pl.col("scope"), pl.col("team").fill_null(""), pl.col("feature").fill_null(""), separator=_SEP
        ).alias(_ID)
    )
    scopes = long.select(_ID, "scope", "team", "feature").unique().sort(_ID)
    return long.select(_ID, _DAY, _COST).sort(_ID, _DAY), scopes


def _periods(scopes: pl.DataFrame, budgets: pl.DataFrame, cutoff: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Budgets keyed by (series_id, period) and the periods to forecast per series."""
    calendar = {p.kind: p for p in calendar_periods(cutoff)}
    rows: list[dict[str, Any]] = []
    for b in budgets.iter_rows(named=True):  # budgets are few: a loop over them, never over spend
        if b["period_kind"] in calendar:
            p = calendar[b["period_kind"]]
        elif b["period_kind"] == "custom" and b["period_start"] and b["period_end"]:
            p = custom_period(b["period_start"], b["period_end"])
            if not p.start <= cutoff < p.end:
                continue
        else:
            continue
        scope = "team" if b["feature"] is None else "feature"
        series_id = _SEP.join((scope, b["team"], b["feature"] or ""))
        rows.append(
            {
                _ID: series_id,
                "period": p.label,
                "period_kind": p.kind,
                "period_start": p.start,
                "period_end": p.end,
                "budget_id": b["budget_id"],
                "amount_usd": b["amount_usd"],
            }
        )
    budget_rows = pl.DataFrame(
        rows,
        schema={
            _ID: pl.String,
            "period": pl.String,
            "period_kind": pl.String,
            "period_start": pl.Date,
            "period_end": pl.Date,
            "budget_id": pl.Int64,
            "amount_usd": pl.Decimal(38, 6),
        },
    ).join(scopes.select(_ID), on=_ID, how="semi")
    calendar_rows = pl.DataFrame(
        [
            {"period": p.label, "period_kind": p.kind, "period_start": p.start, "period_end": p.end}
            for p in calendar.values()
        ]
    )
    periods = pl.concat(
        [
            scopes.select(_ID).join(calendar_rows, how="cross"),
            budget_rows.filter(pl.col("period_kind") == "custom").select(
                _ID, "period", "period_kind", "period_start", "period_end"
            ),
        ]
    ).unique(maintain_order=True)
    return budget_rows.select(_ID, "period", "budget_id", "amount_usd"), periods


def _fingerprint(history: pl.DataFrame, budgets: pl.DataFrame, periods: pl.DataFrame, config: ForecastConfig) -> str:
    """A digest of everything a forecast depends on (the frames are small: days x scopes)."""
    digest = hashlib.sha256(repr(config).encode())
    for data in (history, budgets.sort(pl.all()), periods.sort(pl.all())):
        digest.update(data.write_csv().encode())  # text: Arrow buffers may carry uninitialised padding
    return digest.hexdigest()[:32]


# ------------------------------------------------------------------------------------------------ I/O


def _same_inputs(db: Database, cutoff: date, fingerprint: str) -> bool:
    stored = db.execute(
        "SELECT DISTINCT input_fingerprint FROM forecasts WHERE forecast_day = $cutoff", {"cutoff": cutoff}
    )
    return [r[0] for r in stored] == [fingerprint]


def _restamp(db: Database, cutoff: date, as_of: datetime, run_id: int) -> int:
    rows = db.execute(
        "UPDATE forecasts SET as_of = $as_of, run_id = $run WHERE forecast_day = $cutoff RETURNING 1",
        {"as_of": as_of, "run": run_id, "cutoff": cutoff},
    )
    return len(rows)


def _read_spend(db: Database, cutoff: date, history_days: int) -> pl.DataFrame:
    data = frame(db, _SPEND, {"start": cutoff - timedelta(days=history_days), "cutoff": cutoff})
    return data.with_columns(pl.col(_COST).cast(MONEY))


def _read_budgets(db: Database) -> pl.DataFrame:
    """Active team and team+feature budgets (a tag budget has no daily series to forecast); an empty frame
    when the `budgets` table does not exist yet."""
    empty = pl.DataFrame(
        schema={
            "budget_id": pl.Int64,
            "team": pl.String,
            "feature": pl.String,
            "period_kind": pl.String,
            "period_start": pl.Date,
            "period_end": pl.Date,
            "amount_usd": pl.Decimal(38, 6),
        }
    )
    columns = {
        r[0]
        for r in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'budgets' AND schema_name = 'main'"
        )
    }
    if not {"team", "feature", "period_kind", "amount_usd"} <= columns:
        return empty
    # optional columns the table may lack are selected as NULL; the names come from this fixed list only
    select = ", ".join(
        c if c in columns else f"NULL AS {c}"
        for c in ("budget_id", "team", "feature", "period_kind", "period_start", "period_end")
    )
    where = ["team IS NOT NULL"]
    where += ["tag IS NULL"] if "tag" in columns else []
    where += ["active"] if "active" in columns else []
    data = frame(db, f"SELECT {select}, amount_usd FROM budgets WHERE {' AND '.join(where)} ORDER BY ALL")
    return data.cast(empty.schema) if data.height else empty


def _write(
    db: Database, totals: pl.DataFrame | None, scopes: pl.DataFrame, as_of: datetime, cutoff: date, run_id: int
) -> int:
    """Replace the rows of the cutoff day with `totals` (none: just delete them)."""
    with db.transaction():
        db.execute("DELETE FROM forecasts WHERE forecast_day = $cutoff", {"cutoff": cutoff})
        if totals is None or totals.height == 0:
            return 0
        rows = totals.join(scopes, on=_ID).select(
            "team",
            "feature",
            "scope",
            "period",
            "period_kind",
            "period_start",
            "period_end",
            "forecast_start",
            pl.lit(cutoff).alias("forecast_day"),
            "data_through",
            pl.col("history_days").cast(pl.Int32),
            pl.col("actual_to_date").alias("actual_to_date_usd"),
            pl.col("remaining_days").cast(pl.Int32),
            pl.col("remaining").alias("remaining_usd"),
            pl.col("forecast").alias("forecast_usd"),
            pl.col("forecast_lo_80").alias("lo80_usd"),
            pl.col("forecast_hi_80").alias("hi80_usd"),
            pl.col("forecast_lo_95").alias("lo95_usd"),
            pl.col("forecast_hi_95").alias("hi95_usd"),
            pl.col("daily_forecast").alias("daily_forecast_usd"),
            "method",
            "note",
            "budget_id",
            "budget_usd",
            "breach_date",
            "input_fingerprint",
        )
        with registered(db, "_forecasts", rows):
            db.execute(
                "INSERT INTO forecasts BY NAME SELECT *, $as_of AS as_of, $run AS run_id, now() AS created_at "
                "FROM _forecasts",
                {"as_of": as_of, "run": run_id},
            )
    return rows.height
