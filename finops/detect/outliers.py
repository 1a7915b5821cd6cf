"""Outlier requests and runaway sessions: single calls and agent sessions far above their feature's usual.

Definitions (the README's "Outlier requests and runaway sessions" says the same for users):

- *outlier request*: a priced line whose cost is far above the usual of its team/feature/model, measured
  on the log of the cost over all detection inputs (history and horizon): m is the median, s = IQR / 1.349
  floored at `request_scale_floor` (both read from a histogram of log cost in 1/50 steps, so within 1 %).
  It is flagged when log(cost) >= m + max(log(`request_min_ratio`), `request_min_z` x s), its group has at
  least `request_min_history` priced lines, and the excess, cost - the group's median cost (exactly: the
  lower middle value), is at least `request_min_excess_usd`. Outliers of one team/feature/model at most
  `request_merge_gap_s` apart are one incident (`request_id` and `trace_id` are set when it is one
  request). `details.driver` says what was furthest above the group's median tokens: input (a huge
  context), output, or reasoning (output that is mostly reasoning).
- *runaway session*: a trace (an agent session) whose number of calls or growing context marks a loop.
  Calls are its answered lines (2xx or no status: retries are not calls). Per team/feature, p is the 95th
  percentile of calls per session over its sessions of two calls or more in the inputs
  (`session_min_calls` when it has fewer than `session_min_sessions` of them). A session with at least
  `session_min_calls` calls is flagged when its calls reach `session_calls_factor` x p (*many_calls*), or
  when they reach `session_growth_calls_factor` x p and its input grows from one call to the next on at
  least `session_growth_share` of its calls (*growing_context*). Excess = session cost - the feature's
  median session cost (the lower middle value), at least `session_min_excess_usd`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.detect import DetectInputs
from finops.detect.findings import FINDING_SCHEMA, evidence
from finops.detect.retries import ANSWERED

__all__ = ["OutlierConfig", "detect_outliers", "request_findings", "session_findings"]

_MONEY = pl.Decimal(38, 12)
_GROUP = ["team", "feature", "model"]


class OutlierConfig(BaseSettings):
    """Bounds of the outlier detectors; each field reads `FINOPS_OUTLIER_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_OUTLIER_", frozen=True, extra="ignore")

    request_min_ratio: float = Field(
        default=10.0, gt=1, description="An outlier request costs at least this many times its group's median."
    )
    request_min_z: float = Field(
        default=5.0, gt=0, description="... and is at least this many robust scales above it (log cost)."
    )
    request_scale_floor: float = Field(
        default=0.25, gt=0, description="Floor of the robust scale of log cost (flat groups do not explode)."
    )
    request_min_history: int = Field(
        default=50, ge=1, description="A team/feature/model needs this many priced lines to have a usual cost."
    )
    request_min_excess_usd: Decimal = Field(
        default=Decimal("0.01"), ge=0, description="An outlier request costs at least this much above the usual."
    )
    request_merge_gap_s: int = Field(
        default=900, ge=0, description="Outliers of one team/feature/model at most this far apart are one incident."
    )
    session_min_calls: int = Field(default=25, ge=2, description="A runaway session has at least this many calls.")
    session_calls_factor: float = Field(
        default=4.0, gt=1, description="Many calls: at least this many times the feature's p95 calls per session."
    )
    session_growth_share: float = Field(
        default=0.8, gt=0, le=1, description="Growing context: input grows on at least this share of calls ..."
    )
    session_growth_calls_factor: float = Field(
        default=2.0, gt=1, description="... and calls reach this many times the feature's p95 calls per session."
    )
    session_min_sessions: int = Field(
        default=30,
        ge=1,
        description="Multi-call sessions a feature needs for its p95 (else `session_min_calls` stands for it).",
    )
    session_min_excess_usd: Decimal = Field(
        default=Decimal("0.25"), ge=0, description="A runaway session costs at least this much above the median."
    )


def detect_outliers(inputs: DetectInputs, config: OutlierConfig | None = None) -> pl.LazyFrame:
    """Outlier requests and runaway sessions whose lines reach the horizon, as `FINDING_SCHEMA` rows."""
    config = config or OutlierConfig()
    horizon = _utc(inputs.horizon_start)
    lines = inputs.lines.select(_COLUMNS).collect()  # the columns it reads (no copy of an in-memory frame)
    found = [request_findings(lines, horizon, config), session_findings(lines.lazy(), horizon, config)]
    return pl.concat(found, how="vertical").lazy()


_COLUMNS = (
    "ts",
    "team",
    "feature",
    "provider",
    "model",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "trace_id",
    "request_id",
    "status",
    "latency_ms",
)
_BINS = 50  # log-cost histogram bins per unit of natural log: quantiles to within 1 % of the cost
_SLOTS = 1 << 16


def request_findings(lines: pl.DataFrame, horizon_start: datetime, config: OutlierConfig) -> pl.DataFrame:
    """`outlier_request` incidents among the lines from `horizon_start` on.

    Order of operations: log cost of every priced line, its team/feature/model as a 64-bit hash of the
    names; per group a histogram of log cost in 1/50 steps, and from it the median and quartiles (to within
    1 %) that set the threshold; the horizon's lines above it; for their groups only, the lines of the bin
    that holds the median: the exact median cost (the lower middle value, a decimal) and the typical
    tokens (the median tokens of those lines); excess = cost - median, at least the floor; merge by group
    and time gap.
    """
    keyed = (
        lines.lazy()
        .with_row_index("_row")
        .filter(pl.col("cost_usd") > 0)
        .select("_row", "ts", _g=pl.struct(_GROUP).hash() // _SLOTS, _log=pl.col("cost_usd").cast(pl.Float64).log())
        .with_columns(_bin=(pl.col("_log") * _BINS).floor().cast(pl.Int64).clip(1 - _SLOTS // 2, _SLOTS // 2 - 1))
        .collect()
    )
    # one 64-bit key per (group, bin): 48 bits of the group's hash, 16 of the bin (offset to be positive)
    histogram = (
        keyed.group_by((pl.col("_g") * _SLOTS + (pl.col("_bin") + _SLOTS // 2).cast(pl.UInt64)).alias("_k"))
        .agg(n=pl.len().cast(pl.Int64))
        .select("n", _g=pl.col("_k") // _SLOTS, _bin=(pl.col("_k") % _SLOTS).cast(pl.Int64) - _SLOTS // 2)
    )
    stats = _quantiles(histogram).filter(pl.col("history") >= config.request_min_history)
    scale = ((pl.col("_q3") - pl.col("_q1")) / 1.349).clip(lower_bound=config.request_scale_floor)
    bound = pl.max_horizontal(pl.lit(math.log(config.request_min_ratio)), config.request_min_z * scale)
    stats = stats.with_columns(_bound=pl.col("_median") + bound, _scale=scale)
    above = (
        keyed.filter(pl.col("ts") >= horizon_start)
        .join(stats, on="_g", how="inner")
        .filter(pl.col("_log") >= pl.col("_bound"))
        .select("_row", "_g", "_median", "_scale", "history")
    )
    if above.is_empty():
        return _empty()
    middle = stats.join(above.select("_g").unique(), on="_g", how="semi").select("_g", "_mid_bin", "_rank")
    members = keyed.join(middle, left_on=["_g", "_bin"], right_on=["_g", "_mid_bin"]).select("_row", "_g", "_rank")
    typical = (
        _rows(lines.select("cost_usd", "input_tokens", "output_tokens"), members)
        .group_by("_g")
        .agg(
            expected_usd=pl.col("cost_usd").sort().get(pl.col("_rank").first()),
            typical_input_tokens=pl.col("input_tokens").median(),
            typical_output_tokens=pl.col("output_tokens").median(),
        )
    )
    outliers = (
        _rows(lines, above)
        .join(typical, on="_g", how="left")
        .with_columns(excess_usd=pl.col("cost_usd") - pl.col("expected_usd"))
        .filter(pl.col("excess_usd") >= config.request_min_excess_usd)
    )
    if outliers.is_empty():
        return _empty()
    return _request_incidents(outliers, config)


def _rows(lines: pl.DataFrame, picked: pl.DataFrame) -> pl.DataFrame:
    """The lines at `picked["_row"]`, with the other columns of `picked` beside them."""
    return pl.concat([lines[picked["_row"]], picked.drop("_row")], how="horizontal")


def _quantiles(histogram: pl.DataFrame) -> pl.DataFrame:
    """Per group `_g`: `history` (lines); the `_median`, `_q1`, `_q3` of log cost (bin centres); the bin
    `_mid_bin` that holds the lower middle line, and that line's `_rank` among the lines of the bin."""
    ordered = histogram.sort("_g", "_bin").with_columns(
        _cum=pl.col("n").cum_sum().over("_g"), _total=pl.col("n").sum().over("_g")
    )
    centre = (pl.col("_bin").cast(pl.Float64) + 0.5) / _BINS
    middle = pl.col("_cum") > (pl.col("_total") - 1) // 2  # the first bin past the lower middle line's rank

    def at(q: float) -> pl.Expr:
        return centre.filter(pl.col("_cum") >= q * pl.col("_total")).first()

    return ordered.group_by("_g").agg(
        history=pl.col("n").sum(),
        _median=at(0.5),
        _q1=at(0.25),
        _q3=at(0.75),
        _mid_bin=pl.col("_bin").filter(middle).first(),
        _rank=((pl.col("_total") - 1) // 2 - (pl.col("_cum") - pl.col("n"))).filter(middle).first(),
    )


def _request_incidents(outliers: pl.DataFrame, config: OutlierConfig) -> pl.DataFrame:
    latency_us = (pl.col("latency_ms").cast(pl.Float64) * 1000).fill_null(0).clip(lower_bound=1000).cast(pl.Int64)
    input_ratio = pl.col("input_tokens") / pl.col("typical_input_tokens").clip(lower_bound=1)
    output_ratio = pl.col("output_tokens") / pl.col("typical_output_tokens").clip(lower_bound=1)
    reasoning = pl.col("reasoning_tokens").fill_null(0) * 2 > pl.col("output_tokens")
    frame = outliers.sort(*_GROUP, "ts", "request_id", nulls_last=True).with_columns(
        _end=pl.col("ts") + pl.duration(microseconds=latency_us),
        _cost=pl.col("cost_usd").cast(pl.Float64),
        _expected=pl.col("expected_usd").cast(pl.Float64),
        driver=pl.when(input_ratio >= output_ratio)
        .then(pl.lit("input"))
        .otherwise(pl.when(reasoning).then(pl.lit("reasoning")).otherwise(pl.lit("output"))),
        robust_z=(pl.col("cost_usd").cast(pl.Float64).log() - pl.col("_median")) / pl.col("_scale"),
    )
    gap = pl.duration(seconds=config.request_merge_gap_s)
    same_group = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift()) for c in _GROUP)
    new = ~same_group | (pl.col("ts") > pl.col("_end").shift() + gap).fill_null(True)
    top = pl.col("_cost").arg_max()
    incidents = (
        frame.with_columns(_incident=new.cum_sum())
        .group_by("_incident")
        .agg(
            *(pl.col(c).first() for c in (*_GROUP, "provider", "history")),
            *(pl.col(c).get(top) for c in ("input_tokens", "output_tokens", "reasoning_tokens", "driver")),
            *(pl.col(c).first() for c in ("typical_input_tokens", "typical_output_tokens")),
            requests=pl.len(),
            window_start=pl.col("ts").min(),
            window_end=pl.col("_end").max(),
            trace_ids=pl.col("trace_id").unique(),
            request_ids=pl.col("request_id"),
            observed=pl.col("_cost").sum(),
            expected=pl.col("_expected").sum(),
            excess_cost_usd=pl.col("excess_usd").sum(),
            robust_z=pl.col("robust_z").max(),
            ratio=(pl.col("_cost") / pl.col("_expected")).max(),
            largest_request_id=pl.col("request_id").get(top),
        )
    )
    one = pl.col("requests") == 1
    details = pl.struct(
        "requests",
        "largest_request_id",
        "ratio",
        "robust_z",
        "driver",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "typical_input_tokens",
        "typical_output_tokens",
        history_requests=pl.col("history"),
    )
    return incidents.select(
        kind=pl.lit("outlier_request"),
        detector=pl.lit("outliers.request"),
        team="team",
        feature="feature",
        provider="provider",
        model="model",
        subject=pl.format("team={}/feature={}/model={}", *(pl.col(c).fill_null("") for c in _GROUP)),
        window_start="window_start",
        window_end="window_end",
        trace_id=pl.when(one).then(pl.col("trace_ids").list.first()),
        request_id=pl.when(one).then(pl.col("request_ids").list.first()),
        metric=pl.lit("cost_usd"),
        observed="observed",
        expected="expected",
        excess_cost_usd=pl.col("excess_cost_usd").cast(_MONEY),
        score=(1 - pl.col("expected") / pl.col("observed")).clip(0.0, 1.0),
        evidence=evidence(pl.col("request_ids")),
        details=details.struct.json_encode(),
    ).sort("window_start", "subject")


def session_findings(lines: pl.LazyFrame, horizon_start: datetime, config: OutlierConfig) -> pl.DataFrame:
    """`runaway_session` findings among the traces that end from `horizon_start` on.

    Order of operations:
      1. per trace (keyed by a 64-bit hash of its id): calls (answered lines), cost, last time, and its
         team/feature (the smallest hash of the pairs it has, so reruns agree);
      2. per team/feature, over its sessions of two calls or more: how many, and the p95 of their calls;
      3. candidates: traces with at least `session_min_calls` calls that end in the horizon;
      4. their lines, exactly (by trace id, in time order): names of the first call, cost as a decimal, the
         share of calls whose input grew over the previous call, the request ids;
      5. flag many_calls / growing_context against the feature's p95; excess over the feature's median
         session cost (the lower middle value, a decimal), at least the floor.
    """
    traced = lines.filter(pl.col("trace_id").is_not_null()).with_columns(
        _call=ANSWERED, _t=pl.col("trace_id").hash(), _f=pl.struct("team", "feature").hash()
    )
    sessions = (
        traced.group_by("_t")
        .agg(
            calls=pl.col("_call").sum().cast(pl.Int64),
            cost=pl.col("cost_usd").sum(),
            last=pl.col("ts").max(),
            _f=pl.col("_f").min(),
        )
        .collect()
    )
    baselines = (
        sessions.filter(pl.col("calls") >= 2)
        .group_by("_f")
        .agg(
            sessions=pl.len(),
            p95_calls=pl.col("calls").quantile(0.95, "linear"),
        )
    )
    wanted = sessions.filter((pl.col("calls") >= config.session_min_calls) & (pl.col("last") >= horizon_start))
    if wanted.is_empty():
        return _empty()
    exact = _session_lines(traced.join(wanted.lazy().select("_t"), on="_t", how="semi"))
    least = float(config.session_min_calls)
    usual = pl.when(pl.col("sessions") >= config.session_min_sessions).then(pl.col("p95_calls")).otherwise(least)
    many = pl.col("calls") >= pl.col("calls_bound")
    growing = (pl.col("growth_share") >= config.session_growth_share) & (pl.col("calls") >= pl.col("growth_bound"))
    flagged = (
        exact.join(baselines, on="_f", how="left")
        .with_columns(
            calls_bound=pl.max_horizontal(pl.lit(least), config.session_calls_factor * usual),
            growth_bound=pl.max_horizontal(pl.lit(least), config.session_growth_calls_factor * usual),
        )
        .filter(many | growing)
        .with_columns(
            pattern=pl.concat_list(
                pl.when(many).then(pl.lit("many_calls")), pl.when(growing).then(pl.lit("growing_context"))
            ).list.drop_nulls()
        )
    )
    medians = (
        sessions.join(flagged.select("_f").unique(), on="_f", how="semi")
        .group_by("_f")
        .agg(expected_usd=pl.col("cost").sort().get((pl.len() - 1) // 2))
    )
    flagged = (
        flagged.join(medians, on="_f", how="left")
        .with_columns(excess_usd=pl.col("cost_usd") - pl.col("expected_usd"))
        .filter(pl.col("excess_usd") >= config.session_min_excess_usd)
    )
    return _session_rows(flagged)


def _session_lines(lines: pl.LazyFrame) -> pl.DataFrame:
    """Step 4 of `session_findings`: one row per candidate trace, from its lines in time order."""
    inputs, calls = pl.col("input_tokens").filter(pl.col("_call")), pl.col("_call").sum()
    return (
        lines.sort("trace_id", "ts", "request_id")
        .group_by("trace_id", maintain_order=True)
        .agg(
            *(pl.col(c).filter(pl.col("_call")).first() for c in ("team", "feature", "provider", "model")),
            calls=calls.cast(pl.Int64),
            lines=pl.len(),
            cost_usd=pl.col("cost_usd").sum(),
            window_start=pl.col("ts").min(),
            window_end=pl.col("ts").max(),
            largest_input=pl.col("input_tokens").max(),
            first_input=inputs.first(),
            last_input=inputs.last(),
            growth_share=(inputs > inputs.shift()).sum() / (calls - 1).clip(lower_bound=1),
            request_ids=pl.col("request_id"),
        )
        .with_columns(_f=pl.struct("team", "feature").hash())
        .collect()
    )


def _session_rows(flagged: pl.DataFrame) -> pl.DataFrame:
    details = pl.struct(
        "calls",
        "lines",
        "pattern",
        "growth_share",
        "first_input",
        "last_input",
        "largest_input",
        "calls_bound",
        "growth_bound",
        feature_sessions=pl.col("sessions"),
        feature_p95_calls=pl.col("p95_calls"),
        cost_usd=pl.col("cost_usd").cast(pl.String),
        expected_usd=pl.col("expected_usd").cast(pl.String),
    )
    observed = pl.col("cost_usd").cast(pl.Float64)
    return flagged.select(
        kind=pl.lit("runaway_session"),
        detector=pl.lit("outliers.session"),
        team="team",
        feature="feature",
        provider="provider",
        model="model",
        subject=pl.format("team={}/feature={}", pl.col("team").fill_null(""), pl.col("feature").fill_null("")),
        window_start="window_start",
        window_end=pl.col("window_end") + pl.duration(milliseconds=1),
        trace_id="trace_id",
        request_id=pl.lit(None, pl.String),
        metric=pl.lit("session_cost_usd"),
        observed=observed,
        expected=pl.col("expected_usd").cast(pl.Float64),
        excess_cost_usd=pl.col("excess_usd").cast(_MONEY),
        score=(1 - pl.col("expected_usd").cast(pl.Float64) / observed).clip(0.0, 1.0),
        evidence=evidence(pl.col("request_ids")),
        details=details.struct.json_encode(),
    ).sort("window_start", "trace_id")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)
