"""What the retry and outlier detectors read, as questions a source of usage lines answers.

Detectors that need lines ask a `LineSource` for just what they use (the lines of traces with a failed
attempt, counts per window, a cost histogram ...), never for every line. Two sources answer the same
questions:

- `FrameSource` answers from `DetectInputs.lines` with polars: in-memory inputs (tests, benchmarks);
- `finops.store.findings.DuckSource` answers with SQL over `spend_lines`, so that only those few lines
  and rollups leave DuckDB (what `finops run` uses).

Both give the same answers; `tests/detect/test_sources.py` holds them to it. Terms used below:

- *attempt-level line*: a line with a `status` or an `attempt` number (`ATTEMPT_LEVEL`);
- *answered*: a 2xx status, or none (`ANSWERED`);
- *key* of a line: its `trace_id`, else its `prompt_hash`, always within one `team` and `feature` (two
  teams sending the same prompt, or one trace billed to two teams, are never one request: a chain and its
  evidence belong to the team it is reported for); lines of one key are ordered by (`trace_id`,
  `prompt_hash`, `team`, `feature`, `ts`, `attempt`, `request_id`), NULLs last (`KEY_ORDER`);
- *cost bin*: floor(ln(cost_usd) x `COST_BINS`) of a priced line (cost above 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import polars as pl

__all__ = [
    "ANSWERED",
    "ATTEMPT_LEVEL",
    "COST_BINS",
    "KEY_COLUMNS",
    "KEY_ORDER",
    "same_key",
    "LINE_COLUMNS",
    "FrameSource",
    "LineSource",
    "cost_bin",
]

ANSWERED = pl.col("status").is_null() | pl.col("status").str.starts_with("2")
ATTEMPT_LEVEL = pl.col("status").is_not_null() | pl.col("attempt").is_not_null()
KEY_ORDER = ("trace_id", "prompt_hash", "team", "feature", "ts", "attempt", "request_id")
KEY_COLUMNS = KEY_ORDER[:4]  # the columns that make a line's key (see the module docstring)
COST_BINS = 50  # cost bins per unit of natural log: quantiles read from them are within 1 % of the cost
# the columns of the lines a source returns (cost_lines and session lines add `_bin` / nothing)
LINE_COLUMNS = (
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
    "attempt",
    "status",
    "prompt_hash",
    "latency_ms",
)


def same_key(offset: int = 1) -> pl.Expr:
    """True where a line has the same key as the line `offset` rows before it (negative: after it)."""
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(offset)) for c in KEY_COLUMNS)


def cost_bin(cost: pl.Expr) -> pl.Expr:
    """The cost bin of a priced line (see the module docstring); NULL for a line not above 0."""
    return pl.when(cost > 0).then((cost.cast(pl.Float64).log() * COST_BINS).floor().cast(pl.Int64))


class LineSource(Protocol):
    """The questions the retry and outlier detectors ask about the lines of the detection inputs."""

    def retry_lines(self) -> pl.DataFrame:
        """`LINE_COLUMNS` of the attempt-level lines of every key that holds a failed attempt or an attempt
        above 1. A source may leave out lines that cannot belong to a request of two attempts or more:
        answered lines numbered 1 or not at all, whose previous line of the key was answered (or that have
        none) and whose next line of the key is not numbered above 1."""
        ...

    def answered_medians(self, groups: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The median cost (Float64) of the answered, priced attempt-level lines of each team/feature/model
        of `groups` (`feature_median`), and of each of their models (`model_median`)."""
        ...

    def line_counts(self, window_s: int, series: Sequence[Sequence[str]]) -> list[pl.DataFrame]:
        """For each key set of `series` (names among team, feature, provider, model), attempt-level lines
        (`lines`) per those keys and window `_w` (epoch seconds // `window_s`): one frame per key set."""
        ...

    def span_counts(self, keys: Sequence[str], spans: pl.DataFrame) -> pl.DataFrame:
        """Attempt-level lines (`lines`) of each span (`_span`: the series named by `keys`, from `_start` to
        `_end`, both included)."""
        ...

    def cost_histogram(self) -> pl.DataFrame:
        """Priced lines (`n`) per team, feature, model and cost bin `_bin`."""
        ...

    def cost_lines(self, bounds: pl.DataFrame, since: datetime) -> pl.DataFrame:
        """`LINE_COLUMNS` and `_bin` of the priced lines of each team/feature/model of `bounds` whose bin is
        `_mid`, or at least `_lo` when they start from `since` on."""
        ...

    def session_stats(self, min_calls: int, since: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Sessions are the lines of one `trace_id`; their calls are their answered lines, their team and
        feature the smallest (team, feature) pair of their lines. Returns, per team/feature, over its
        sessions of two calls or more: `sessions`, `p95_calls` (linear) and `median_cost_usd` (the lower
        middle value); and `LINE_COLUMNS` of the sessions with at least `min_calls` calls whose last line
        starts from `since` on."""
        ...


class FrameSource:
    """A `LineSource` over lines in memory (a LazyFrame of `spend_lines`' usage columns)."""

    def __init__(self, lines: pl.LazyFrame) -> None:
        self.lines = lines

    def retry_lines(self) -> pl.DataFrame:
        attempts = self.lines.select(_RETRY_COLUMNS).filter(ATTEMPT_LEVEL)
        trace = pl.col("trace_id")
        key = pl.when(trace.is_not_null()).then(trace.hash(1)).otherwise(pl.col("prompt_hash").hash(2))
        keyed = attempts.filter(trace.is_not_null() | pl.col("prompt_hash").is_not_null()).with_columns(_key=key)
        suspect = keyed.filter(~ANSWERED | (pl.col("attempt") > 1).fill_null(False)).select("_key").unique()
        # leave out what cannot belong to a request of two attempts or more (as `DuckSource` does)
        attempt = pl.col("attempt")
        previous_answered = pl.when(same_key(1)).then(ANSWERED.shift()).fill_null(True)
        next_retry = pl.when(same_key(-1)).then(attempt.shift(-1) > 1).fill_null(False)
        needed = ~ANSWERED | (attempt > 1).fill_null(False) | ~previous_answered | next_retry
        return (
            keyed.join(suspect, on="_key", how="semi")
            .drop("_key")
            .sort(KEY_ORDER, nulls_last=True)
            .filter(needed)
            .collect()
        )

    def answered_medians(self, groups: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        keys = ["team", "feature", "model"]
        answered = self.lines.filter(ATTEMPT_LEVEL & ANSWERED & (pl.col("cost_usd") > 0)).select(
            *keys, cost=pl.col("cost_usd").cast(pl.Float64)
        )
        by_feature = (
            answered.join(groups.lazy().select(keys).unique(), on=keys, how="semi", nulls_equal=True)
            .group_by(keys)
            .agg(feature_median=pl.col("cost").median())
        )
        by_model = (
            answered.join(groups.lazy().select("model").unique(), on="model", how="semi", nulls_equal=True)
            .group_by("model")
            .agg(model_median=pl.col("cost").median())
        )
        feature, model = pl.collect_all([by_feature, by_model])
        return feature, model

    def line_counts(self, window_s: int, series: Sequence[Sequence[str]]) -> list[pl.DataFrame]:
        attempts = self.lines.filter(ATTEMPT_LEVEL).with_columns(_w=pl.col("ts").dt.epoch("s") // window_s)
        return pl.collect_all([attempts.group_by(*keys, "_w").agg(lines=pl.len().cast(pl.Int64)) for keys in series])

    def span_counts(self, keys: Sequence[str], spans: pl.DataFrame) -> pl.DataFrame:
        inside = (pl.col("ts") >= pl.col("_start")) & (pl.col("ts") <= pl.col("_end"))
        counted = (
            self.lines.filter(ATTEMPT_LEVEL)
            .select(*keys, "ts")
            .join(spans.lazy().select("_span", *keys, "_start", "_end"), on=list(keys), nulls_equal=True)
            .filter(inside)
            .group_by("_span")
            .agg(lines=pl.len().cast(pl.Int64))
            .collect()
        )
        return spans.select("_span").join(counted, on="_span", how="left").with_columns(pl.col("lines").fill_null(0))

    def cost_histogram(self) -> pl.DataFrame:
        return (
            self.lines.filter(pl.col("cost_usd") > 0)
            .group_by("team", "feature", "model", _bin=cost_bin(pl.col("cost_usd")))
            .agg(n=pl.len().cast(pl.Int64))
            .collect()
        )

    def cost_lines(self, bounds: pl.DataFrame, since: datetime) -> pl.DataFrame:
        keys = ["team", "feature", "model"]
        wanted = ((pl.col("_bin") >= pl.col("_lo")) & (pl.col("ts") >= since)) | (pl.col("_bin") == pl.col("_mid"))
        return (
            self.lines.filter(pl.col("cost_usd") > 0)
            .select(LINE_COLUMNS)
            .with_columns(_bin=cost_bin(pl.col("cost_usd")))
            .join(bounds.lazy().select(*keys, "_lo", "_mid"), on=keys, nulls_equal=True)
            .filter(wanted)
            .drop("_lo", "_mid")
            .collect()
        )

    def session_stats(self, min_calls: int, since: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
        traced = self.lines.filter(pl.col("trace_id").is_not_null())
        sessions = (
            traced.sort("trace_id", "team", "feature", nulls_last=True)
            .group_by("trace_id")
            .agg(
                pl.col("team").first(),
                pl.col("feature").first(),
                calls=ANSWERED.sum().cast(pl.Int64),
                cost_usd=pl.col("cost_usd").sum(),
                last=pl.col("ts").max(),
            )
            .filter(pl.col("calls") >= 2)
            .collect()
        )
        features = sessions.group_by("team", "feature").agg(
            sessions=pl.len().cast(pl.Int64),
            p95_calls=pl.col("calls").quantile(0.95, "linear"),
            median_cost_usd=pl.col("cost_usd").sort().get((pl.len() - 1) // 2),
        )
        wanted = sessions.filter((pl.col("calls") >= min_calls) & (pl.col("last") >= since)).select("trace_id")
        lines = traced.select(LINE_COLUMNS).join(wanted.lazy(), on="trace_id", how="semi").collect()
        return features, lines


_RETRY_COLUMNS = tuple(c for c in LINE_COLUMNS if not c.endswith("_tokens"))
