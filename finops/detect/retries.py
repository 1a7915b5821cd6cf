"""Retry chains and retry storms: the dollars spent asking the same question again.

Definitions (the README's "Retry storms" section says the same for users):

- *attempt-level line*: a usage line that reports an outcome (`status`) or an `attempt` number.
- *answered*: an attempt whose status is 2xx, or NULL (a source that reports no outcome is taken at its
  word). Everything else failed: '429', 5xx, 'timeout', 'error', 'cancelled', other 4xx.
- *logical request*: the attempts of one `trace_id` (and one `prompt_hash` inside it when given), or,
  with no trace, of one `prompt_hash` whose consecutive attempts are at most `prompt_gap_s` apart. Inside
  such a key, in time order (then `attempt`, then `request_id`), a new logical request starts when the
  attempt numbering restarts (an `attempt` not above the previous one), or when an un-numbered (or
  `attempt` 1) line follows an answered one. An agent session (many calls under one trace) so splits into
  its calls, and attempt numbers the gateway left out are reconstructed from the order in time.
- *the answer*: the last answered attempt of a logical request; there is none when every attempt failed.
- *wasted dollars* (`excess_cost_usd`): the cost of every attempt other than the answer (all attempts when
  none answered); unpriced attempts add nothing and are counted in `details.unpriced_attempts`.
- *cost amplification*: the cost of all attempts / the reference cost. The reference is the answer's cost;
  when there is no answer, or it is unpriced or free: the median answered cost of the same
  team/feature/model in the detection inputs, else of the model; else the amplification is the number of
  attempts. `details.reference` says which was used.

A *retry chain* is a logical request with at least two attempts and at least `min_attempts` attempts or
at least `min_amplification` amplification: one finding each, unless a storm of its team/feature or
provider/model accounts for it (the storm's evidence lists its trace) and it is below
`chain_in_storm_min_amplification`. A
*retry storm*: in `storm_window_s` windows (and in whole hours, for series with few calls per window) the
share of a team/feature's or a provider/model's calls that were retried and its amplification (attempts /
logical requests) jump above the series' own trailing baseline; flagged windows close together are one
incident. `RetryConfig` holds the bounds; `storm_findings` gives the order of operations.
"""

from __future__ import annotations

import math
from datetime import timedelta

import polars as pl
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.detect import DetectInputs
from finops.detect.findings import FINDING_SCHEMA, evidence

__all__ = ["ANSWERED", "RetryConfig", "chain_findings", "detect_retries", "number_attempts", "storm_findings"]

_MONEY = pl.Decimal(38, 12)
_ERRORS = ("429", "5xx", "timeout", "other")
# storm series: (detector, the columns that name one series)
_SERIES = (("retries.storm.feature", ("team", "feature")), ("retries.storm.model", ("provider", "model")))


class RetryConfig(BaseSettings):
    """Bounds of the retry detectors; each field reads `FINOPS_RETRY_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_RETRY_", frozen=True, extra="ignore")

    min_attempts: int = Field(default=5, ge=2, description="A chain with at least this many attempts is flagged.")
    # 10x, not less: a cache-hit answer is a tenth of the price of an uncached failed attempt, so two
    # ordinary failures before a cached answer already cost 5-6x it (measured on bench/detect.py data)
    min_amplification: float = Field(
        default=10.0, gt=1, description="A chain whose attempts cost at least this many times one answer is flagged."
    )
    prompt_gap_s: float = Field(
        default=600.0,
        gt=0,
        description="With no trace id, attempts of one prompt hash at most this far apart are one request.",
    )
    storm_window_s: int = Field(default=300, ge=1, description="Storm detection window (seconds).")
    storm_merge_gap_s: int = Field(
        default=900, ge=0, description="Storm windows at most this far apart (end to start) are one incident."
    )
    storm_baseline_days: float = Field(
        default=7.0, gt=0, description="A series' baseline retry share is taken over this many days before each window."
    )
    storm_prior_calls: int = Field(
        default=200, ge=0, description="The baseline is shrunk toward `storm_prior_share` with this many pseudo-calls."
    )
    storm_prior_share: float = Field(
        default=0.02, ge=0, le=1, description="Retry share assumed for a series with no history."
    )
    storm_min_baseline_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Floor of the baseline share of retried calls (ordinary background retries).",
    )
    storm_min_retried_requests: int = Field(
        default=5, ge=1, description="A storm window needs at least this many retried logical requests."
    )
    storm_share_jump: float = Field(
        default=3.0,
        ge=1,
        description="A storm window's share of retried calls is at least this many times the baseline.",
    )
    storm_min_amplification_increase: float = Field(
        default=0.2, ge=0, description="A storm window's amplification exceeds the baseline's by at least this much."
    )
    storm_max_p_value: float = Field(
        default=1e-7,
        gt=0,
        le=1,
        description="Poisson tail probability of the retried calls under the baseline, at most.",
    )
    storm_hourly: bool = Field(
        default=True,
        description="Also test a team/feature's whole hours: storms in features with few calls per window.",
    )
    storm_model_max_feature_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="A provider/model window is a storm only if no team/feature holds more of its retried calls.",
    )
    chain_in_storm_min_amplification: float = Field(
        default=10.0,
        gt=1,
        description="Inside a storm of its series, a chain is a finding of its own only from this amplification.",
    )


def detect_retries(inputs: DetectInputs, config: RetryConfig | None = None) -> pl.LazyFrame:
    """Retry chains and storms over `inputs.lines`, as `FINDING_SCHEMA` rows (one per incident).

    Order of operations:
      1. keep attempt-level lines and mark each answered or failed;
      2. prefilter: only the traces / prompt hashes holding a failed attempt or an `attempt` above 1 go on
         (PERFORMANCE-NOTES: before any per-trace window);
      3. `number_attempts`: split them into logical requests and number the attempts;
      4. `chain_findings`: per logical request, attempts, cost, wasted dollars and amplification; flag;
      5. `storm_findings`: per series and window, the retries of step 3 against all attempts and the
         series' own baseline; flag; merge consecutive windows into one incident;
      6. a chain inside a storm of its team/feature or provider/model is part of that storm (whose evidence
         lists its trace), not a finding of its own, unless its amplification reaches
         `chain_in_storm_min_amplification`.
    """
    config = config or RetryConfig()
    lines = inputs.lines.select(_COLUMNS).filter(pl.col("status").is_not_null() | pl.col("attempt").is_not_null())
    lines = lines.with_columns(_answered=ANSWERED)
    numbered = number_attempts(_suspect_lines(lines), timedelta(seconds=config.prompt_gap_s)).collect()
    chains = chain_findings(numbered, lines, config)
    storms = storm_findings(numbered, lines, inputs.hourly, config)
    return pl.concat([_outside_storms(chains, storms, config), storms], how="vertical").lazy()


ANSWERED = pl.col("status").is_null() | pl.col("status").str.starts_with("2")
_COLUMNS = (
    "ts",
    "team",
    "feature",
    "provider",
    "model",
    "cost_usd",
    "trace_id",
    "request_id",
    "attempt",
    "status",
    "prompt_hash",
    "latency_ms",
)


def _outside_storms(chains: pl.DataFrame, storms: pl.DataFrame, config: RetryConfig) -> pl.DataFrame:
    """Step 6 of `detect_retries`: drop the chains a storm of their series accounts for."""
    if chains.is_empty() or storms.is_empty():
        return chains
    indexed = chains.with_row_index("_i")
    overlap = (pl.col("window_start") < pl.col("_storm_end")) & (pl.col("_storm_start") < pl.col("window_end"))
    inside = pl.concat(
        indexed.join(
            storms.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in names)).select(
                *names, _storm_start="window_start", _storm_end="window_end"
            ),
            on=list(names),
        )
        .filter(overlap)
        .select("_i")
        for _, names in _SERIES
    )
    own = config.chain_in_storm_min_amplification
    part_of_storm = pl.col("_i").is_in(inside["_i"].implode()) & (pl.col("observed") < own)
    return indexed.filter(~part_of_storm).drop("_i")


def _suspect_lines(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Every line of the traces (or, without a trace, prompt hashes) that hold a failed or repeated attempt.

    Keys are compared as 64-bit hashes (a collision only lets an innocent trace through to the exact steps).
    """
    key = (
        pl.when(pl.col("trace_id").is_not_null())
        .then(pl.col("trace_id").hash(1))
        .otherwise(pl.col("prompt_hash").hash(2))
        .alias("_key")
    )
    keyed = lines.filter(pl.col("trace_id").is_not_null() | pl.col("prompt_hash").is_not_null()).with_columns(key)
    suspect = keyed.filter(~pl.col("_answered") | (pl.col("attempt") > 1).fill_null(False)).select("_key").unique()
    return keyed.join(suspect, on="_key", how="semi").drop("_key")


def number_attempts(lines: pl.LazyFrame, prompt_gap: timedelta) -> pl.LazyFrame:
    """Split keyed lines (with `_answered`) into logical requests; add `_req` (a request number), `_pos` (the
    attempt's place in its request, from 1), `_size` (its number of attempts), `_is_answer`, `_error` (429 /
    5xx / timeout / other for failed attempts), `_chain_id` (the trace id, else the request id of the first
    attempt) and `_end`.

    Column-wise over the sorted lines: a request starts where the key changes or `_starts` says so; the
    place, size and answer come from running counts filled forward or backward from the request's ends."""
    trace, prompt, attempt, answered = pl.col("trace_id"), pl.col("prompt_hash"), pl.col("attempt"), pl.col("_answered")
    same_key = trace.eq_missing(trace.shift()) & prompt.eq_missing(prompt.shift())
    restart = (attempt <= attempt.shift()).fill_null(False)
    after_answer = (attempt.is_null() | (attempt == 1)) & answered.shift().fill_null(False)
    too_late = trace.is_null() & ((pl.col("ts") - pl.col("ts").shift()) > pl.lit(prompt_gap)).fill_null(False)
    latency_us = (pl.col("latency_ms").cast(pl.Float64) * 1000).fill_null(0).clip(lower_bound=1000).cast(pl.Int64)
    row, first, last = pl.int_range(pl.len(), dtype=pl.Int64), pl.col("_first"), pl.col("_first").shift(-1)
    answers_from_here = answered.cast(pl.Int64).cum_sum(reverse=True)  # answered rows from here to the end
    answers_after = answers_from_here - answered.cast(pl.Int64)
    return (
        lines.sort(["trace_id", "prompt_hash", "ts", "attempt", "request_id"], nulls_last=True)
        .with_columns(_first=~same_key | restart | after_answer | too_late)
        .with_columns(
            _req=first.cum_sum(),
            _pos=(row - pl.when(first).then(row).forward_fill() + 1).cast(pl.Int32),
            _last=last.fill_null(True),
            _after_request=pl.when(last.fill_null(True)).then(answers_after).backward_fill(),
        )
        .with_columns(
            _size=pl.when("_last").then("_pos").backward_fill(),
            _is_answer=answered & (answers_after == pl.col("_after_request")),
            _error=_error_class(pl.col("status"), answered),
            _chain_id=pl.coalesce(trace, pl.when(first).then(pl.col("request_id")).forward_fill()),
            _end=pl.col("ts") + pl.duration(microseconds=latency_us),
        )
        .drop("_first", "_last", "_after_request")
    )


def _error_class(status: pl.Expr, answered: pl.Expr) -> pl.Expr:
    """429 / 5xx / timeout / other for a failed attempt, NULL for an answered one."""
    return (
        pl.when(answered)
        .then(pl.lit(None, pl.String))
        .when(status == "429")
        .then(pl.lit("429"))
        .when(status.str.starts_with("5"))
        .then(pl.lit("5xx"))
        .when(status == "timeout")
        .then(pl.lit("timeout"))
        .otherwise(pl.lit("other"))
    )


def chain_findings(numbered: pl.DataFrame, lines: pl.LazyFrame, config: RetryConfig) -> pl.DataFrame:
    """One `retry_chain` finding per logical request past the bounds.

    Order of operations: aggregate each logical request (attempts, cost, the answer's cost, wasted dollars,
    error mix); keep those with two attempts or more; find a reference cost where the answer gives none
    (`_reference_costs`); amplification = cost / reference; flag on `min_attempts` or `min_amplification`.
    """
    cost = pl.col("cost_usd")
    requests = (
        numbered.filter(pl.col("_size") >= 2)
        .group_by("_req")
        .agg(
            *(pl.col(c).first() for c in ("trace_id", "prompt_hash", "team", "feature", "provider", "model")),
            *((pl.col("_error") == e).sum().alias(f"n_{e}") for e in _ERRORS),
            attempts=pl.len(),
            numbered=pl.col("attempt").is_not_null().all(),
            window_start=pl.col("ts").min(),
            window_end=pl.col("_end").max(),
            cost_usd=cost.sum(),
            answer_cost_usd=cost.filter(pl.col("_is_answer")).first(),
            wasted_usd=cost.filter(~pl.col("_is_answer")).sum(),
            answered=pl.col("_is_answer").any(),
            unpriced_attempts=cost.is_null().sum(),
            request_ids=pl.col("request_id"),
            models=pl.col("model").unique(maintain_order=True),
        )
    )
    if requests.is_empty():
        return _empty()
    requests = _reference_costs(requests, lines)
    total = pl.col("cost_usd").cast(pl.Float64)
    amplification = (
        pl.when(pl.col("reference_usd") > 0)
        .then(total / pl.col("reference_usd"))
        .otherwise(pl.col("attempts").cast(pl.Float64))
    )
    flagged = requests.with_columns(amplification=amplification).filter(
        (pl.col("attempts") >= config.min_attempts) | (pl.col("amplification") >= config.min_amplification)
    )
    subject = (
        pl.when(pl.col("trace_id").is_null())
        .then(pl.format("prompt={}", pl.col("prompt_hash")))
        .when(pl.col("prompt_hash").is_null())
        .then(pl.format("trace={}", pl.col("trace_id")))
        .otherwise(pl.format("trace={}/prompt={}", pl.col("trace_id"), pl.col("prompt_hash")))
    )
    details = pl.struct(
        "attempts",
        "amplification",
        "answered",
        "reference",
        "numbered",
        "unpriced_attempts",
        "models",
        cost_usd=pl.col("cost_usd").cast(pl.String),
        answer_cost_usd=pl.col("answer_cost_usd").cast(pl.String),
        wasted_usd=pl.col("wasted_usd").cast(pl.String),
        error_mix=pl.struct([pl.col(f"n_{e}").alias(e) for e in _ERRORS]),
    )
    return flagged.select(
        kind=pl.lit("retry_chain"),
        detector=pl.lit("retries.chain"),
        team="team",
        feature="feature",
        provider="provider",
        model="model",
        subject=subject,
        window_start="window_start",
        window_end="window_end",
        trace_id="trace_id",
        request_id=pl.lit(None, pl.String),
        metric=pl.lit("cost_amplification"),
        observed="amplification",
        expected=pl.lit(1.0),
        excess_cost_usd=pl.col("wasted_usd").fill_null(0).cast(_MONEY),
        score=1 - 1 / pl.max_horizontal("amplification", "attempts").clip(lower_bound=1.0),
        evidence=evidence(pl.col("request_ids")),
        details=details.struct.json_encode(),
    ).sort("window_start", "subject")


def _reference_costs(requests: pl.DataFrame, lines: pl.LazyFrame) -> pl.DataFrame:
    """Add `reference_usd` (Float64) and `reference`: the answer's cost when priced and above 0, else the
    median answered cost of the team/feature/model, else of the model, else NULL ('attempts').

    Only the groups some chain needs are read (matched on 64-bit hashes of their names, then on the names)."""
    has_answer_cost = pl.col("answer_cost_usd").is_not_null() & (pl.col("answer_cost_usd") > 0)
    need = requests.filter(~has_answer_cost)
    keys = ["team", "feature", "model"]
    group, model = pl.struct(keys).hash().alias("_g"), pl.col("model").hash().alias("_m")
    answered = lines.filter(pl.col("_answered") & (pl.col("cost_usd") > 0)).select(
        *keys, group, model, cost=pl.col("cost_usd").cast(pl.Float64)
    )
    wanted = need.select(group, model)
    by_feature = (
        answered.join(wanted.lazy().select("_g").unique(), on="_g", how="semi")
        .group_by(keys)
        .agg(feature_median=pl.col("cost").median())
    )
    by_model = (
        answered.join(wanted.lazy().select("_m").unique(), on="_m", how="semi")
        .group_by("model")
        .agg(model_median=pl.col("cost").median())
    )
    if need.is_empty():  # every chain has a priced answer: nothing to read
        feature_median = pl.DataFrame(schema={**dict.fromkeys(keys, pl.String), "feature_median": pl.Float64})
        model_median = pl.DataFrame(schema={"model": pl.String, "model_median": pl.Float64})
    else:
        feature_median, model_median = pl.collect_all([by_feature, by_model])
    return (
        requests.join(feature_median, on=keys, how="left", nulls_equal=True)
        .join(model_median, on="model", how="left", nulls_equal=True)
        .with_columns(
            reference_usd=pl.when(has_answer_cost)
            .then(pl.col("answer_cost_usd").cast(pl.Float64))
            .otherwise(pl.coalesce("feature_median", "model_median")),
            reference=pl.when(has_answer_cost)
            .then(pl.lit("answer"))
            .when(pl.col("feature_median").is_not_null())
            .then(pl.lit("feature_model_median"))
            .when(pl.col("model_median").is_not_null())
            .then(pl.lit("model_median"))
            .otherwise(pl.lit("attempts")),
        )
    )


def storm_findings(
    numbered: pl.DataFrame, lines: pl.LazyFrame, hourly: pl.LazyFrame, config: RetryConfig
) -> pl.DataFrame:
    """One `retry_storm` finding per incident, per team/feature series and per provider/model series.

    Order of operations, per series, at two scales: `storm_window_s` windows (attempts counted from the
    lines) and, for team/features when `storm_hourly`, whole hours (attempts from the hourly rollup, for
    features with few calls per window; a provider/model gathers many features and has enough):
      1. from the numbered lines: retries R (attempts after the first), retried logical requests Q, wasted
         dollars, error mix, the chain ids; windows with Q >= `storm_min_retried_requests` are candidates;
      2. attempts A of the candidate windows; logical requests L = A - R; amplification = A / L;
      3. baseline per series and UTC day (`_baseline`): over the `storm_baseline_days` before the window's
         day, the share of calls retried q0, of calls retried twice or more d0, and the amplification;
      4. a window is elevated when Q/L >= `storm_share_jump` x q0 and amplification >= baseline +
         `storm_min_amplification_increase`; it is flagged when, besides, Q >= `storm_min_retried_requests`
         and the Poisson tail P(X >= Q | L x q0), or that of the requests retried twice or more
         P(X >= D | L x d0), is at most `storm_max_p_value` (and, for a provider/model, no team/feature
         holds more than `storm_model_max_feature_share` of its retried requests: else it is that
         feature's storm);
      5. elevated windows at most `storm_merge_gap_s` apart form runs; a run with a flagged window is one
         incident (so it reaches over the storm's quieter first and last minutes, up to an hour from a
         flagged window), with its counts summed; an hourly incident that overlaps a finer incident of the
         same series is dropped.
    """
    retried = (
        numbered.filter((pl.col("_pos") > 1) | ~pl.col("_is_answer"))  # retries and failures: what storms count
        .sort("ts", "request_id")
        .with_columns(_retry=pl.col("_pos") > 1, _day=(pl.col("ts").dt.epoch("s") // 86_400).cast(pl.Int32))
    )
    found = []
    for detector, names in _SERIES:
        series = list(names)
        baseline = _baseline(retried, hourly, series, config)
        fine = _scale(retried, lines, series, baseline, detector, config.storm_window_s, config)
        found.append(fine)
        if config.storm_hourly and config.storm_window_s < 3_600 and detector == "retries.storm.feature":
            rollup = hourly.select(*series, ts="hour", attempts="lines")
            coarse = _scale(retried, rollup, series, baseline, f"{detector}.hourly", 3_600, config)
            overlapping = coarse.join(fine.select("subject", "window_start", "window_end"), on="subject").filter(
                (pl.col("window_start") < pl.col("window_end_right"))
                & (pl.col("window_start_right") < pl.col("window_end"))
            )
            found.append(
                coarse.join(overlapping.select("subject", "window_start"), on=["subject", "window_start"], how="anti")
            )
    return pl.concat(found, how="vertical")


def _scale(
    retried: pl.DataFrame,
    attempts: pl.LazyFrame,
    series: list[str],
    baseline: pl.DataFrame,
    detector: str,
    window_s: int,
    config: RetryConfig,
) -> pl.DataFrame:
    """Steps 1-5 of `storm_findings` at one window size; `attempts` holds attempt-level lines (`ts`), or
    rollup rows with their `attempts` count. Attempts are counted only in the windows that have at least
    `storm_min_retried_requests` retried requests, and in the hour around them (for the extension)."""
    bucket = (pl.col("ts").dt.epoch("s") // window_s).alias("_w")
    cells = _retry_counts(retried.with_columns(bucket), series, model=detector.startswith("retries.storm.model"))
    strong = cells.filter(pl.col("retried_requests") >= config.storm_min_retried_requests)
    if strong.is_empty():
        return _empty()
    reach = -(-_EXTEND_S // window_s)
    near = strong.select(*series, _w=pl.col("_w") + pl.int_ranges(-reach, reach + 1)).explode("_w").unique()
    cells = cells.join(near, on=[*series, "_w"], how="semi", nulls_equal=True)
    count = pl.col("attempts").sum() if "attempts" in attempts.collect_schema() else pl.len()
    counted = (
        attempts.with_columns(bucket)
        .join(cells.lazy().select("_w").unique(), on="_w", how="semi")
        .group_by(*series, "_w")
        .agg(count.cast(pl.Int64).alias("attempts"))
        .collect()
    )
    windows = (
        cells.join(counted, on=[*series, "_w"], how="inner", nulls_equal=True)
        .with_columns(_day=(pl.col("_w") * window_s // 86_400).cast(pl.Int32))
        .join(baseline, on=[*series, "_day"], how="left", nulls_equal=True)
    )
    return _storm_incidents(_flag_windows(windows, config), detector, series, window_s, config)


_EXTEND_S = 3_600  # an incident extends through elevated windows at most this far from a flagged one


def _retry_counts(retried: pl.DataFrame, series: list[str], *, model: bool) -> pl.DataFrame:
    """Step 1 of `storm_findings`, per series and window; for provider/model series also `top_share`, the
    largest share of the retried requests that one team/feature holds."""
    retry = pl.col("_retry")
    cells = retried.group_by(*series, "_w").agg(
        *((pl.col("_error") == e).sum().cast(pl.Int64).alias(f"n_{e}") for e in _ERRORS),
        retries=retry.sum().cast(pl.Int64),
        retried_requests=pl.col("_req").filter(retry).n_unique().cast(pl.Int64),
        deep_requests=pl.col("_req").filter(retry & (pl.col("_size") >= 3)).n_unique().cast(pl.Int64),
        wasted_usd=pl.col("cost_usd").filter(~pl.col("_is_answer")).sum(),
        chain_ids=pl.col("_chain_id").filter(retry).unique(maintain_order=True),
        requests=pl.col("_req").filter(retry).unique(),
    )
    if not model:
        return cells.with_columns(top_share=pl.lit(0.0))
    per_feature = (
        retried.filter(retry)
        .group_by(*series, "_w", "team", "feature")
        .agg(n=pl.col("_req").n_unique())
        .group_by(*series, "_w")
        .agg(top_share=pl.col("n").max() / pl.col("n").sum())
    )
    return cells.join(per_feature, on=[*series, "_w"], how="left", nulls_equal=True).with_columns(
        pl.col("top_share").fill_null(0.0)
    )


def _baseline(retried: pl.DataFrame, hourly: pl.LazyFrame, series: list[str], config: RetryConfig) -> pl.DataFrame:
    """Step 3 of `storm_findings`: per series and UTC day (`_day`), `base_share` and `base_extra`."""
    day = (pl.col("hour").dt.epoch("s") // 86_400).cast(pl.Int32).alias("_day")
    lines = hourly.group_by(*series, day).agg(pl.col("lines").sum().cast(pl.Int64)).collect()
    retries = retried.group_by(*series, "_day").agg(
        hist_retries=pl.col("_retry").sum().cast(pl.Int64),
        hist_q=pl.col("_req").filter(pl.col("_retry")).n_unique().cast(pl.Int64),
        hist_deep=pl.col("_req").filter(pl.col("_retry") & (pl.col("_size") >= 3)).n_unique().cast(pl.Int64),
    )
    trailing = f"{round(config.storm_baseline_days * 86_400)}s"
    days = (
        lines.join(retries, on=[*series, "_day"], how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col("lines", *_HISTORY[1:]).fill_null(0))
        .with_columns(
            hist_calls=(pl.col("lines") - pl.col("hist_retries")).clip(lower_bound=0),
            _t=pl.from_epoch(pl.col("_day").cast(pl.Int64) * 86_400, time_unit="s"),
        )
        .sort(*series, "_day", nulls_last=True)
    )
    summed = {c: pl.col(c).rolling_sum_by("_t", trailing, closed="left").over(series) for c in _HISTORY}
    floor = config.storm_min_baseline_share
    return days.with_columns(**summed).select(
        *series,
        "_day",
        base_share=_shrunk(pl.col("hist_q"), pl.col("hist_calls"), config).clip(lower_bound=floor),
        base_extra=_shrunk(pl.col("hist_retries"), pl.col("hist_calls"), config).clip(lower_bound=floor),
        base_deep=_shrunk(pl.col("hist_deep"), pl.col("hist_calls"), config, _DEEP).clip(lower_bound=floor * _DEEP),
    )


_HISTORY = ("hist_calls", "hist_retries", "hist_q", "hist_deep")
_DEEP = 0.25  # deep retries' prior and floor, relative to all retries': about 1 retried call in 5 is retried again


def _flag_windows(windows: pl.DataFrame, config: RetryConfig) -> pl.DataFrame:
    """Steps 2 and 4 of `storm_findings`: calls and amplification of each window; `_strong` when it passes
    every test, else kept as elevated when its share and amplification alone do (it may extend an incident)."""
    q, calls = pl.col("retried_requests"), pl.col("calls")
    prior = max(config.storm_prior_share, config.storm_min_baseline_share)  # a day the rollup does not know
    elevated = (q / calls >= config.storm_share_jump * pl.col("base_share")) & (
        pl.col("amplification") >= 1 + pl.col("base_extra") + config.storm_min_amplification_increase
    )
    limit = math.log(config.storm_max_p_value)
    significant = (_log_poisson_tail(q, calls * pl.col("base_share")) <= limit) | (
        _log_poisson_tail(pl.col("deep_requests"), calls * pl.col("base_deep")) <= limit
    )
    strong = (
        (q >= config.storm_min_retried_requests)
        & significant
        & (pl.col("top_share") <= config.storm_model_max_feature_share)
    )
    return (
        windows.with_columns(
            calls=(pl.col("attempts") - pl.col("retries")).clip(lower_bound=1),
            base_share=pl.col("base_share").fill_null(prior),
            base_extra=pl.col("base_extra").fill_null(prior),
            base_deep=pl.col("base_deep").fill_null(prior * _DEEP),
        )
        .with_columns(amplification=pl.col("attempts") / calls)
        .filter(elevated & (q >= 1))
        .with_columns(_strong=strong)
    )


def _shrunk(events: pl.Expr, calls: pl.Expr, config: RetryConfig, scale: float = 1.0) -> pl.Expr:
    """events / calls, shrunk toward `scale` x `storm_prior_share` with `storm_prior_calls` pseudo-calls."""
    prior = float(config.storm_prior_calls)
    share = scale * config.storm_prior_share
    return (events.fill_null(0) + share * prior) / (calls.fill_null(0) + prior).clip(lower_bound=1)


def _log_poisson_tail(k: pl.Expr, lam: pl.Expr) -> pl.Expr:
    """log P(X >= k) for X ~ Poisson(lam), bounded above by P(X = k) / (1 - lam / (k + 1)) when k > lam
    (log k! by Stirling's series, within 0.003 from k = 1); 0 (p = 1) when k <= lam."""
    kf = k.cast(pl.Float64)
    log_factorial = kf * kf.log() - kf + 0.5 * (2 * math.pi * kf).log() + 1 / (12 * kf)
    log_term = kf * lam.log() - lam - log_factorial - (1 - lam / (kf + 1)).log()
    return pl.when((kf > lam) & (kf >= 1)).then(log_term).otherwise(0.0)


def _storm_incidents(
    flagged: pl.DataFrame, detector: str, series: list[str], window_s: int, config: RetryConfig
) -> pl.DataFrame:
    """Step 5 of `storm_findings`: merged incidents as `FINDING_SCHEMA` rows."""
    if flagged.is_empty():
        return _empty()
    step = 1 + config.storm_merge_gap_s // window_s  # window numbers at most this far apart merge
    same_series = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift()) for c in series)
    new = ~same_series | (pl.col("_w") - pl.col("_w").shift() > step).fill_null(True)
    sums = ("attempts", "calls", "retries", *(f"n_{e}" for e in _ERRORS))
    incidents = (
        flagged.sort(*series, "_w", nulls_last=True)
        .with_columns(_incident=new.cum_sum(), _base_retries=pl.col("calls") * pl.col("base_share"))
        .with_columns(_base_extra=pl.col("calls") * pl.col("base_extra"))
        .group_by("_incident")
        .agg(
            *(pl.col(c).first() for c in series),
            *(pl.col(c).sum() for c in sums),
            pl.col("_base_retries").sum(),
            pl.col("_base_extra").sum(),
            pl.col("wasted_usd").sum(),
            first=pl.col("_w").min(),
            last=pl.col("_w").max(),
            windows=pl.len(),
            _strong=pl.col("_strong").any(),
            chain_ids=pl.col("chain_ids").explode().unique(maintain_order=True),
            retried_requests=pl.col("requests").explode().n_unique().cast(pl.Int64),
        )
        .filter("_strong")
    )
    if incidents.is_empty():
        return _empty()
    calls = pl.col("calls").cast(pl.Float64)
    base_share = pl.col("_base_retries") / calls
    share = pl.col("retried_requests") / calls
    baseline_amplification = 1 + pl.col("_base_extra") / calls
    details = pl.struct(
        "attempts",
        "windows",
        logical_requests=pl.col("calls"),
        retries=pl.col("retries"),
        retried_requests=pl.col("retried_requests"),
        retried_share=share,
        baseline_retried_share=base_share,
        amplification=pl.col("attempts") / calls,
        baseline_amplification=baseline_amplification,
        error_mix=pl.struct([pl.col(f"n_{e}").alias(e) for e in _ERRORS]),
        wasted_usd=pl.col("wasted_usd").cast(pl.String),
        window_s=pl.lit(window_s),
    )
    window = window_s * 1_000_000
    return incidents.select(
        kind=pl.lit("retry_storm"),
        detector=pl.lit(detector),
        **{c: pl.col(c) if c in series else pl.lit(None, pl.String) for c in ("team", "feature", "provider", "model")},
        subject=pl.format("/".join(f"{c}={{}}" for c in series), *(pl.col(c).fill_null("") for c in series)),
        window_start=pl.from_epoch(pl.col("first") * window, time_unit="us").dt.replace_time_zone("UTC"),
        window_end=pl.from_epoch((pl.col("last") + 1) * window, time_unit="us").dt.replace_time_zone("UTC"),
        trace_id=pl.lit(None, pl.String),
        request_id=pl.lit(None, pl.String),
        metric=pl.lit("amplification"),
        observed=pl.col("attempts") / calls,
        expected=baseline_amplification,
        excess_cost_usd=pl.col("wasted_usd").fill_null(0).cast(_MONEY),
        score=(1 - base_share / share).clip(0.0, 1.0),
        evidence=evidence(pl.col("chain_ids")),
        details=details.struct.json_encode(),
    ).sort("window_start", "subject")


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)
