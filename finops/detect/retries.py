"""Retry chains and retry storms: the dollars spent asking the same question again.

Definitions (the README's "Retry storms" section says the same for users):

- *attempt-level line*: a usage line that reports an outcome (`status`) or an `attempt` number.
- *answered*: an attempt whose status is 2xx, or NULL (a source that reports no outcome is taken at its
  word). Everything else failed: '429', 5xx, 'timeout', 'error', 'cancelled', other 4xx.
- *logical request*: the attempts of one `trace_id` (and one `prompt_hash` inside it when given), or,
  with no trace, of one `prompt_hash` whose consecutive attempts are at most `prompt_gap_s` apart; always
  of one team and feature (two teams sending the same prompt template are two requests). Inside
  such a key, in time order (then `attempt`, then `request_id`), a new logical request starts when the
  attempt numbering restarts (an `attempt` not above the previous one), or when an un-numbered (or
  `attempt` 1) line follows an answered one. An agent session (many calls under one trace) so splits into
  its calls, and attempt numbers the gateway left out are reconstructed from the order in time.
- *the answer*: the last answered attempt of a logical request; there is none when every attempt failed.
- *wasted dollars* (`excess_cost_usd`): the cost of every attempt other than the answer (all attempts when
  none answered). An unpriced attempt's cost is unknown, never 0: when no wasted attempt has a price the
  waste is unknown (`excess_cost_usd` NULL, `details.wasted_usd` and, with no priced attempt at all,
  `details.cost_usd` NULL); when some have one it is the priced attempts' cost, a lower bound.
  `details.unpriced_attempts` and `details.unpriced_wasted_attempts` count them, and `details.note` says so.
- *cost amplification*: the cost of all attempts / the reference cost. The reference is the answer's cost;
  when there is no answer, or it is unpriced or free: the median answered cost of the same
  team/feature/model in the detection inputs, else of the model; else the amplification is the number of
  attempts. `details.reference` says which was used.

A *retry chain* is a logical request with at least two attempts and at least `min_attempts` attempts or
at least `min_amplification` amplification: one finding each, unless a storm accounts for it (the storm's
evidence lists its trace) and it is below `chain_in_storm_min_amplification`. A *retry storm*
(`finops.detect.storms`): in `storm_window_s` windows (and in whole hours, for series with few calls per
window) the share of a team/feature's or a provider/model's calls that were retried and its amplification
(attempts / logical requests) jump above the series' own trailing baseline; flagged windows close together,
and the same incident seen in several series, are one finding. `RetryConfig` holds the bounds.

Lines come from the inputs' `LineSource` (`DetectInputs.reads()`): only the attempts of traces (or prompt
hashes) that hold a failed or repeated attempt, and line counts per window, are read.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.detect import DetectInputs
from finops.detect.findings import FINDING_SCHEMA, evidence, unpriced_note
from finops.detect.source import ANSWERED, KEY_ORDER, LineSource, same_key
from finops.detect.storms import ERROR_CLASSES, storms

__all__ = ["ANSWERED", "RetryConfig", "chain_findings", "detect_retries", "number_attempts", "storm_findings"]

_MONEY = pl.Decimal(38, 12)
_ERRORS = ERROR_CLASSES


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
    storm_extend_max_p_value: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="A window extends a storm only if its retried calls are this unlikely under the baseline "
        "(Poisson tail): one ordinary retry among a few calls next to a storm does not stretch it.",
    )
    storm_hourly: bool = Field(
        default=True,
        description="Also test a team/feature's whole hours: storms in features with few calls per window.",
    )
    storm_model_max_feature_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="A provider/model window is a storm only if no team/feature holds more of its retried calls; "
        "a storm is reported for its team/feature when one holds at least this share of its retried requests.",
    )
    storm_merge_min_shared: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Storms seen in two series that share at least this share of the smaller one's retried "
        "requests are one incident (a feature's brown-out seen in its model's series).",
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
    reads = inputs.reads()
    suspect = reads.retry_lines().lazy().with_columns(_answered=ANSWERED)
    numbered = number_attempts(suspect, timedelta(seconds=config.prompt_gap_s)).collect()
    chains = _chains(numbered, reads, config)
    found = storms(numbered, reads, config)
    kept = _outside_storms(chains, found, config)
    return pl.concat([kept.drop("_chain_id"), found.drop("_chain_ids")], how="vertical").lazy()


def storm_findings(numbered: pl.DataFrame, reads: LineSource, config: RetryConfig) -> pl.DataFrame:
    """`retry_storm` findings over the attempts `number_attempts` numbered (`finops.detect.storms.storms`
    gives the order of operations)."""
    return storms(numbered, reads, config).drop("_chain_ids")


def _outside_storms(chains: pl.DataFrame, found: pl.DataFrame, config: RetryConfig) -> pl.DataFrame:
    """Step 6 of `detect_retries`: drop the chains a storm accounts for: its evidence lists their chain id,
    or they overlap its window, widened by `storm_window_s` on each side, in the series it is reported for
    (a request at the storm's edge, started just outside the span its figures count)."""
    if chains.is_empty() or found.is_empty():
        return chains
    in_storm = found.select(_chain_id=pl.col("_chain_ids").explode()).drop_nulls().unique()
    listed = pl.col("_chain_id").is_in(in_storm["_chain_id"].implode())
    indexed = chains.with_row_index("_c")
    edge = pl.duration(seconds=config.storm_window_s)
    beside = []
    for names in (["team", "feature"], ["provider", "model"]):
        storms_ = found.filter(pl.col(names[0]).is_not_null() & (pl.col("team").is_null() == (names[0] != "team")))
        beside.append(
            indexed.join(storms_.select(*names, "window_start", "window_end"), on=names, nulls_equal=True)
            .filter(
                (pl.col("window_start") < pl.col("window_end_right") + edge)
                & (pl.col("window_end") > pl.col("window_start_right") - edge)
            )
            .select("_c")
        )
    overlapping = pl.col("_c").is_in(pl.concat(beside)["_c"].implode())
    part_of_storm = (listed | overlapping) & (pl.col("observed") < config.chain_in_storm_min_amplification)
    return indexed.filter(~part_of_storm).drop("_c")


def number_attempts(lines: pl.LazyFrame, prompt_gap: timedelta) -> pl.LazyFrame:
    """Split keyed lines (with `_answered`) into logical requests; add `_req` (a request number), `_pos` (the
    attempt's place in its request, from 1), `_size` (its number of attempts), `_is_answer`, `_error` (429 /
    5xx / timeout / other for failed attempts), `_chain_id` (the trace id, else the request id of the first
    attempt) and `_end`.

    Column-wise over the sorted lines: a request starts where the key changes or `_starts` says so; the
    place, size and answer come from running counts filled forward or backward from the request's ends."""
    trace, attempt, answered = pl.col("trace_id"), pl.col("attempt"), pl.col("_answered")
    restart = (attempt <= attempt.shift()).fill_null(False)
    after_answer = (attempt.is_null() | (attempt == 1)) & answered.shift().fill_null(False)
    too_late = trace.is_null() & ((pl.col("ts") - pl.col("ts").shift()) > pl.lit(prompt_gap)).fill_null(False)
    latency_us = (pl.col("latency_ms").cast(pl.Float64) * 1000).fill_null(0).clip(lower_bound=1000).cast(pl.Int64)
    row, first, last = pl.int_range(pl.len(), dtype=pl.Int64), pl.col("_first"), pl.col("_first").shift(-1)
    answers_from_here = answered.cast(pl.Int64).cum_sum(reverse=True)  # answered rows from here to the end
    answers_after = answers_from_here - answered.cast(pl.Int64)
    return (
        lines.sort(list(KEY_ORDER), nulls_last=True)
        .with_columns(_first=~same_key() | restart | after_answer | too_late)
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


def chain_findings(numbered: pl.DataFrame, reads: LineSource, config: RetryConfig) -> pl.DataFrame:
    """One `retry_chain` finding per logical request past the bounds.

    Order of operations: aggregate each logical request (attempts, cost, the answer's cost, wasted dollars,
    error mix); keep those with two attempts or more; find a reference cost where the answer gives none
    (`_reference_costs`); amplification = cost / reference; flag on `min_attempts` or `min_amplification`.
    """
    return _chains(numbered, reads, config).drop("_chain_id")


def _chains(numbered: pl.DataFrame, reads: LineSource, config: RetryConfig) -> pl.DataFrame:
    """`chain_findings` with `_chain_id` (the trace id, else the request id of the first attempt)."""
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
            unpriced_wasted_attempts=cost.filter(~pl.col("_is_answer")).is_null().sum(),
            _priced=cost.is_not_null().sum(),
            _wasted_priced=cost.filter(~pl.col("_is_answer")).is_not_null().sum(),
            request_ids=pl.col("request_id"),
            models=pl.col("model").unique(maintain_order=True),
            _chain_id=pl.col("_chain_id").first(),
        )
    )
    if requests.is_empty():
        return _empty().with_columns(_chain_id=pl.lit(None, pl.String))
    requests = _reference_costs(_unknown_costs(requests), reads)
    total = pl.col("cost_usd").cast(pl.Float64)
    amplification = (
        pl.when((pl.col("reference_usd") > 0) & pl.col("cost_usd").is_not_null())
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
        "unpriced_wasted_attempts",
        "models",
        cost_usd=pl.col("cost_usd").cast(pl.String),
        answer_cost_usd=pl.col("answer_cost_usd").cast(pl.String),
        wasted_usd=pl.col("wasted_usd").cast(pl.String),
        error_mix=pl.struct([pl.col(f"n_{e}").alias(e) for e in _ERRORS]),
        note=unpriced_note(pl.col("unpriced_wasted_attempts"), pl.col("wasted_usd")),
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
        excess_cost_usd=pl.col("wasted_usd").cast(_MONEY),
        score=1 - 1 / pl.max_horizontal("amplification", "attempts").clip(lower_bound=1.0),
        evidence=evidence(pl.col("request_ids")),
        details=details.struct.json_encode(),
        _chain_id="_chain_id",
    ).sort("window_start", "subject")


def _unknown_costs(requests: pl.DataFrame) -> pl.DataFrame:
    """A sum over no priced attempt is unknown (NULL), not 0: `cost_usd` when no attempt has a price,
    `wasted_usd` when no wasted attempt has one (polars sums NULLs to 0)."""
    return requests.with_columns(
        cost_usd=pl.when(pl.col("_priced") > 0).then("cost_usd"),
        wasted_usd=pl.when(pl.col("_wasted_priced") > 0).then("wasted_usd"),
    ).drop("_priced", "_wasted_priced")


def _reference_costs(requests: pl.DataFrame, reads: LineSource) -> pl.DataFrame:
    """Add `reference_usd` (Float64) and `reference`: the answer's cost when priced and above 0, else the
    median answered cost of the team/feature/model, else of the model, else NULL ('attempts').

    Only the groups some chain needs are read (`LineSource.answered_medians`)."""
    has_answer_cost = pl.col("answer_cost_usd").is_not_null() & (pl.col("answer_cost_usd") > 0)
    need = requests.filter(~has_answer_cost)
    keys = ["team", "feature", "model"]
    if need.is_empty():  # every chain has a priced answer: nothing to read
        feature_median = pl.DataFrame(schema={**dict.fromkeys(keys, pl.String), "feature_median": pl.Float64})
        model_median = pl.DataFrame(schema={"model": pl.String, "model_median": pl.Float64})
    else:
        feature_median, model_median = reads.answered_medians(need.select(keys))
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


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)
