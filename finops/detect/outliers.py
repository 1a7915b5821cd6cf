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
  Calls are its answered lines (2xx or no status: retries are not calls); its team/feature is the smallest
  (team, feature) pair of its lines. Per team/feature, p is the 95th percentile of calls per session over
  its sessions of two calls or more in the inputs
  (`session_min_calls` when it has fewer than `session_min_sessions` of them). A session with at least
  `session_min_calls` calls is flagged when its calls reach `session_calls_factor` x p (*many_calls*), or
  when they reach `session_growth_calls_factor` x p and its input grows from one call to the next on at
  least `session_growth_share` of its calls (*growing_context*). Excess = session cost - the feature's
  median cost of those sessions (the lower middle value), at least `session_min_excess_usd`.
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
from finops.detect.source import ANSWERED, COST_BINS, LineSource

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
    """Outlier requests and runaway sessions whose lines reach the horizon, as `FINDING_SCHEMA` rows.

    Lines are read through the inputs' `LineSource` (`DetectInputs.reads()`): a cost histogram, the lines
    above their group's bound (and the lines of its median's bin), and the sessions with many calls."""
    config = config or OutlierConfig()
    horizon = _utc(inputs.horizon_start)
    reads = inputs.reads()
    found = [request_findings(reads, horizon, config), session_findings(reads, horizon, config)]
    return pl.concat(found, how="vertical").lazy()


def request_findings(reads: LineSource, horizon_start: datetime, config: OutlierConfig) -> pl.DataFrame:
    """`outlier_request` incidents among the lines from `horizon_start` on.

    Order of operations: per team/feature/model a histogram of log cost in 1/50 steps
    (`LineSource.cost_histogram`), and from it the median and quartiles (to within 1 %) that set the
    bound; the horizon's lines in a bin that can reach the bound (`LineSource.cost_lines`), kept when
    their log cost reaches it; for their groups only, the lines of the bin that holds the median: the exact
    median cost (the lower middle value, a decimal) and the typical tokens (the median tokens of those
    lines); excess = cost - median, at least the floor; merge by group and time gap.
    """
    stats = _quantiles(reads.cost_histogram()).filter(pl.col("history") >= config.request_min_history)
    if stats.is_empty():
        return _empty()
    scale = ((pl.col("_q3") - pl.col("_q1")) / 1.349).clip(lower_bound=config.request_scale_floor)
    bound = pl.max_horizontal(pl.lit(math.log(config.request_min_ratio)), config.request_min_z * scale)
    stats = stats.with_columns(_bound=pl.col("_median") + bound, _scale=scale).with_columns(
        # one bin lower than the bound's: a line on a bin edge is binned the same by every source
        _lo=(pl.col("_bound") * COST_BINS).floor().cast(pl.Int64) - 1
    )
    nothing = pl.lit(None, pl.Int64)
    candidates = reads.cost_lines(stats.select(*_GROUP, "_lo", _mid=nothing), horizon_start)
    above = (
        candidates.filter(pl.col("ts") >= horizon_start)
        .join(stats.drop("_lo"), on=_GROUP, how="inner", nulls_equal=True)
        .filter(pl.col("cost_usd").cast(pl.Float64).log() >= pl.col("_bound"))
    )
    if above.is_empty():
        return _empty()
    middle = stats.join(above.select(_GROUP).unique(), on=_GROUP, how="semi", nulls_equal=True)
    members = reads.cost_lines(middle.select(*_GROUP, _lo=nothing, _mid="_mid_bin"), horizon_start)
    typical = (
        members.join(middle.select(*_GROUP, "_mid_bin", "_rank"), on=_GROUP, nulls_equal=True)
        .filter(pl.col("_bin") == pl.col("_mid_bin"))
        .group_by(_GROUP)
        .agg(
            expected_usd=pl.col("cost_usd").sort().get(pl.col("_rank").first()),
            typical_input_tokens=pl.col("input_tokens").median(),
            typical_output_tokens=pl.col("output_tokens").median(),
        )
    )
    outliers = (
        above.join(typical, on=_GROUP, how="left", nulls_equal=True)
        .with_columns(excess_usd=pl.col("cost_usd") - pl.col("expected_usd"))
        .filter(pl.col("excess_usd") >= config.request_min_excess_usd)
    )
    if outliers.is_empty():
        return _empty()
    return _request_incidents(outliers, config)


def _quantiles(histogram: pl.DataFrame) -> pl.DataFrame:
    """Per team/feature/model: `history` (lines); the `_median`, `_q1`, `_q3` of log cost (bin centres); the
    bin `_mid_bin` that holds the lower middle line, and that line's `_rank` among the lines of the bin."""
    ordered = histogram.sort(*_GROUP, "_bin", nulls_last=True).with_columns(
        _cum=pl.col("n").cum_sum().over(_GROUP), _total=pl.col("n").sum().over(_GROUP)
    )
    centre = (pl.col("_bin").cast(pl.Float64) + 0.5) / COST_BINS
    middle = pl.col("_cum") > (pl.col("_total") - 1) // 2  # the first bin past the lower middle line's rank

    def at(q: float) -> pl.Expr:
        return centre.filter(pl.col("_cum") >= q * pl.col("_total")).first()

    return ordered.group_by(_GROUP).agg(
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


def session_findings(reads: LineSource, horizon_start: datetime, config: OutlierConfig) -> pl.DataFrame:
    """`runaway_session` findings among the traces that end from `horizon_start` on.

    Order of operations:
      1. `LineSource.session_stats`: per team/feature, over its sessions of two calls or more, how many,
         the p95 of their calls and the median session cost (a session's team/feature is the smallest pair
         of its lines, so reruns agree); and the lines of the sessions with at least `session_min_calls`
         calls that end in the horizon;
      2. per candidate, from its lines in time order: names of the first call, cost as a decimal, the share
         of calls whose input grew over the previous call, the request ids;
      3. flag many_calls / growing_context against the feature's p95; excess over the feature's median
         session cost, at least the floor.
    """
    features, candidates = reads.session_stats(config.session_min_calls, horizon_start)
    if candidates.is_empty():
        return _empty()
    exact = _session_lines(candidates)
    least = float(config.session_min_calls)
    usual = pl.when(pl.col("sessions") >= config.session_min_sessions).then(pl.col("p95_calls")).otherwise(least)
    many = pl.col("calls") >= pl.col("calls_bound")
    growing = (pl.col("growth_share") >= config.session_growth_share) & (pl.col("calls") >= pl.col("growth_bound"))
    baselines = features.rename({"team": "_team", "feature": "_feature", "median_cost_usd": "expected_usd"})
    flagged = (
        exact.join(baselines, on=["_team", "_feature"], how="left", nulls_equal=True)
        .with_columns(
            calls_bound=pl.max_horizontal(pl.lit(least), config.session_calls_factor * usual),
            growth_bound=pl.max_horizontal(pl.lit(least), config.session_growth_calls_factor * usual),
        )
        .filter(many | growing)
        .with_columns(
            pattern=pl.concat_list(
                pl.when(many).then(pl.lit("many_calls")), pl.when(growing).then(pl.lit("growing_context"))
            ).list.drop_nulls(),
            excess_usd=pl.col("cost_usd") - pl.col("expected_usd"),
        )
        .filter(pl.col("excess_usd") >= config.session_min_excess_usd)
    )
    return _session_rows(flagged)


def _session_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """Step 2 of `session_findings`: one row per candidate trace, from its lines in time order, with
    `_team` / `_feature`, the smallest (team, feature) pair of its lines."""
    call = ANSWERED
    inputs, calls = pl.col("input_tokens").filter(call), call.sum()
    pairs = (
        lines.sort("trace_id", "team", "feature", nulls_last=True)
        .group_by("trace_id", maintain_order=True)
        .agg(_team=pl.col("team").first(), _feature=pl.col("feature").first())
    )
    return (
        lines.sort("trace_id", "ts", "request_id", nulls_last=True)
        .group_by("trace_id", maintain_order=True)
        .agg(
            *(pl.col(c).filter(call).first() for c in ("team", "feature", "provider", "model")),
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
        .join(pairs, on="trace_id")
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
