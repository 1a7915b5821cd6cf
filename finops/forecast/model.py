"""Daily spend paths per series, a per-series seasonal-naive fallback, and multipliers for period totals.

Input is statsforecast's long frame (one row per series and UTC day, `id_col` / `time_col` / `target_col`);
output is a `DailyForecast`: a daily point path per series, the method each series uses, and the calibrated
quantiles ("multipliers") of the error of an H-day *total*, from which `periods.period_totals` builds
intervals for whatever is left of a month or a quarter.

Order of operations (`daily_forecast`):
  1. densify: one row per series and day from its first day with spend (at most `max_history_days` back)
     to the day before `cutoff`; a missing day is zero spend (the step passes as `cutoff` the day after the
     newest data of any series, so days not reported yet are not zeros);
  2. split: a series with fewer than `min_model_days` days is short and uses the seasonal naive (the mean
     of its days when it has less than one season), and says so;
  3. backtest the others: one `cross_validation` call per group of series with the same feasible plan
     (horizon h, up to `max_windows` origins `backtest_step` days apart, the most recent; fitted once
     on the oldest window and rolled forward to the others, refitted every `refit_every` windows), the
     candidate models and the seasonal naive alike. Fitting dominates the cost (AutoETS alone took
     ~110 ms a series, 10x DynamicOptimizedTheta; MSTL's roll-forward ~9 ms a window), hence two Theta
     models fitted once, and 28 origins two days apart rather than 56 daily ones;
  4. select per series: the mean of the candidate models, unless its backtest MAE is higher than the
     seasonal naive's (then the seasonal naive, and the note says by how much);
  5. calibrate: each backtest error of an H-day total, divided by H x the series' scale as of that
     origin (the MAE of the seasonal naive over the `scale_days` before it), is one draw of a scale-free
     error; pooled over series per (method, H), their empirical quantiles are the interval multipliers
     (studentized split conformal). Summing daily bounds would ignore that daily errors are correlated
     (a level error repeats every day), so the total's error is measured as a total;
  6. forecast: one `forecast` call for every long series; negative days are clipped to zero.

Floats throughout: money becomes DECIMAL only where `periods` adds the exact actual-to-date.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

__all__ = [
    "DEFAULT_HORIZON",
    "DEFAULT_MULTIPLIERS",
    "MIN_POOLED",
    "MODEL_METHOD",
    "NAIVE_METHOD",
    "WINDOW_METHOD",
    "DailyForecast",
    "ForecastConfig",
    "daily_forecast",
]

MODEL_METHOD = "ensemble(AutoTheta,DynamicOptimizedTheta)"
NAIVE_METHOD = "seasonal_naive"
WINDOW_METHOD = "window_average"  # less than one season of history: the mean of the days seen

# Multipliers for series too short to backtest (fewer than `min_model_days` days): the quantiles of the
# seasonal naive's 14-day-total errors / (14 x scale) over 2,240 short-history origins (7-27 days of history)
# of the synthetic backtest (bench/forecast.py data, seeds 1-4), rounded outwards. Keyed by level:
# (lower, upper) multiplier of H x scale, measured at DEFAULT_HORIZON days and widened by sqrt(H / 14) past it.
DEFAULT_MULTIPLIERS: dict[int, tuple[float, float]] = {80: (-0.5, 1.6), 95: (-1.0, 3.5)}
DEFAULT_HORIZON = 14

MIN_POOLED = 20  # backtest totals needed before a horizon's quantiles are trusted


@dataclass(frozen=True)
class ForecastConfig:
    """What the forecast does; the defaults are what `forecast_step` runs (and what the backtest measured)."""

    season_length: int = 7  # weekly seasonality of daily spend
    levels: tuple[int, ...] = (80, 95)
    min_model_days: int = 28  # fewer days of history: seasonal naive, said so in the note
    min_train_days: int = 21  # the shortest fit of a backtest
    max_windows: int = 28  # backtest origins per series (the most recent, `backtest_step` days apart)
    min_windows: int = 7
    backtest_step: int = 2  # days between backtest origins: 28 of them span the last 8 weeks
    refit_every: int = 28  # backtest windows between refits (the models are rolled forward in between): one fit
    max_history_days: int = 365  # older spend is not used
    scale_days: int = 56  # the scale of a series: seasonal-naive MAE over its most recent days
    models: tuple[str, ...] = ("AutoTheta", "DynamicOptimizedTheta")  # averaged; see `_candidates`


@dataclass(frozen=True)
class DailyForecast:
    """What `daily_forecast` returns; `periods.period_totals` turns it into period totals.

    - `paths`: id, time, `forecast` (float USD, >= 0): one row per series and day of the horizon;
    - `series`: id, `method`, `note`, `history_days`, `scale`;
    - `calibration`: `method`, `horizon` (H days), `n` (pooled backtest totals) and, per level L,
      `z_lo_L` / `z_hi_L`: the interval of an H-day total is its point forecast + z x H x scale.
    """

    cutoff: date
    horizon_days: int
    config: ForecastConfig
    id_col: str
    time_col: str
    paths: pl.DataFrame
    series: pl.DataFrame
    calibration: pl.DataFrame
    backtest: dict[str, Any] = field(default_factory=dict)  # counts, for notes and the benchmark


def daily_forecast(
    history: pl.DataFrame,
    *,
    cutoff: date,
    horizon_days: int,
    config: ForecastConfig | None = None,
    id_col: str = "series_id",
    time_col: str = "charge_day",
    target_col: str = "cost_usd",
) -> DailyForecast:
    """Forecast `horizon_days` days from `cutoff` (the first day forecast) for every series of `history`,
    which holds only days before `cutoff` (later rows are ignored)."""
    config = config or ForecastConfig()
    missing = [c for c in (id_col, time_col, target_col) if c not in history.columns]
    if missing:
        raise ValueError(f"history lacks column(s) {missing}; received {history.columns}")
    if horizon_days < 1:
        raise ValueError(f"horizon_days is {horizon_days}; expected at least 1")
    if not set(config.levels) <= set(DEFAULT_MULTIPLIERS):
        raise ValueError(f"levels {config.levels} are not supported. Valid values are: {sorted(DEFAULT_MULTIPLIERS)}.")
    cols = _Cols(id_col, time_col, target_col)
    dense = _densify(history, cutoff, config, cols)
    scales = _scales(dense, config, cols)
    series = _summarise(scales, cols)
    long_ids = series.filter(pl.col("history_days") >= config.min_model_days)[id_col]
    long = dense.filter(pl.col(id_col).is_in(long_ids.implode()))

    backtest = _backtest(long, series, horizon_days, config, cols)
    selection = _select(backtest, cols)
    calibration = _calibrate(backtest, scales, config, cols)
    series = _describe(series, selection, config, cols)
    paths = pl.concat(
        [
            _model_paths(long, series, horizon_days, config, cols),
            _naive_paths(dense.filter(~pl.col(id_col).is_in(long_ids.implode())), cutoff, horizon_days, config, cols),
        ],
        how="vertical",
    ).with_columns(pl.col("forecast").clip(lower_bound=0.0))
    counts = {
        "series": series.height,
        "backtested_series": long_ids.len(),
        "backtest_origins": int(backtest.select(pl.struct(id_col, "cutoff").n_unique()).item())
        if backtest.height
        else 0,
    }
    return DailyForecast(cutoff, horizon_days, config, id_col, time_col, paths, series, calibration, counts)


# --------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _Cols:
    id: str
    time: str
    y: str


def _densify(history: pl.DataFrame, cutoff: date, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """Step 1: id, time, y (float) for every day from the series' first day (capped) to cutoff - 1."""
    last = cutoff - timedelta(days=1)
    oldest = cutoff - timedelta(days=config.max_history_days)
    kept = (
        history.lazy()
        .filter(pl.col(c.time) < cutoff, pl.col(c.time) >= oldest)
        .group_by(c.id, c.time)
        .agg(pl.col(c.y).cast(pl.Float64).sum())
    )
    spans = kept.group_by(c.id).agg(pl.col(c.time).min().alias("_first"))
    days = spans.select(c.id, pl.date_ranges("_first", pl.lit(last), "1d").alias(c.time)).explode(c.time)
    return (
        days.join(kept, on=[c.id, c.time], how="left")
        .with_columns(pl.col(c.y).fill_null(0.0))
        .sort(c.id, c.time)
        .collect()
    )


def _scales(dense: pl.DataFrame, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """id, time, scale: each series' scale as of the end of each day, over the `scale_days` days up to it.

    The scale is the MAE of the seasonal naive (mean |y_t - y_{t-s}|); where that is 0 or undefined, the MAE
    of the naive (mean |y_t - y_{t-1}|), then a tenth of the mean level, then 0. It is measured as of each
    backtest origin, not as of the cutoff: the errors of a growing series' older windows are small in
    today's dollars but not in theirs (dividing them by today's scale made the intervals too narrow)."""
    s, w = config.season_length, config.scale_days

    def rolling_mean(expr: pl.Expr) -> pl.Expr:
        present = expr.is_not_null().cast(pl.Int64).rolling_sum(w, min_samples=1)
        return pl.when(present > 0).then(expr.fill_null(0.0).rolling_sum(w, min_samples=1) / present)

    positive = pl.when(pl.col("scale") > 0).then(pl.col("scale"))
    return (
        dense.with_columns(
            _s1=rolling_mean((pl.col(c.y) - pl.col(c.y).shift(s)).abs()).over(c.id),
            _s2=rolling_mean((pl.col(c.y) - pl.col(c.y).shift(1)).abs()).over(c.id),
            _s3=rolling_mean(pl.col(c.y).abs()).over(c.id) * 0.1,
        )
        .with_columns(scale=pl.col("_s1"))
        .with_columns(scale=positive.fill_null(pl.col("_s2")))
        .with_columns(scale=positive.fill_null(pl.col("_s3")))
        .select(c.id, c.time, pl.col("scale").fill_nan(None).fill_null(0.0))
    )


def _summarise(scales: pl.DataFrame, c: _Cols) -> pl.DataFrame:
    """Step 2: history_days and the current scale of each series."""
    return (
        scales.group_by(c.id)
        .agg(pl.len().cast(pl.Int64).alias("history_days"), pl.col("scale").sort_by(c.time).last())
        .sort(c.id)
    )


def _candidates(config: ForecastConfig) -> list[Any]:
    """The averaged models and the seasonal naive, as statsforecast objects (imported here: statsforecast
    takes seconds to import, and most commands never forecast)."""
    from statsforecast.models import (
        MSTL,
        AutoCES,
        AutoETS,
        AutoTheta,
        DynamicOptimizedTheta,
        SeasonalNaive,
    )

    s = config.season_length
    known: dict[str, Callable[[], Any]] = {
        "AutoCES": lambda: AutoCES(season_length=s, alias="AutoCES"),
        "AutoETS": lambda: AutoETS(season_length=s, alias="AutoETS"),
        "DynamicOptimizedTheta": lambda: DynamicOptimizedTheta(season_length=s, alias="DynamicOptimizedTheta"),
        "AutoTheta": lambda: AutoTheta(season_length=s, alias="AutoTheta"),
        "MSTL": lambda: MSTL(season_length=s, alias="MSTL"),
    }
    unknown = [m for m in config.models if m not in known]
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}. Valid values are: {', '.join(sorted(known))}.")
    return [known[m]() for m in config.models] + [SeasonalNaive(season_length=s, alias=NAIVE_METHOD)]


def _statsforecast(config: ForecastConfig) -> Any:
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    # a model that fails on one series (e.g. an optimiser on a degenerate series) falls back for that series
    # only; the backtest then judges the result like any other
    return StatsForecast(
        models=_candidates(config),
        freq="1d",
        n_jobs=1,
        fallback_model=SeasonalNaive(season_length=config.season_length),
    )


def _plans(series: pl.DataFrame, horizon: int, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """Per long series, the backtest it can afford: `h` (backtest horizon) and `windows`, each taken from a
    short list of sizes so that series of similar length share one statsforecast call."""
    sizes_h = sorted({horizon, *(x for x in (31, 14, 7, 1) if x < horizon)}, reverse=True)
    sizes_w = sorted(
        {config.max_windows, *(x for x in (56, 28, 14, config.min_windows) if x < config.max_windows)},
        reverse=True,
    )
    available, step = pl.col("history_days") - config.min_train_days, config.backtest_step
    h = pl.lit(None, pl.Int64)
    for size in reversed(sizes_h):  # the largest size that still leaves min_windows origins
        h = pl.when(available - (config.min_windows - 1) * step >= size).then(pl.lit(size)).otherwise(h)
    w = pl.lit(None, pl.Int64)
    for size in reversed(sizes_w):
        w = pl.when(available - pl.col("h") - (size - 1) * step >= 0).then(pl.lit(size)).otherwise(w)
    return (
        series.filter(pl.col("history_days") >= config.min_model_days)
        .with_columns(h=h)
        .with_columns(windows=w)
        .drop_nulls(["h", "windows"])
        .select(c.id, "h", "windows")
    )


def _backtest(long: pl.DataFrame, series: pl.DataFrame, horizon: int, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """Step 3: id, cutoff, k (1..h), y, model (the mean of the candidates) and seasonal-naive forecasts."""
    plans = _plans(series, horizon, config, c)
    frames: list[pl.DataFrame] = []
    models = list(config.models)
    for (h, windows), ids in plans.group_by("h", "windows", maintain_order=True):
        subset = long.filter(pl.col(c.id).is_in(ids[c.id].implode()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # optimisers probing degenerate parameters
            cv = _statsforecast(config).cross_validation(
                h=int(h),
                df=subset,
                n_windows=int(windows),
                step_size=config.backtest_step,
                refit=config.refit_every if int(windows) > config.refit_every else False,
                id_col=c.id,
                time_col=c.time,
                target_col=c.y,
            )
        frames.append(
            cv.select(
                pl.col(c.id),
                pl.col("cutoff").cast(pl.Date),
                ((pl.col(c.time).cast(pl.Date) - pl.col("cutoff").cast(pl.Date)).dt.total_days()).alias("k"),
                pl.col(c.y),
                pl.mean_horizontal(models).clip(lower_bound=0.0).alias(MODEL_METHOD),
                pl.col(NAIVE_METHOD).clip(lower_bound=0.0),
            )
        )
    if not frames:
        schema: dict[str, pl.DataType] = {c.id: long.schema[c.id], "cutoff": pl.Date(), "k": pl.Int64()}
        return pl.DataFrame(schema=schema | {c.y: pl.Float64(), MODEL_METHOD: pl.Float64(), NAIVE_METHOD: pl.Float64()})
    return pl.concat(frames).sort(c.id, "cutoff", "k")


def _select(backtest: pl.DataFrame, c: _Cols) -> pl.DataFrame:
    """Step 4: id, method, mae_ratio (model / seasonal naive), origins."""
    return (
        backtest.group_by(c.id)
        .agg(
            (pl.col(MODEL_METHOD) - pl.col(c.y)).abs().mean().alias("_mae_model"),
            (pl.col(NAIVE_METHOD) - pl.col(c.y)).abs().mean().alias("_mae_naive"),
            pl.col("cutoff").n_unique().alias("origins"),
        )
        .with_columns(
            mae_ratio=pl.when(pl.col("_mae_naive") > 0)
            .then(pl.col("_mae_model") / pl.col("_mae_naive"))
            .otherwise(pl.when(pl.col("_mae_model") > 0).then(float("inf")).otherwise(1.0)),
        )
        .with_columns(
            method=pl.when(pl.col("mae_ratio") > 1.0).then(pl.lit(NAIVE_METHOD)).otherwise(pl.lit(MODEL_METHOD))
        )
        .select(c.id, "method", "mae_ratio", "origins")
    )


def _calibrate(backtest: pl.DataFrame, scales: pl.DataFrame, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """Step 5: per (method, horizon H), the pooled quantiles of (total error over H days) / (H x scale), the
    scale as of each backtest origin (its `cutoff`, the last day it saw)."""
    errors = (
        backtest.join(scales.rename({c.time: "cutoff"}), on=[c.id, "cutoff"])
        .filter(pl.col("scale") > 0)
        .unpivot(index=[c.id, "cutoff", "k", c.y, "scale"], on=[MODEL_METHOD, NAIVE_METHOD], variable_name="method")
        .sort(c.id, "method", "cutoff", "k")
        .with_columns(_err=(pl.col(c.y) - pl.col("value")).cum_sum().over(c.id, "method", "cutoff"))
        .with_columns(z=pl.col("_err") / (pl.col("k") * pl.col("scale")))
    )
    quantiles = []
    for level in config.levels:
        tail = (100 - level) / 200
        # outward interpolation: with n draws the bounds are never inside the empirical quantiles
        quantiles += [
            pl.col("z").quantile(tail, "lower").alias(f"z_lo_{level}"),
            pl.col("z").quantile(1 - tail, "higher").alias(f"z_hi_{level}"),
        ]
    return (
        errors.group_by("method", pl.col("k").alias("horizon"))
        .agg(pl.len().alias("n"), *quantiles)
        .filter(pl.col("n") >= MIN_POOLED)
        .sort("method", "horizon")
    )


def _describe(series: pl.DataFrame, selection: pl.DataFrame, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """Each series' method and a one-line note that says why."""
    s, short = config.season_length, config.min_model_days
    days = pl.col("history_days").cast(pl.String)
    ratio = pl.col("mae_ratio").round(2).cast(pl.String)
    origins = pl.col("origins").cast(pl.String)
    model = "mean of " + ", ".join(config.models) + f" (season {s})"
    return (
        series.join(selection, on=c.id, how="left")
        .with_columns(
            method=pl.when(pl.col("method").is_not_null())
            .then(pl.col("method"))
            .when(pl.col("history_days") >= s)
            .then(pl.lit(NAIVE_METHOD))
            .otherwise(pl.lit(WINDOW_METHOD)),
        )
        .with_columns(
            note=pl.when(pl.col("mae_ratio").is_null() & (pl.col("history_days") >= s))
            .then(
                pl.concat_str(pl.lit(f"seasonal naive (season {s}): "), days, pl.lit(f" days of history (< {short})"))
            )
            .when(pl.col("mae_ratio").is_null())
            .then(pl.concat_str(pl.lit("mean of the "), days, pl.lit(f" days of history (< one season of {s})")))
            .when((pl.col("method") == NAIVE_METHOD) & pl.col("mae_ratio").is_infinite())
            .then(
                pl.concat_str(
                    pl.lit(f"seasonal naive (season {s}): exact in the backtest over "),
                    origins,
                    pl.lit(" origins, where the model was not"),
                )
            )
            .when(pl.col("method") == NAIVE_METHOD)
            .then(
                pl.concat_str(
                    pl.lit(f"seasonal naive (season {s}): the model's backtest MAE was "),
                    ratio,
                    pl.lit("x the seasonal naive's over "),
                    origins,
                    pl.lit(" origins"),
                )
            )
            .otherwise(
                pl.concat_str(
                    pl.lit(model + ": backtest MAE "),
                    ratio,
                    pl.lit("x the seasonal naive's over "),
                    origins,
                    pl.lit(" origins"),
                )
            )
        )
        .select(c.id, "method", "note", "history_days", "scale")
        .sort(c.id)
    )


def _model_paths(
    long: pl.DataFrame, series: pl.DataFrame, horizon: int, config: ForecastConfig, c: _Cols
) -> pl.DataFrame:
    """Step 6: one statsforecast call for every long series; each keeps the method selected for it."""
    if long.height == 0:
        return _no_paths(long, c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fc: pl.DataFrame = _statsforecast(config).forecast(
            h=horizon, df=long, id_col=c.id, time_col=c.time, target_col=c.y
        )
    return (
        fc.with_columns(pl.col(c.time).cast(pl.Date), pl.mean_horizontal(list(config.models)).alias(MODEL_METHOD))
        .join(series.select(c.id, "method"), on=c.id)
        .select(
            c.id,
            c.time,
            pl.when(pl.col("method") == MODEL_METHOD)
            .then(pl.col(MODEL_METHOD))
            .otherwise(pl.col(NAIVE_METHOD))
            .alias("forecast"),
        )
    )


def _naive_paths(short: pl.DataFrame, cutoff: date, horizon: int, config: ForecastConfig, c: _Cols) -> pl.DataFrame:
    """Short series: the last season repeated (seasonal naive), or the mean of the days seen when there is
    less than one season."""
    s = config.season_length
    if short.height == 0:
        return _no_paths(short, c)
    last = (
        short.with_columns(_n=pl.len().over(c.id), _age=pl.int_range(pl.len()).reverse().over(c.id))
        .filter(pl.col("_age") < s)
        .with_columns(_mean=pl.col(c.y).mean().over(c.id))
    )
    # day k of the horizon (0-based) repeats the day (k mod s) of the last season, counted from its start
    slots = last.with_columns(_slot=(s - 1 - pl.col("_age"))).select(c.id, "_n", "_slot", c.y, "_mean")
    days = pl.DataFrame({"_k": list(range(horizon))}).with_columns(
        pl.lit(cutoff).dt.offset_by(pl.format("{}d", pl.col("_k"))).alias(c.time), _slot=pl.col("_k") % s
    )
    ids = slots.select(c.id, "_n", "_mean").unique()
    return (
        ids.join(days, how="cross")
        .join(slots.select(c.id, "_slot", c.y), on=[c.id, "_slot"], how="left")
        .select(
            c.id,
            pl.col(c.time).cast(pl.Date),
            pl.when(pl.col("_n") >= s).then(pl.col(c.y)).otherwise(pl.col("_mean")).alias("forecast"),
        )
        .sort(c.id, c.time)
    )


def _no_paths(dense: pl.DataFrame, c: _Cols) -> pl.DataFrame:
    return pl.DataFrame(schema={c.id: dense.schema[c.id], c.time: pl.Date, "forecast": pl.Float64})
