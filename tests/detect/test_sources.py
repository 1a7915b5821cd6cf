"""The two line sources give the same answers: `FrameSource` (polars over lines in memory) and `DuckSource`
(SQL over `spend_lines`), to each question of `LineSource`, on a small realistic set of lines with NULLs
in the keys (no trace, no prompt hash, no model or provider, no attempt number, no status, unpriced) and,
in the database, lines the source must not see (before its window, at its end, not usage). Also: the
lines `read_inputs` hands over, filtered in time, are those of the frame (the time range goes to SQL)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from finops.detect.source import FrameSource, LineSource
from finops.store.db import Database
from finops.store.findings import DuckSource, _time_bounds, read_inputs
from finops.store.spend import registered
from tests.detect.test_retries import T0, frame_of

END = T0 + timedelta(days=2)
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), (None, None))


def realistic_lines(seed: int = 7) -> pl.DataFrame:
    """About 3,000 lines over two days: one-call requests and agent sessions of 2-8 calls (three loops of
    40), 6 % of calls retried 1-3 times (429 / 503 / timeout, numbered or not), calls without a trace (with
    or without a prompt hash), lines without status nor attempt, a model unknown, unpriced and free
    lines, a few very costly ones, and two lines sharing a timestamp in one trace."""
    rng = np.random.default_rng(seed)
    n = 900
    steps = np.where(rng.random(n) < 0.25, rng.integers(2, 9, n), 1)
    steps[[10, 400, 850]] = 40  # agent loops
    session = np.repeat(np.arange(n), steps)
    step = np.arange(len(session)) - np.repeat(np.cumsum(steps) - steps, steps)
    tries = np.where(rng.random(len(session)) < 0.06, rng.integers(2, 5, len(session)), 1)
    call = np.repeat(np.arange(len(session)), tries)
    attempt = np.arange(len(call)) - np.repeat(np.cumsum(tries) - tries, tries) + 1
    last = attempt == tries[call]
    s = session[call]
    start_s = rng.uniform(0, 2 * 86_400 - 3_600, n)
    ts = start_s[s] + step[call] * 20.0 + (attempt - 1) * 2.0
    ts[5] = ts[4]  # a tie in time: the order falls back on the attempt number, then the request id
    model = rng.integers(0, len(MODELS), n)[s]
    traced = (steps[s] > 1) | (rng.random(n) < 0.6)[s]
    hashed = rng.random(len(session))[call] < 0.8
    numbered = rng.random(n)[s] < 0.7
    no_outcome = (rng.random(len(call)) < 0.05) & last
    cost = np.round(rng.lognormal(np.log(0.004), 0.7, len(call)), 9)
    cost[rng.choice(len(call), 6, replace=False)] *= 200  # huge contexts
    unpriced = rng.random(len(call)) < 0.02
    free = rng.random(len(call)) < 0.01
    status = np.where(last, "200", rng.choice(["429", "503", "timeout"], len(call)))
    partial = pl.DataFrame(
        {
            "ts": pl.Series((ts * 1e6).astype(np.int64) + int(T0.timestamp() * 1e6)).cast(pl.Datetime("us", "UTC")),
            "team": pl.Series(["search", "support", "eng"]).gather(s % 3),
            "feature": pl.Series(["answer", "triage"]).gather((s // 3) % 2),
            "provider": pl.Series([m[0] for m in MODELS], dtype=pl.String).gather(model),
            "model": pl.Series([m[1] for m in MODELS], dtype=pl.String).gather(model),
            "cost_usd": pl.Series(np.where(free, 0.0, cost)).cast(pl.Decimal(38, 12)),
            "input_tokens": (1_000 * (1 + step[call]) * rng.lognormal(0, 0.3, len(call))).astype(np.int64),
            "output_tokens": np.where(last, rng.integers(50, 500, len(call)), 0),
            "trace_id": pl.Series([f"tr-{i}" for i in s]),
            "request_id": pl.Series([f"rq-{i}" for i in range(len(call))]),
            "attempt": pl.Series(attempt, dtype=pl.Int32),
            "status": pl.Series(status),
            "prompt_hash": pl.Series([f"ph-{i}" for i in call]),
            "latency_ms": pl.Series(np.where(last, 900.0, 120.0)).cast(pl.Decimal(38, 9)),
        }
    )
    return frame_of(
        partial.with_columns(
            trace_id=pl.when(pl.Series(traced)).then("trace_id"),
            prompt_hash=pl.when(pl.Series(hashed)).then("prompt_hash"),
            attempt=pl.when(pl.Series(numbered[s])).then("attempt"),
            status=pl.when(pl.Series(~no_outcome)).then("status"),
            cost_usd=pl.when(pl.Series(~unpriced)).then("cost_usd"),
        )
    )


@pytest.fixture(scope="module")
def frame_lines() -> pl.DataFrame:
    return realistic_lines()


@pytest.fixture
def sources(db: Database, frame_lines: pl.DataFrame) -> tuple[LineSource, LineSource]:
    """A FrameSource over the lines, and a DuckSource over the same lines in `spend_lines`, beside lines it
    must leave out: the same calls three days earlier and at the window's end (`as_of`), and as GPU lines."""
    outside = pl.concat(
        [
            frame_lines.head(300).with_columns(pl.col("ts") - timedelta(days=3), _type=pl.lit("usage")),
            frame_lines.head(50).with_columns(ts=pl.lit(END, pl.Datetime("us", "UTC")), _type=pl.lit("usage")),
            frame_lines.head(300).with_columns(_type=pl.lit("gpu")),
        ]
    )
    stored = pl.concat([frame_lines.with_columns(_type=pl.lit("usage")), outside])
    with registered(db, "_lines", stored):
        db.execute(
            """INSERT INTO spend_lines BY NAME
               SELECT * EXCLUDE (_type), _type AS line_type, 'tokens' AS kind, 'test' AS attribution, 1 AS run_id
               FROM _lines"""
        )
    return FrameSource(frame_lines.lazy()), DuckSource(db, T0, END)


def same(left: pl.DataFrame, right: pl.DataFrame) -> None:
    """The same rows (in any order) and columns; numbers compared as numbers whatever their width."""
    assert sorted(left.columns) == sorted(right.columns)
    right = right.select(left.columns).cast(dict(left.schema))  # type: ignore[arg-type]
    assert left.height > 0
    assert_frame_equal(left.sort(pl.all(), nulls_last=True), right.sort(pl.all(), nulls_last=True))


def test_the_lines_have_nulls_in_every_key(frame_lines: pl.DataFrame) -> None:
    nulls = frame_lines.null_count().row(0, named=True)

    assert all(nulls[c] > 0 for c in ("trace_id", "prompt_hash", "provider", "model", "attempt", "status", "cost_usd"))
    assert frame_lines.filter(pl.col("trace_id").is_null() & pl.col("prompt_hash").is_null()).height > 0


def test_retry_lines(sources: tuple[LineSource, LineSource]) -> None:
    frame, duck = sources

    answer = frame.retry_lines()

    same(answer, duck.retry_lines())
    assert answer["status"].is_in(["429", "503", "timeout"]).sum() > 100
    assert answer.filter(pl.col("trace_id").is_null())["prompt_hash"].null_count() == 0


def test_answered_medians(sources: tuple[LineSource, LineSource], frame_lines: pl.DataFrame) -> None:
    frame, duck = sources
    groups = frame_lines.select("team", "feature", "model").unique()

    by_feature, by_model = frame.answered_medians(groups)
    duck_feature, duck_model = duck.answered_medians(groups)

    same(by_feature, duck_feature)
    same(by_model, duck_model)
    assert by_model["model"].null_count() == 1  # the unknown model has a median of its own


@pytest.mark.parametrize("window_s", [300, 3_600])
def test_line_counts(sources: tuple[LineSource, LineSource], window_s: int) -> None:
    frame, duck = sources

    series = [["team", "feature"], ["provider", "model"], ["model"]]

    counts = frame.line_counts(window_s, series)

    for mine, theirs in zip(counts, duck.line_counts(window_s, series), strict=True):
        same(mine, theirs)
    assert [c.columns for c in counts] == [[*keys, "_w", "lines"] for keys in series]
    assert counts[0]["lines"].sum() == counts[1]["lines"].sum() < 3_500  # attempt-level, of the window only
    assert counts[1]["model"].null_count() > 0


def test_span_counts(sources: tuple[LineSource, LineSource]) -> None:
    frame, duck = sources
    spans = pl.DataFrame(
        {
            "_span": [0, 1, 2, 3],
            "provider": ["openai", None, "anthropic", "openai"],
            "model": ["gpt-4o-mini", None, "claude-haiku-4-5", "gpt-4o-mini"],
            "_start": [T0, T0 + timedelta(hours=3), T0 + timedelta(days=1), END],
            "_end": [T0 + timedelta(hours=6), T0 + timedelta(hours=20), END, END + timedelta(days=1)],
        },
        schema_overrides={"_start": pl.Datetime("us", "UTC"), "_end": pl.Datetime("us", "UTC")},
    )

    counts = frame.span_counts(["provider", "model"], spans)

    same(counts, duck.span_counts(["provider", "model"], spans))
    assert counts.sort("_span")["lines"].to_list()[3] == 0  # the window's end is not in the source
    assert counts["lines"].min() == 0 and counts["lines"].max() > 50


def test_cost_histogram(sources: tuple[LineSource, LineSource]) -> None:
    frame, duck = sources

    histogram = frame.cost_histogram()

    same(histogram, duck.cost_histogram())
    assert histogram["model"].null_count() > 0


def test_cost_lines(sources: tuple[LineSource, LineSource]) -> None:
    frame, duck = sources
    histogram = frame.cost_histogram()
    bounds = (
        histogram.group_by("team", "feature", "model")
        .agg(_mid=pl.col("_bin").sort().get(pl.len() // 2), _lo=pl.col("_bin").max() - 40)
        .with_columns(_mid=pl.when(pl.col("team") != "eng").then("_mid"))  # NULL: no bin is the middle one
    )
    since = T0 + timedelta(days=1)

    lines = frame.cost_lines(bounds, since)

    same(lines, duck.cost_lines(bounds, since))
    assert lines.filter(pl.col("ts") < since).height > 0  # middle bins from the whole window
    assert lines["model"].null_count() > 0


def test_session_stats(sources: tuple[LineSource, LineSource]) -> None:
    frame, duck = sources
    since = T0 + timedelta(hours=6)

    features, lines = frame.session_stats(8, since)
    duck_features, duck_lines = duck.session_stats(8, since)

    same(features, duck_features)
    same(lines, duck_lines)
    assert lines["trace_id"].n_unique() >= 3  # the agent loops, and the longest ordinary sessions


# ------------------------------------------------------------------ the lines handed to the spike detector


def test_time_bounds_are_read_from_comparisons_of_ts_only() -> None:
    start, end = T0 + timedelta(hours=6), T0 + timedelta(hours=9)
    us = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    window = (pl.col("ts") >= start) & (pl.col("ts") < end)

    assert _time_bounds(window) == (us[0] - 1, us[1] + 1)
    assert _time_bounds(pl.any_horizontal([window, pl.col("ts") < start])) == (None, us[1] + 1)
    assert _time_bounds(window | (pl.col("team") == "eng")) == (None, None)  # another condition may keep a line
    assert _time_bounds(window & (pl.col("team") == "eng")) == (us[0] - 1, us[1] + 1)
    assert _time_bounds(pl.lit(end) > pl.col("ts")) == (None, us[1] + 1)


def test_lines_filtered_in_time_are_those_of_the_frame(
    db: Database, frame_lines: pl.DataFrame, sources: tuple[LineSource, LineSource]
) -> None:
    inputs = read_inputs(db, T0, T0 + timedelta(days=1), END)
    window = (pl.col("ts") >= T0 + timedelta(hours=6)) & (pl.col("ts") < T0 + timedelta(hours=9))
    later = (pl.col("ts") >= T0 + timedelta(hours=30)) & (pl.col("ts") < T0 + timedelta(hours=31))
    shown = ["ts", "team", "trace_id", "request_id", "cost_usd"]

    for predicate in (window, pl.any_horizontal([window, later]), window | (pl.col("team") == "eng")):
        same(frame_lines.filter(predicate).select(shown), inputs.lines.filter(predicate).select(shown).collect())
