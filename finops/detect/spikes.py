"""Stage 4, cost spikes and level shifts: spend per team, team x feature and team x feature x model, hourly and
daily, against its own seasonal, robust, past-only baseline; `score_series` is the same scorer over any series
(`finops detect series`), together with the shape score of `finops.detect.shapes`.

The scorer (`score_points`), per series, each row judged only by the rows before it:
  1. expectations: the median of the same hour of day over the last `season_days` days, of the same hour of the
     week over the last `season_weeks` weeks, and of the last `level_rows` rows; each row takes the one whose
     median absolute error over the previous `accuracy_rows` rows was smallest (so a series without seasonality,
     or with only a daily one, picks what fits it); watched upwards (cost), an hourly row expects at least the
     weekly-seasonal median (downwards: at most), so the return of a weekday after a quiet weekend is not a spike;
  2. scale: 1.4826 x the median absolute residual of the previous `scale_rows` rows (MAD), floored at
     `scale_floor_rel` x the median |value| of that window, at `scale_floor_std` x the residuals' plain standard
     deviation (sparse series, where the MAD is 0) and at an absolute floor, so flat and sparse series do not
     explode;
  3. z = (value - expected) / scale, in the watched direction (up for cost); evidence e = max(z, sqrt(k) x the
     smallest z of the last k = `sustain_rows` rows), since k rows in a row at z are about as unlikely as one at
     sqrt(k) z (a level shift is seen before any one row is extreme);
  4. novelty w = e / max((1 + `novelty_margin`) x the usual worst e of the previous `memory_rows` rows (their
     `memory_quantile` quantile; 1 = the largest), `z_threshold`): a row as surprising as the worst of its recent
     past (or as the threshold, in a quiet series) has w = 1, so a series that is always jumpy, or a second row
     of an incident already seen, does not keep alarming;
  5. score = w^2 / (1 + w^2) in 0..1 (0.5 at w = 1, 0.8 at w = 2, 0.9 at w = 3); a row with fewer than
     `min_history_rows` rows before it scores 0.

Cost findings (`detect_spikes`), in order:
  1. `_spend_grid`: cost per complete hour (and per complete UTC day) for every series at the three grains, hours
     without spend filled with 0 from the series' first hour, unpriced cost (NULL) counted as 0;
  2. series with less than `min_history_days` of history: one `insufficient_history` row each (score 0, no
     excess; only at the coarsest grain that is short, and only if it spent at least `min_excess_usd` in the
     horizon), and no spike judgement;
  3. `score_points` on the rest, with the cost floors of the scale (`cost_scale_floor_rel`, `cost_scale_floor_std`,
     `scale_floor_usd`); an hour (day) is anomalous when e >= `z_threshold` and cost > expected;
  4. `_merge` (as `findings.merge_windows`): anomalous hours (days) at most `merge_gap_hours` apart are one
     incident, kept if its peak score reaches `finding_min_score`, or (hourly) `corroborated_min_score` when the
     series' request count scores at least `traffic_min_score` in the incident (`_traffic`: the same scorer on
     the hourly request counts, run only for series holding a candidate, and only when `corroborated_min_score`
     is below `finding_min_score`: by default it is not); its excess is sum(cost) - sum(expected), exact Decimal;
  5. an incident after which the complete days stay above their weekday's usual level (the median of the
     `level_shift_baseline_days` before the change: short, so that steady growth is not a shift) by
     `level_shift_min_rel` in the median, at least half that on a `level_shift_min_share` of the days (quiet
     days may dip), for at least `level_shift_min_hours`, is a `level_shift`: one finding from the change to the
     end of the data, its excess measured against the rate of the week before, provided those days keep at
     least `level_shift_min_kept` of the incident's own rise (a spike on a growing series falls back to the
     growth); later incidents of the series are part of it; other incidents are `cost_spike`s;
  6. keep spikes with an excess of at least `min_excess_usd` and of at least `min_excess_rel` x their expected
     cost, and level shifts of at least `level_shift_min_usd_per_day` a day; then, among those, drop a daily
     incident whose detected change overlaps an hourly incident of the same series (or starts while its hourly
     level shift lasts), and an hourly spike that starts while a daily level shift of the series lasts;
     drop a spike a few requests explain (its `few_sessions` most expensive traces cost at least
     `few_sessions_share` of the excess: runaway requests or agent loops, which `outliers.py` reports);
  7. one finding per incident across grains, overlap judged on the detected change (a level shift's window
     before it is extended to the end of the data): a parent's spike where a child's level shift starts gives
     way to that shift; among findings of one kind, a parent (team, or team x feature) with a single
     overlapping child finding that holds at least `child_share` of its excess gives way to the child (more
     specific), otherwise the parent absorbs its overlapping children (a shift never absorbs a spike);
  8. `details` names the grain, the rates before and since, and for a team or feature finding its top three
     contributors (features or models, by their own excess over the window); `evidence` holds the request ids
     of the incident's most expensive lines (`evidence_lines` of them) and how many lines it had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import polars as pl
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.detect import DetectInputs
from finops.detect.findings import EVIDENCE_IDS, FINDING_SCHEMA
from finops.detect.shapes import ShapeSettings, knn_conformal
from finops.errors import ConfigError

__all__ = ["GRAINS", "SpikeConfig", "detect_spikes", "load_spike_config", "score_points", "score_series"]

Direction = Literal["up", "down", "both"]
MONEY = pl.Decimal(38, 12)
MAD_TO_SIGMA = 1.4826
_MAX_COUNT = 1_000_000  # the bound of every count of rows, hours or days: larger is a typo, and overflows
# grain name -> the key columns of its series, coarsest first
GRAINS: dict[str, tuple[str, ...]] = {
    "team": ("team",),
    "feature": ("team", "feature"),
    "model": ("team", "feature", "model"),
}
_KEYS = ("team", "feature", "model")


class SpikeConfig(BaseSettings):
    """Thresholds and windows of the spike detector; each field reads `FINOPS_SPIKE_<FIELD NAME IN CAPITALS>`.

    Windows counted in rows are hours for the hourly cost series and rows of the file for `finops detect series`;
    the daily cost series use the `daily_*` windows (days)."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_SPIKE_", frozen=True, extra="ignore")

    season_days: int = Field(
        default=7, ge=1, le=_MAX_COUNT, description="Days of the same hour of day in the daily-seasonal median."
    )
    season_weeks: int = Field(
        default=4, ge=1, le=_MAX_COUNT, description="Weeks of the same hour of week in the weekly-seasonal median."
    )
    level_rows: int = Field(
        default=6, ge=1, le=_MAX_COUNT, description="Previous rows in the non-seasonal (level) median."
    )
    accuracy_rows: int = Field(
        default=168, ge=1, le=_MAX_COUNT, description="Previous rows over which the expectations' errors compare."
    )
    cost_accuracy_rows: int = Field(
        default=12, ge=1, le=_MAX_COUNT, description="Cost series: `accuracy_rows` (half a day of hours)."
    )
    scale_rows: int = Field(
        default=336, ge=2, le=_MAX_COUNT, description="Previous rows in the robust scale (MAD) of the residuals."
    )
    scale_floor_rel: float = Field(default=0.02, ge=0, description="Scale floor, as a fraction of the median |value|.")
    cost_scale_floor_rel: float = Field(
        default=0.1, ge=0, description="Cost series: scale floor, as a fraction of the median hourly (daily) cost."
    )
    scale_floor_std: float = Field(
        default=0.0, ge=0, description="Scale floor, as a fraction of the residuals' plain standard deviation."
    )
    cost_scale_floor_std: float = Field(
        default=1.0,
        ge=0,
        description="Cost series: `scale_floor_std` (sparse spend).",
    )
    scale_floor_usd: Decimal = Field(default=Decimal("0.01"), ge=0, description="Scale floor of hourly cost, in USD.")
    sustain_rows: int = Field(
        default=1, ge=1, le=_MAX_COUNT, description="Rows in a row whose smallest z counts, times sqrt(rows)."
    )
    cost_sustain_rows: int = Field(default=2, ge=1, le=_MAX_COUNT, description="Cost series: `sustain_rows` (hours).")
    memory_rows: int = Field(
        default=168, ge=1, le=_MAX_COUNT, description="Previous rows whose usual worst evidence a row must beat."
    )
    memory_quantile: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Which quantile of those rows' evidence is their usual worst (1: the largest).",
    )
    cost_memory_rows: int = Field(
        default=672, ge=1, le=_MAX_COUNT, description="Cost series: `memory_rows` (4 weeks of hours)."
    )
    cost_scale_rows: int = Field(
        default=672, ge=2, le=_MAX_COUNT, description="Cost series: `scale_rows` (4 weeks of hours)."
    )
    cost_memory_quantile: float = Field(
        default=0.99, gt=0, le=1, description="Cost series: `memory_quantile` (one past spike does not mute the next)."
    )
    novelty_margin: float = Field(
        default=0.0,
        ge=0,
        description="A row must beat the usual worst evidence of its recent past by this fraction to be new.",
    )
    min_history_rows: int = Field(
        default=168, ge=1, le=_MAX_COUNT, description="Rows of past a row needs before it is scored."
    )
    z_threshold: float = Field(default=4.0, gt=0, description="Robust z (evidence) from which a row is anomalous.")
    score_threshold: float = Field(
        default=ShapeSettings.alarm_p,  # the shape score's alarm level is this threshold (`shape_settings`)
        gt=0,
        lt=1,
        description="`detect series`: score from which a row is anomalous.",
    )
    shape_window_rows: int = Field(
        default=ShapeSettings.window,
        ge=1,
        le=_MAX_COUNT,
        description="`detect series`: rows in the window whose shape the neighbour score compares.",
    )
    shape_neighbours: int = Field(
        default=ShapeSettings.neighbours,
        ge=1,
        le=_MAX_COUNT,
        description="`detect series`: nearest earlier windows whose distances make the score.",
    )
    shape_train_share: float = Field(
        default=ShapeSettings.train_share,
        gt=0,
        le=1,
        description="`detect series`: the earlier windows compared, as a share of the rows so far.",
    )
    shape_train_max_rows: int = Field(
        default=ShapeSettings.train_max_rows,
        ge=2,
        le=_MAX_COUNT,
        description="`detect series`: at most this many earlier windows are compared.",
    )
    shape_min_calibration: int = Field(
        default=ShapeSettings.min_calibration,
        ge=1,
        le=_MAX_COUNT,
        description="`detect series`: earlier scores the neighbour score ranks a row among before it counts.",
    )
    uncalibrated_alarm_score: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="`detect series`: where the neighbour score does not count (before it is calibrated, and "
        "in the silence after its alarms), the robust score at which a row is anomalous.",
    )
    shape_silence_share: float = Field(
        default=ShapeSettings.silence_share,
        ge=0,
        le=1,
        description="`detect series`: rows silenced after a shape alarm, as a share of the windows compared.",
    )
    corroborated_min_score: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Hourly cost findings: the peak score enough when the series' request count jumps too.",
    )
    traffic_min_score: float = Field(
        default=0.75,
        gt=0,
        lt=1,
        description="The peak score of the request count (same scorer) that corroborates a cost incident.",
    )
    finding_min_score: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Cost findings: the peak score an incident needs (0.8: twice its usual worst).",
    )
    min_excess_usd: Decimal = Field(default=Decimal("2"), ge=0, description="Smallest excess cost of a reported spike.")
    min_excess_rel: float = Field(
        default=1.0,
        ge=0,
        description="Smallest excess cost of a reported spike, as a fraction of its expected cost (1: double).",
    )
    merge_gap_hours: int = Field(
        default=3, ge=0, le=_MAX_COUNT, description="Anomalous hours at most this far apart are one incident."
    )
    min_history_days: int = Field(
        default=7, ge=1, le=_MAX_COUNT, description="Days of history a cost series needs to be judged."
    )
    level_shift_min_hours: int = Field(
        default=48,
        ge=24,
        le=_MAX_COUNT,
        description="Complete days (in hours) a new level must have lasted to be a level shift.",
    )
    level_shift_min_rel: float = Field(
        default=0.5,
        gt=0,
        description="A level shift keeps daily spend this fraction above its weekday's level before (median).",
    )
    level_shift_baseline_days: int = Field(
        default=7,
        ge=7,
        le=_MAX_COUNT,
        description="Days before a change whose same-weekday median is the old level (short: growth is not a shift).",
    )
    level_shift_settle_hours: int = Field(
        default=24,
        ge=1,
        le=_MAX_COUNT,
        description="Hours after the incident whose spend must stay `level_shift_min_rel` above the same hours a "
        "week before (a spike falls back at once).",
    )
    level_shift_min_share: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Share of the complete days after the change that must keep half of `level_shift_min_rel` "
        "(quiet days and holidays may dip).",
    )
    level_shift_min_kept: float = Field(
        default=0.33,
        ge=0,
        le=1,
        description="A level shift's days after the change keep this fraction of the incident's own rise (median; "
        "a spike on a growing series falls back to the growth).",
    )
    level_shift_min_usd_per_day: Decimal = Field(
        default=Decimal("1"), ge=0, description="Smallest excess cost per day of a reported level shift."
    )
    daily_level_rows: int = Field(
        default=7, ge=1, le=_MAX_COUNT, description="Daily series: previous days in the level median."
    )
    daily_scale_rows: int = Field(
        default=28, ge=2, le=_MAX_COUNT, description="Daily series: previous days in the scale and the memory."
    )
    daily_min_history_rows: int = Field(
        default=14, ge=1, le=_MAX_COUNT, description="Daily series: days of past a day needs."
    )
    few_sessions: int = Field(
        default=4, ge=1, le=_MAX_COUNT, description="How many traces at most make a spike 'a few requests'."
    )
    few_sessions_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A spike whose `few_sessions` costliest traces hold this share of its excess is not a spike.",
    )
    child_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="A team (feature) finding gives way to its one finer finding holding this share.",
    )
    evidence_lines: int = Field(default=20, ge=0, le=EVIDENCE_IDS, description="Request ids named in an incident.")

    @model_validator(mode="after")
    def _enough_windows(self) -> SpikeConfig:
        if self.shape_neighbours >= self.shape_train_max_rows:
            raise ValueError(
                f"FINOPS_SPIKE_SHAPE_NEIGHBOURS ({self.shape_neighbours}) must be below "
                f"FINOPS_SPIKE_SHAPE_TRAIN_MAX_ROWS ({self.shape_train_max_rows}): the nearest windows are taken "
                "among the earlier ones compared"
            )
        return self

    def shape_settings(self) -> ShapeSettings:
        """The shape score of `finops detect series` as these settings give it: its alarm level is the series'
        `score_threshold`, and it judges no row before `min_history_rows`."""
        return ShapeSettings(
            window=self.shape_window_rows,
            neighbours=self.shape_neighbours,
            train_share=self.shape_train_share,
            train_max_rows=self.shape_train_max_rows,
            silence_share=self.shape_silence_share,
            alarm_p=self.score_threshold,
            min_calibration=self.shape_min_calibration,
            min_history_rows=self.min_history_rows,
        )


def load_spike_config(**overrides: object) -> SpikeConfig:
    """`SpikeConfig` from the environment (and `overrides`), a bad value turned into one clear `ConfigError`."""
    try:
        return SpikeConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings (`_enough_windows`): its message names them
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{message}.", setting="FINOPS_SPIKE_*") from None
        name = f"FINOPS_SPIKE_{str(first['loc'][0]).upper()}"
        raise ConfigError(f"{name} has value {first.get('input')!r}. {first['msg']}.", setting=name) from None


# --- the online scorer -------------------------------------------------------------------------------------------


def score_points(
    frame: pl.LazyFrame,
    *,
    by: Sequence[str],
    time: str,
    value: str,
    config: SpikeConfig,
    direction: Direction = "up",
    daily: bool = False,
    scale_floor_abs: float = 1e-9,
    scale_floor_peak: float = 0.0,
    order: str | None = None,
) -> pl.LazyFrame:
    """Add `expected`, `scale`, `z`, `evidence_z` and `score` to rows of series `by` (see the module docstring).
    Rows are taken in `order` (default: `time`) within each series, and come out sorted so; only earlier rows
    inform a row."""
    g = [*by, "_series"]
    level_rows = config.daily_level_rows if daily else config.level_rows
    scale_rows = config.daily_scale_rows if daily else config.scale_rows
    memory_rows = config.daily_scale_rows if daily else config.memory_rows
    history_rows = config.daily_min_history_rows if daily else config.min_history_rows
    sustain = 1 if daily else config.sustain_rows
    x = pl.col("_x")
    past = x.shift(1)

    def rolling_past(expr: pl.Expr, rows: int, how: str, min_samples: int = 1) -> pl.Expr:
        rolled = getattr(expr.shift(1), f"rolling_{how}")(rows, min_samples=min(min_samples, rows))
        return rolled.over(g)  # type: ignore[no-any-return]

    def past_quantile(expr: pl.Expr, rows: int, quantile: float) -> pl.Expr:
        if quantile >= 1.0:
            return rolling_past(expr, rows, "max")
        return expr.shift(1).rolling_quantile(quantile, window_size=rows, min_samples=1).over(g)

    candidates = ("_level", "_season_d", "_season_w")
    errors = [(pl.col(c) - x).abs() for c in candidates]
    accuracy = [rolling_past(e, config.accuracy_rows, "median").fill_null(math.inf) for e in errors]
    best = pl.min_horizontal(*accuracy)
    expected = (
        pl.when(accuracy[1] == best)
        .then(pl.col("_season_d"))
        .when(accuracy[2] == best)
        .then(pl.col("_season_w"))
        .otherwise(pl.col("_level"))
    )
    # a cost watched upwards is not surprising where the same hour of the week usually is as high (a Monday
    # morning after a quiet Sunday, which the recent level cannot know): the higher of the two is expected
    if direction == "up" and not daily:
        expected = pl.max_horizontal(expected, pl.col("_season_w"))
    elif direction == "down" and not daily:
        expected = pl.min_horizontal(expected, pl.col("_season_w"))
    resid = x - pl.col("expected")
    signed = {"up": pl.col("z"), "down": -pl.col("z"), "both": pl.col("z").abs()}[direction].clip(lower_bound=0.0)
    scale = pl.max_horizontal(
        MAD_TO_SIGMA * rolling_past(resid.abs(), scale_rows, "median", 2),
        config.scale_floor_rel * rolling_past(x.abs(), scale_rows, "median", 2),
        config.scale_floor_std * rolling_past(resid, scale_rows, "std", 2),
        pl.lit(scale_floor_abs),
        scale_floor_peak * x.abs().cum_max().shift(1).over(g).fill_null(0.0),
    )
    recent = (1.0 + config.novelty_margin) * past_quantile(pl.col("evidence_z"), memory_rows, config.memory_quantile)
    reference = pl.max_horizontal(recent, pl.lit(config.z_threshold))
    novelty = (pl.col("evidence_z") / reference).clip(upper_bound=1e100)  # squared below: no inf / inf
    return (
        frame.sort([*by, order or time], maintain_order=True)
        .with_columns(_series=pl.lit(0, pl.Int8), _x=pl.col(value).cast(pl.Float64))
        .with_columns(_t=pl.col(time).cum_max().over(g), _n=pl.int_range(pl.len()).over(g))
        .with_columns(_hod=pl.col("_t").dt.hour(), _how=pl.col("_t").dt.weekday() * 24 + pl.col("_t").dt.hour())
        .with_columns(
            _level=past.rolling_median(level_rows, min_samples=1).over(g),
            _season_d=x.rolling_median_by("_t", f"{config.season_days}d", min_samples=2, closed="left").over(
                [*g, "_hod"]
            ),
            _season_w=x.rolling_median_by("_t", f"{7 * config.season_weeks}d", min_samples=2, closed="left").over(
                [*g, "_how"]
            ),
        )
        .with_columns(expected=expected)
        .with_columns(scale=scale)
        .with_columns(z=(resid / pl.col("scale")).fill_nan(0.0).fill_null(0.0))
        .with_columns(
            evidence_z=pl.max_horizontal(signed, math.sqrt(sustain) * signed.rolling_min(sustain).over(g).fill_null(0))
        )
        .with_columns(
            score=pl.when(pl.col("_n") >= history_rows)
            .then((novelty * novelty) / (1.0 + novelty * novelty))
            .otherwise(0.0)
        )
        .drop("_series", "_x", "_t", "_n", "_hod", "_how", *candidates)
    )


def score_series(
    frame: pl.LazyFrame,
    *,
    time: str,
    value: str,
    config: SpikeConfig | None = None,
    direction: Direction = "both",
) -> pl.LazyFrame:
    """`finops detect series`: the input rows, in their order, plus `score` (0..1) and `is_anomaly`
    (score >= `score_threshold`). `time` must be a Datetime column; each row is judged by the rows above it.

    The score is the higher of the robust score (`score_points`) and the shape score (`shapes.knn_conformal`,
    whose alarm level is `score_threshold` too); until the shape score is calibrated, and in the silence after
    its alarms, the robust score alone, rescaled so that `uncalibrated_alarm_score` meets `score_threshold`."""
    cfg = config or load_spike_config()
    numbered = frame.with_columns(_row=pl.int_range(pl.len()))
    scored = score_points(
        numbered,
        by=[],
        time=time,
        value=value,
        config=cfg,
        direction=direction,
        order="_row",
        # a floor in the series' own unit (a billionth of its largest value so far), not 1e-9 of whatever unit
        scale_floor_abs=1e-300,
        scale_floor_peak=1e-9,
    ).collect()
    # the shape score has no direction: watched one way, it counts (and its alarms silence) only where the value
    # departs that way
    along = {"up": pl.col("z") > 0, "down": pl.col("z") < 0, "both": pl.lit(True)}[direction]
    shape = knn_conformal(
        scored[value].cast(pl.Float64).to_numpy(),
        cfg.shape_settings(),
        eligible=scored.with_columns(_eligible=along.fill_null(False))["_eligible"].to_numpy(),
    )
    # the robust score rescaled so that its own alarm level (`uncalibrated_alarm_score`) is the series'
    # (`score_threshold`); monotone, so its order is kept
    robust, alarm, threshold = pl.col("score"), cfg.uncalibrated_alarm_score, cfg.score_threshold
    rescaled = (
        pl.when(robust >= alarm)
        .then(threshold + (1.0 - threshold) * (robust - alarm) / (1.0 - alarm))
        .otherwise(robust * threshold / alarm)
    )
    return (
        scored.lazy()
        .with_columns(
            _shape=pl.Series(shape.p), _calibrated=pl.Series(shape.calibrated), _silenced=pl.Series(shape.silenced)
        )
        .with_columns(
            # calibrated: the higher of the two; before that, and while an alarm silences the shape score, the
            # robust score alone, rescaled (a large spike right after a shape alarm is still an anomaly)
            score=pl.when(pl.col("_calibrated") & ~pl.col("_silenced"))
            .then(pl.max_horizontal(robust, "_shape"))
            .otherwise(rescaled)
        )
        .drop("expected", "scale", "z", "evidence_z", "_row", "_shape", "_calibrated", "_silenced")
        .with_columns(is_anomaly=pl.col("score") >= cfg.score_threshold)
    )


# --- cost findings -----------------------------------------------------------------------------------------------


def _typed_keys() -> list[pl.Expr]:
    """Team, feature and model as plain strings, whatever the input had (categoricals, enums)."""
    return [pl.col(k).cast(pl.String) for k in _KEYS]


def _utc_us(moment: pl.Expr) -> pl.Expr:
    """A timestamp column as microseconds in UTC (a naive one is taken as UTC)."""
    return moment.dt.cast_time_unit("us").dt.convert_time_zone("UTC")


def _subject(grain: str) -> pl.Expr:
    parts = [pl.lit(f"{k}=") + pl.col(k).fill_null("-") for k in GRAINS[grain]]
    return pl.concat_str(parts, separator=",")


def _spend_grid(hourly: pl.LazyFrame, start: datetime, end: datetime) -> pl.LazyFrame:
    """Cost per complete hour in [start, end) of every series at every grain, from its first hour with spend."""
    hourly = hourly.with_columns(_typed_keys(), hour=pl.col("hour").pipe(_utc_us))
    frames = []
    for grain, keys in GRAINS.items():
        absent = [pl.lit(None, pl.String).alias(k) for k in _KEYS if k not in keys]
        agg = (
            hourly.filter(pl.col("hour") < end)
            .group_by(*keys, "hour")
            .agg(
                pl.col("cost_usd").cast(MONEY).fill_null(0).sum().alias("cost"),
                pl.col("requests").cast(pl.Float64).fill_null(0).sum().alias("requests"),
            )
            .with_columns(*absent, grain=pl.lit(grain))
        )
        frames.append(agg.select("grain", *_KEYS, "hour", "cost", "requests"))
    spend = pl.concat(frames)
    series = (
        spend.group_by("grain", *_KEYS)
        .agg(first=pl.col("hour").min().clip(lower_bound=start))
        .with_columns(hour=pl.datetime_ranges("first", pl.lit(end - timedelta(hours=1)), "1h", time_zone="UTC"))
        .explode("hour")
        .drop_nulls("hour")
    )
    grid = series.join(spend, on=["grain", *_KEYS, "hour"], how="left", nulls_equal=True)
    subject = (
        pl.when(pl.col("grain") == "team")
        .then(_subject("team"))
        .when(pl.col("grain") == "feature")
        .then(_subject("feature"))
        .otherwise(_subject("model"))
    )
    filled = {"cost": pl.col("cost").fill_null(Decimal(0)).cast(MONEY), "requests": pl.col("requests").fill_null(0.0)}
    return grid.with_columns(**filled, subject=subject).sort("grain", "subject", "hour")


def _daily(grid: pl.LazyFrame) -> pl.LazyFrame:
    """Cost per complete UTC day, from the hourly grid."""
    return (
        grid.group_by("subject", day=pl.col("hour").dt.truncate("1d"))
        .agg(pl.col("cost").sum(), pl.len().alias("hours"), *(pl.col(c).first() for c in ("grain", *_KEYS, "first")))
        .filter(pl.col("hours") == 24)
        .rename({"day": "hour"})
        .drop("hours")
        .sort("grain", "subject", "hour")
    )


def _traffic(points: pl.LazyFrame, series: pl.DataFrame, config: SpikeConfig) -> pl.LazyFrame:
    """The request count's score (`_traffic`, same scorer) at each hour of the series that hold a candidate
    incident only (an hour whose cost score reaches `corroborated_min_score`)."""
    candidates = (
        points.filter((pl.col("score") >= config.corroborated_min_score) & (pl.col("evidence_z") >= config.z_threshold))
        .select("subject")
        .unique()
    )
    return score_points(
        series.lazy().join(candidates, on="subject", how="semi"),
        by=["subject"],
        time="hour",
        value="requests",
        config=config,
        scale_floor_abs=1.0,  # a request
    ).select("subject", "hour", _traffic="score")


def _windows(points: pl.LazyFrame, step: timedelta, detector: str, config: SpikeConfig) -> pl.LazyFrame:
    """Anomalous rows as FINDING_SCHEMA windows (one per hour or day), before merging."""
    expected = pl.col("expected").round(9).cast(MONEY)
    return points.filter(
        (pl.col("score") > 0) & (pl.col("evidence_z") >= config.z_threshold) & (pl.col("cost") > expected)
    ).select(
        kind=pl.lit("cost_spike"),
        detector=pl.lit(detector),
        team=pl.col("team"),
        feature=pl.col("feature"),
        provider=pl.lit(None, pl.String),
        model=pl.col("model"),
        subject=pl.col("subject"),
        window_start=pl.col("hour"),
        window_end=pl.col("hour") + step,
        trace_id=pl.lit(None, pl.String),
        request_id=pl.lit(None, pl.String),
        metric=pl.lit("cost_usd"),
        observed=pl.col("_x"),
        expected=pl.col("expected"),
        excess_cost_usd=(pl.col("cost") - expected).cast(MONEY),
        score=pl.col("score"),
        evidence=pl.lit('{"ids":[],"count":0}'),
        details=pl.col("grain"),  # carried through merging; rewritten below
        _traffic=pl.col("_traffic"),
    )


def _merge(windows: pl.LazyFrame, gap: timedelta) -> pl.LazyFrame:
    """Anomalous windows of one series at most `gap` apart as one incident (step 4): the first start, the last
    end, observed / expected / excess summed, the highest score. (`findings.merge_windows` does the same and also
    concatenates evidence, which is empty here until step 8; it calls `Expr.flatten`, gone in polars 2.)"""
    by = ["kind", "detector", "subject"]
    previous_end = pl.col("window_end").cum_max().shift(1).over(by)
    new_incident = (pl.col("window_start") > previous_end + pl.lit(gap)).fill_null(True)
    summed = ("observed", "expected", "excess_cost_usd")
    return (
        windows.sort([*by, "window_start"])
        .with_columns(_incident=new_incident.cast(pl.Int32).cum_sum().over(by))
        .group_by([*by, "_incident"], maintain_order=True)
        .agg(
            pl.col("window_start").min(),
            pl.col("window_end").max(),
            *(pl.col(c).sum() for c in summed),
            pl.col("score").max(),
            pl.col("_traffic").max(),
            pl.exclude("window_start", "window_end", *summed, "score", "_traffic").first(),
        )
        .drop("_incident")
        .select(*FINDING_SCHEMA, "_traffic")
    )


def _classify(incidents: pl.LazyFrame, grid: pl.LazyFrame, step: timedelta, config: SpikeConfig) -> pl.LazyFrame:
    """Split incidents into level shifts (a new normal that lasts) and spikes (step 5 of the module docstring).

    A level shift: the complete days after the incident's first day are above the median of the same weekday over
    the `level_shift_baseline_days` before it by `level_shift_min_rel` in the median, by half of it on at least
    `level_shift_min_share` of them, and there are at least `level_shift_min_hours` of such days. Its expected
    spend is the rate of the week before."""
    per_day = 24 if step == timedelta(hours=1) else 1
    days = (
        grid.group_by("subject", day=pl.col("hour").dt.truncate("1d"))
        .agg(pl.col("cost").sum().cast(pl.Float64).alias("day_cost"), pl.len().alias("_rows"))
        .filter(pl.col("_rows") == per_day)
        .drop("_rows")
    )
    keys = ["detector", "subject", "window_start"]
    baseline = timedelta(days=config.level_shift_baseline_days)
    start_day = pl.col("window_start").dt.truncate("1d")
    paired = incidents.select(*keys).join(days, on="subject")
    weekday = pl.col("day").dt.weekday()
    before = (
        paired.filter(pl.col("day").is_between(start_day - baseline, start_day, closed="left"))
        .group_by(*keys, _weekday=weekday)
        .agg(_usual=pl.col("day_cost").median())
    )
    after = (
        paired.filter(pl.col("day") > start_day)
        .with_columns(_weekday=weekday)
        .join(before, on=[*keys, "_weekday"])
        .group_by(keys)
        .agg(
            _share_up=((pl.col("day_cost") / pl.col("_usual")) >= 1.0 + config.level_shift_min_rel / 2).mean(),
            _ratio_median=(pl.col("day_cost") / pl.col("_usual")).median(),
            _days=pl.len(),
        )
    )
    t, cost, start = pl.col("hour"), pl.col("cost"), pl.col("window_start")
    rates = (
        incidents.select(*keys)
        .join(grid.select("subject", "hour", "cost"), on="subject")
        .group_by(keys)
        .agg(
            # sums of Decimals are exact, so the rates do not depend on the order rows are added in
            _before=cost.filter((t < start) & (t >= start - timedelta(days=7))).sum().cast(pl.Float64)
            / ((t < start) & (t >= start - timedelta(days=7))).sum(),
            _since=cost.filter(t >= start).sum(),
            _rows_since=(t >= start).sum(),
            _data_end=t.max() + step,
        )
    )
    rel = config.level_shift_min_rel
    # right after the incident the series stays above the same hours a week before (a spike falls back at once;
    # a slow rise that began earlier has grown little in a week)
    settle, week = timedelta(hours=config.level_shift_settle_hours), timedelta(days=7)
    end = pl.col("window_end")
    following = (
        incidents.select(*keys, "window_end")
        .join(grid.select("subject", "hour", _c=pl.col("cost").cast(pl.Float64)), on="subject")  # x / 0: inf
        .group_by(keys)
        .agg(
            _settle_ratio=pl.col("_c").filter(pl.col("hour").is_between(end, end + settle, closed="left")).sum()
            / pl.col("_c").filter(pl.col("hour").is_between(end - week, end - week + settle, closed="left")).sum()
        )
    )
    incident_rise = pl.col("observed") / pl.col("expected") - 1.0
    is_shift = (
        (pl.col("_settle_ratio") >= 1.0 + rel)
        & (pl.col("_days") * 24 >= config.level_shift_min_hours)
        & (pl.col("_ratio_median") >= 1.0 + rel)
        & (pl.col("_share_up") >= config.level_shift_min_share)
        # the new normal keeps a part of the incident's own rise: a spike on a growing series (after it, days
        # are above last week's only by the growth) is still a spike; an incident that rose from nothing is not
        # compared (its rise has no ratio)
        & ((pl.col("_ratio_median") - 1.0 >= config.level_shift_min_kept * incident_rise) | (pl.col("expected") <= 0))
    )
    shift_expected = pl.col("_before") * pl.col("_rows_since")
    shift = pl.col("_shift")
    return (
        incidents.join(rates, on=keys, how="left")
        .join(after, on=keys, how="left")
        .join(following, on=keys, how="left")
        .with_columns(_shift=is_shift.fill_null(False))
        .with_columns(
            kind=pl.when(shift).then(pl.lit("level_shift")).otherwise("kind"),
            window_end=pl.when(shift).then("_data_end").otherwise("window_end"),
            observed=pl.when(shift).then(pl.col("_since").cast(pl.Float64)).otherwise("observed"),
            expected=pl.when(shift).then(shift_expected).otherwise("expected"),
            excess_cost_usd=pl.when(shift)
            .then(pl.col("_since") - shift_expected.round(9).cast(MONEY))
            .otherwise("excess_cost_usd")
            .cast(MONEY),
            _rate_before=pl.col("_before"),
            _detect_end=pl.col("window_end"),  # the change itself, before a level shift reaches the end
            _rate_since=pl.col("_since").cast(pl.Float64) / pl.col("_rows_since"),
        )
        .with_columns(_shift_start=pl.col("window_start").filter(shift).min().over("detector", "subject"))
        .filter(pl.col("_shift_start").is_null() | (pl.col("window_start") <= pl.col("_shift_start")))
        .drop("_since", "_rows_since", "_data_end", "_before", "_shift", "_shift_start")
        .drop("_share_up", "_ratio_median", "_days", "_settle_ratio")
    )


def _absorb(found: pl.LazyFrame, parent: str, children: Sequence[str], share: float) -> pl.LazyFrame:
    """One finding per incident across grains (step 7): findings of grain `parent` against the overlapping
    findings of the finer `children` grains under them."""
    keys = list(GRAINS[parent])
    tagged = found
    parents = tagged.filter(pl.col("_grain") == parent).select(
        *keys, "_row", "kind", _p_start="window_start", _p_end="_detect_end", _p_excess="excess_cost_usd"
    )
    kids = tagged.filter(pl.col("_grain").is_in(list(children))).select(
        *keys, "subject", "window_start", "excess_cost_usd", _kid="_row", _kid_kind="kind", _kid_end="_detect_end"
    )
    # a parent incident that starts while a child's level shift lasts, and overlaps no other child finding, is
    # that shift seen diluted (the parent's own expectations take days to follow a child's new level)
    during_shift = (
        parents.join(
            tagged.filter(pl.col("_grain").is_in(list(children)) & (pl.col("kind") == "level_shift")).select(
                *keys, _s_start="window_start", _s_end="window_end"
            ),
            on=keys,
            nulls_equal=True,
        )
        .filter((pl.col("_p_start") >= pl.col("_s_start")) & (pl.col("_p_start") < pl.col("_s_end")))
        .select("_row")
    )
    overlapping = parents.join(kids, on=keys, nulls_equal=True).filter(
        (pl.col("window_start") < pl.col("_p_end")) & (pl.col("_kid_end") > pl.col("_p_start"))
    )
    # a spike of the parent where a child's level shift starts is that shift, seen diluted
    explained = overlapping.filter((pl.col("kind") == "cost_spike") & (pl.col("_kid_kind") == "level_shift"))
    pairs = overlapping.filter(pl.col("kind") == pl.col("_kid_kind"))  # a shift does not swallow a spike
    verdict = pairs.group_by("_row").agg(
        _n=pl.col("subject").n_unique(),
        _share=pl.col("excess_cost_usd").cast(pl.Float64).max() / pl.col("_p_excess").cast(pl.Float64).first(),
        _kid_rows=pl.col("_kid"),
    )
    yields = verdict.filter((pl.col("_n") == 1) & (pl.col("_share") >= share))
    absorbs = verdict.join(yields.select("_row"), on="_row", how="anti")
    diluted = during_shift.join(overlapping.select("_row"), on="_row", how="anti")
    dropped = pl.concat(
        [
            explained.select("_row"),
            diluted,
            yields.select("_row"),
            absorbs.select(_row="_kid_rows").explode("_row"),
        ]
    ).unique()
    return tagged.join(dropped, on="_row", how="anti")


def _contributors(found: pl.LazyFrame, points: pl.DataFrame, top: int = 3) -> pl.LazyFrame:
    """The finer series (features of a team, models of a feature) that added most to a team or feature finding:
    each one's spend above its own expected level over the finding's window, the largest `top` first."""
    frames = []
    for parent, child in (("team", "feature"), ("feature", "model")):
        keys = list(GRAINS[parent])
        parents = found.filter(pl.col("_grain") == parent).select("_row", *keys, "window_start", "window_end")
        kids = points.lazy().filter(pl.col("grain") == child).select(*keys, "subject", "hour", "_excess")
        frames.append(
            parents.join(kids, on=keys, nulls_equal=True)
            .filter((pl.col("hour") >= pl.col("window_start")) & (pl.col("hour") < pl.col("window_end")))
            .group_by("_row", "subject")
            .agg(excess_usd=pl.col("_excess").sum().round(2))
            .filter(pl.col("excess_usd") > 0)
            .sort("excess_usd", "subject", descending=[True, False])
            .group_by("_row", maintain_order=True)
            .agg(_contributors=pl.struct("subject", "excess_usd").head(top))
        )
    return found.join(pl.concat(frames), on="_row", how="left")


def _line_facts(found: pl.LazyFrame, lines: pl.LazyFrame, config: SpikeConfig) -> pl.LazyFrame:
    """Per incident (`_row`), from its lines: the request ids of the most expensive ones (`_ids`), how many there
    were (`_count`), and the cost of its `few_sessions` most expensive traces (`_top_sessions`; a line without a
    trace counts alone). Only the lines in the incidents' windows are read: one time condition per window (a loop
    over the few incidents), handed to the scan of the lines."""
    # a level shift's lines are those of the change (its window before it was extended to the end of the data)
    incidents = found.select("_row", "_grain", *_KEYS, "window_start", window_end="_detect_end").collect()
    empty = pl.LazyFrame(
        schema={"_row": pl.Int64, "_ids": pl.List(pl.String), "_count": pl.Int64, "_top_sessions": pl.Float64}
    )
    if incidents.is_empty():
        return empty
    has_trace = "trace_id" in lines.collect_schema().names()
    session = (
        pl.coalesce(pl.col("trace_id").cast(pl.String), pl.col("request_id")) if has_trace else pl.col("request_id")
    )
    naive = getattr(lines.collect_schema()["ts"], "time_zone", None) is None

    def moment(value: datetime) -> datetime:  # compared with the column as it comes (no conversion per line)
        return value.astimezone(UTC).replace(tzinfo=None) if naive else value

    spans = (  # the incidents' windows, overlapping ones merged: a few time conditions (no text compared per line)
        incidents.sort("window_start")
        .with_columns(_new=(pl.col("window_start") > pl.col("window_end").cum_max().shift(1)).fill_null(True))
        .group_by(pl.col("_new").cum_sum(), maintain_order=True)
        .agg(pl.col("window_start").min(), pl.col("window_end").max())
    )
    inside = [
        (pl.col("ts") >= moment(start)) & (pl.col("ts") < moment(end))
        for start, end in spans.select("window_start", "window_end").iter_rows()
    ]
    lines = (
        lines.filter(pl.any_horizontal(inside))
        .select(
            *_KEYS,
            *(["trace_id"] if has_trace else []),
            "cost_usd",
            request_id=pl.col("request_id").cast(pl.String),
            ts=pl.col("ts").pipe(_utc_us),
        )
        .with_columns(_typed_keys(), cost=pl.col("cost_usd").cast(pl.Float64).fill_null(0.0))
        .with_columns(_session=session)
        .collect()
        .lazy()
    )
    matched = []
    for name, keys in GRAINS.items():
        inc = incidents.lazy().filter(pl.col("_grain") == name).select("_row", *keys, "window_start", "window_end")
        matched.append(
            inc.join(lines.select(*keys, "ts", "request_id", "_session", "cost"), on=list(keys), nulls_equal=True)
            .filter((pl.col("ts") >= pl.col("window_start")) & (pl.col("ts") < pl.col("window_end")))
            .select("_row", "request_id", "_session", "cost")
        )
    rows = pl.concat(matched)
    sessions = (
        rows.group_by("_row", "_session")
        .agg(pl.col("cost").sum())
        .group_by("_row")
        .agg(_top_sessions=pl.col("cost").top_k(config.few_sessions).sum())
    )
    ids = rows.group_by("_row").agg(
        _ids=pl.col("request_id").top_k_by("cost", config.evidence_lines), _count=pl.len().cast(pl.Int64)
    )
    return ids.join(sessions, on="_row", how="left").cast({"_row": pl.Int64})


def _insufficient(grid: pl.LazyFrame, horizon: datetime, config: SpikeConfig) -> pl.LazyFrame:
    """Series too young to judge (step 2), at the coarsest grain that is: one `insufficient_history` row each."""
    need = timedelta(days=config.min_history_days)
    series = grid.group_by("grain", *_KEYS, "subject").agg(
        first=pl.col("first").first(),
        end=pl.col("hour").max() + timedelta(hours=1),
        spent=pl.col("cost").filter(pl.col("hour") >= horizon).sum(),
        spent_all=pl.col("cost").sum(),
    )
    short = series.filter(pl.col("end") - pl.col("first") < need)
    parent_short = []
    for grain, parent in (("feature", "team"), ("model", "feature")):
        keys = list(GRAINS[parent])
        parents = short.filter(pl.col("grain") == parent).select(*keys, _parent_short=pl.lit(True))
        parent_short.append(
            short.filter(pl.col("grain") == grain)
            .join(parents, on=keys, how="left", nulls_equal=True)
            .filter(pl.col("_parent_short").is_null())
            .drop("_parent_short")
        )
    rows = pl.concat([short.filter(pl.col("grain") == "team"), *parent_short])
    hours = ((pl.col("end") - pl.col("first")).dt.total_hours()).cast(pl.Int64)
    return rows.filter(pl.col("spent") >= config.min_excess_usd).select(
        kind=pl.lit("insufficient_history"),
        detector=pl.lit("spikes"),
        team=pl.col("team"),
        feature=pl.col("feature"),
        provider=pl.lit(None, pl.String),
        model=pl.col("model"),
        subject=pl.col("subject"),
        window_start=pl.col("first"),
        window_end=pl.col("end"),
        trace_id=pl.lit(None, pl.String),
        request_id=pl.lit(None, pl.String),
        metric=pl.lit("cost_usd"),
        observed=pl.col("spent_all").cast(pl.Float64),
        expected=pl.lit(None, pl.Float64),
        excess_cost_usd=pl.lit(Decimal(0), MONEY),
        score=pl.lit(0.0),
        evidence=pl.lit('{"ids":[],"count":0}'),
        details=pl.struct(
            grain=pl.col("grain"),
            history_hours=hours,
            required_hours=pl.lit(config.min_history_days * 24),
            note=pl.lit("too little history to judge spikes; no expected level is guessed"),
        ).struct.json_encode(),
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def detect_spikes(inputs: DetectInputs, config: SpikeConfig | None = None) -> pl.LazyFrame:
    """Cost spikes and level shifts (and series with too little history) as FINDING_SCHEMA rows; see the module
    docstring for the order of operations."""
    given = config or load_spike_config()
    cfg = given.model_copy(
        update={
            "scale_floor_rel": given.cost_scale_floor_rel,
            "scale_floor_std": given.cost_scale_floor_std,
            "memory_rows": given.cost_memory_rows,
            "scale_rows": given.cost_scale_rows,
            "memory_quantile": given.cost_memory_quantile,
            "accuracy_rows": given.cost_accuracy_rows,
            "sustain_rows": given.cost_sustain_rows,
        }
    )
    start = _utc(inputs.history_start)
    end = _utc(inputs.as_of).replace(minute=0, second=0, microsecond=0)  # complete hours only
    # The grid and the incidents are materialised once each: several steps read them, and polars 2.1 runs a
    # sub-plan again for every branch that reads it (43 s instead of 4 s for 7M lines, 600 model series).
    grid = _spend_grid(inputs.hourly, start, end).collect()
    young = _insufficient(grid.lazy(), _utc(inputs.horizon_start), cfg).collect()
    old_enough = (
        grid.lazy()
        .join(young.lazy().select("subject"), on="subject", how="anti")
        .filter(pl.col("first") <= pl.lit(end) - timedelta(days=cfg.min_history_days))
        .collect()
    )
    floor = float(cfg.scale_floor_usd)
    incidents = []
    hourly_points = pl.DataFrame()
    for detector, series, step, daily in (
        ("spikes.hourly", old_enough, timedelta(hours=1), False),
        ("spikes.daily", _daily(old_enough.lazy()).collect(), timedelta(days=1), True),
    ):
        points = score_points(
            series.lazy().with_columns(_cost_f=pl.col("cost").cast(pl.Float64)),
            by=["subject"],  # a subject names its grain and keys
            time="hour",
            value="_cost_f",
            config=cfg,
            daily=daily,
            scale_floor_abs=floor * (24 if daily else 1),
        ).with_columns(_x=pl.col("_cost_f"))
        if daily:
            points = points.with_columns(_traffic=pl.lit(None, pl.Float64))
        else:
            points = points.collect().lazy()  # read twice: for the incidents and for the contributors
            hourly_points = points.select(
                *_KEYS, "grain", "subject", "hour", _excess=pl.col("_x") - pl.col("expected")
            ).collect()
            if cfg.corroborated_min_score < cfg.finding_min_score:
                points = points.join(_traffic(points, series, cfg), on=["subject", "hour"], how="left")
            else:  # corroboration can admit nothing the score alone does not: the request counts are not scored
                points = points.with_columns(_traffic=pl.lit(None, pl.Float64))
        gap = timedelta(hours=0 if daily else cfg.merge_gap_hours)
        strong = pl.col("score") >= cfg.finding_min_score
        corroborated = (pl.col("score") >= cfg.corroborated_min_score) & (pl.col("_traffic") >= cfg.traffic_min_score)
        merged = (
            _merge(_windows(points, step, detector, cfg), gap)
            .filter(strong | corroborated.fill_null(False))
            .drop("_traffic")
        )
        incidents.append(
            _classify(merged.with_columns(_grain=pl.col("details")).collect().lazy(), series.lazy(), step, cfg)
        )
    excess_f = pl.col("excess_cost_usd").cast(pl.Float64)
    days = (pl.col("window_end") - pl.col("window_start")).dt.total_hours() / 24
    worth = (
        pl.when(pl.col("kind") == "level_shift")
        .then(excess_f >= days * float(cfg.level_shift_min_usd_per_day))
        .otherwise(
            (pl.col("excess_cost_usd") >= cfg.min_excess_usd) & (excess_f >= cfg.min_excess_rel * pl.col("expected"))
        )
    )
    # only incidents worth reporting compete across frequencies (a $1 hourly blip must not hide a daily shift);
    # a daily incident gives way to an hourly one that overlaps its detected change
    hourly_found, daily_found = (frame.filter(worth).collect().lazy() for frame in incidents)
    hourly_changes = hourly_found.select(  # a daily incident while an hourly level shift lasts is part of it
        "subject", _h_start="window_start", _h_end="window_end"
    )
    overlapping = daily_found.join(hourly_changes, on="subject").filter(
        (pl.col("window_start") < pl.col("_h_end")) & (pl.col("_detect_end") > pl.col("_h_start"))
    )
    daily_kept = daily_found.join(
        overlapping.select("subject", "window_start").unique(), on=["subject", "window_start"], how="anti"
    )
    # an hourly spike while the series' daily level shift lasts is part of that new normal
    during_daily_shift = (
        hourly_found.filter(pl.col("kind") == "cost_spike")
        .join(
            daily_kept.filter(pl.col("kind") == "level_shift").select(
                "subject", _d_start="window_start", _d_end="window_end"
            ),
            on="subject",
        )
        .filter((pl.col("window_start") >= pl.col("_d_start")) & (pl.col("window_start") < pl.col("_d_end")))
        .select("subject", "window_start")
        .unique()
    )
    kept = (
        pl.concat([hourly_found.join(during_daily_shift, on=["subject", "window_start"], how="anti"), daily_kept])
        .collect()
        .lazy()
        .with_columns(_row=pl.int_range(pl.len(), dtype=pl.Int64))  # the incident's id in the steps below
    )
    facts = _line_facts(kept, inputs.lines, cfg).collect().lazy()
    excess = pl.col("excess_cost_usd").cast(pl.Float64)
    few_sessions = pl.col("_top_sessions").fill_null(0.0) >= cfg.few_sessions_share * excess
    found = (
        kept.join(facts, on="_row", how="left")
        .filter((pl.col("kind") != "cost_spike") | ~few_sessions)
        .pipe(_absorb, "feature", ["model"], cfg.child_share)
        .pipe(_absorb, "team", ["feature", "model"], cfg.child_share)
        .pipe(_contributors, hourly_points)
        .with_columns(
            evidence=pl.struct(
                ids=pl.col("_ids").fill_null(pl.lit([], pl.List(pl.String))), count=pl.col("_count").fill_null(0)
            ).struct.json_encode()
        )
        .with_columns(
            details=pl.struct(
                grain=pl.col("_grain"),
                frequency=pl.when(pl.col("detector") == "spikes.daily")
                .then(pl.lit("daily"))
                .otherwise(pl.lit("hourly")),
                rate_before=pl.col("_rate_before"),
                rate_since=pl.col("_rate_since"),
                contributors=pl.col("_contributors"),
            ).struct.json_encode()
        )
        .select(list(FINDING_SCHEMA))
    )
    return (
        pl.concat([found, young.lazy().select(list(FINDING_SCHEMA))])
        .cast(FINDING_SCHEMA)  # type: ignore[arg-type]
        .sort("window_start", "subject", "kind")
    )
