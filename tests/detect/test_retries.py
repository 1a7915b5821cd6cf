"""Retry chains and storms: chains with and without attempt numbers or traces, exact wasted dollars and
amplification, chains that never succeeded; a storm found once with its window and error mix; ordinary
background retries never flagged; the same findings whatever the row order; end to end through `finops run`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from finops.detect import DetectInputs
from finops.detect.findings import finalise
from finops.detect.retries import ANSWERED, RetryConfig, detect_retries, number_attempts
from finops.pipeline import run_once
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

# ------------------------------------------------------------------------------------------------ inputs
# `lines` and `inputs` build detector inputs shaped as `finops.store.findings.read_inputs` gives them, from
# short literals (only the columns a test cares about are written out); test_outliers.py uses them too.

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LINE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "charge_day": pl.Date(),
    "source": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "team": pl.String(),
    "feature": pl.String(),
    "project": pl.String(),
    "user": pl.String(),
    "cost_usd": pl.Decimal(38, 12),
    "list_cost_usd": pl.Decimal(38, 12),
    "input_tokens": pl.Int64(),
    "cached_input_tokens": pl.Int64(),
    "cache_write_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "reasoning_tokens": pl.Int64(),
    "requests": pl.Int64(),
    "trace_id": pl.String(),
    "request_id": pl.String(),
    "attempt": pl.Int32(),
    "status": pl.String(),
    "prompt_hash": pl.String(),
    "latency_ms": pl.Decimal(38, 9),
}
DEFAULTS: dict[str, Any] = {
    "source": "gateway",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "team": "search",
    "feature": "answer",
    "input_tokens": 1_000,
    "output_tokens": 100,
    "status": "200",
}


def lines(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Usage lines from dicts: `ts` in minutes after `T0` (or a datetime), `cost_usd` a string or Decimal
    (default 0.001; None is unpriced); other columns default to `DEFAULTS`, `request_id` to rq-<row>."""
    records = [{**DEFAULTS, "request_id": f"rq-{i}", "cost_usd": "0.001", **row} for i, row in enumerate(rows)]
    columns = {name: [r.get(name) for r in records] for name in LINE_SCHEMA if any(name in r for r in records)}
    columns["ts"] = [ts if isinstance(ts, datetime) else T0 + timedelta(minutes=ts or 0) for ts in columns["ts"]]
    columns["cost_usd"] = [None if c is None else Decimal(str(c)) for c in columns["cost_usd"]]
    return frame_of(pl.DataFrame(columns, schema={name: LINE_SCHEMA[name] for name in columns}))


def frame_of(partial: pl.DataFrame) -> pl.DataFrame:
    """Complete a frame holding some of the line columns: the rest take `DEFAULTS`, else NULL (0 for counts)."""
    derived = {
        "charge_day": pl.col("ts").dt.date(),
        "list_cost_usd": pl.col("cost_usd"),
        "requests": pl.lit(1),
        "cached_input_tokens": pl.lit(0),
        "cache_write_tokens": pl.lit(0),
        "reasoning_tokens": pl.lit(0),
    }
    missing = {
        name: derived.get(name, pl.lit(DEFAULTS.get(name))) for name in LINE_SCHEMA if name not in partial.columns
    }
    return partial.with_columns(**missing).select(pl.col(n).cast(t) for n, t in LINE_SCHEMA.items())


def inputs(frame: pl.DataFrame, *, horizon_start: datetime | None = None) -> DetectInputs:
    """Detector inputs over `frame`: history from its first line, horizon from `horizon_start` (default:
    the first line too), `as_of` just after its last line; the hourly rollup built from it."""
    first, last = frame["ts"].min(), frame["ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    hourly = frame.group_by(pl.col("ts").dt.truncate("1h").alias("hour"), "team", "feature", "provider", "model").agg(
        pl.col("cost_usd").sum(),
        pl.col("requests").sum().cast(pl.Decimal(38, 0)),
        lines=pl.len().cast(pl.Int64),
        input_tokens=pl.col("input_tokens").sum().cast(pl.Decimal(38, 0)),
        output_tokens=pl.col("output_tokens").sum().cast(pl.Decimal(38, 0)),
    )
    return DetectInputs(frame.lazy(), hourly.lazy(), first, horizon_start or first, last + timedelta(seconds=1))


# ---------------------------------------------------------------------------------------------- chains

SHOWN = ["kind", "subject", "trace_id", "window_start", "window_end", "observed", "excess_cost_usd", "evidence"]


def chains(frame: pl.DataFrame, config: RetryConfig | None = None) -> pl.DataFrame:
    return detect_retries(inputs(frame), config).collect().filter(pl.col("kind") == "retry_chain")


def details(found: pl.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(d) for d in found["details"]]


def expected_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        records,
        schema={
            "kind": pl.String,
            "subject": pl.String,
            "trace_id": pl.String,
            "window_start": pl.Datetime("us", "UTC"),
            "window_end": pl.Datetime("us", "UTC"),
            "observed": pl.Float64,
            "excess_cost_usd": pl.Decimal(38, 12),
            "evidence": pl.String,
        },
    )


SIX_ATTEMPTS = [
    {"ts": 0.0, "status": "429", "cost_usd": "0.001"},
    {"ts": 0.5, "status": "429", "cost_usd": "0.001"},
    {"ts": 1.0, "status": "503", "cost_usd": "0.001"},
    {"ts": 1.5, "status": "timeout", "cost_usd": "0.001"},
    {"ts": 2.0, "status": "429", "cost_usd": "0.001"},
    {"ts": 2.5, "status": "200", "cost_usd": "0.004"},
]


def test_chain_with_attempt_numbers_reports_attempts_amplification_and_wasted_dollars() -> None:
    frame = lines(
        [{**a, "trace_id": "tr-1", "attempt": i + 1} for i, a in enumerate(SIX_ATTEMPTS)]
        + [{"ts": 1.0, "trace_id": "tr-2", "attempt": 1}]
    )

    result = chains(frame)

    expected = expected_frame(
        [
            {
                "kind": "retry_chain",
                "subject": "trace=tr-1",
                "trace_id": "tr-1",
                "window_start": T0,
                "window_end": T0 + timedelta(minutes=2.5, milliseconds=1),
                "observed": 2.25,  # 0.009 / 0.004
                "excess_cost_usd": Decimal("0.005"),  # the five failed attempts
                "evidence": '{"ids":["rq-0","rq-1","rq-2","rq-3","rq-4","rq-5"],"count":6}',
            }
        ]
    )
    assert_frame_equal(result.select(SHOWN), expected)
    assert details(result) == [
        {
            "attempts": 6,
            "amplification": 2.25,
            "answered": True,
            "reference": "answer",
            "numbered": True,
            "unpriced_attempts": 0,
            "unpriced_wasted_attempts": 0,
            "models": ["gpt-4o-mini"],
            "cost_usd": "0.009000000000",
            "answer_cost_usd": "0.004000000000",
            "wasted_usd": "0.005000000000",
            "error_mix": {"429": 3, "5xx": 1, "timeout": 1, "other": 0},
            "note": None,
        }
    ]


def test_chain_without_attempt_numbers_is_ordered_by_time() -> None:
    numbered = lines([{**a, "trace_id": "tr-1", "attempt": i + 1} for i, a in enumerate(SIX_ATTEMPTS)])
    bare = numbered.with_columns(attempt=pl.lit(None, pl.Int32)).sample(fraction=1.0, shuffle=True, seed=3)

    result, reference = chains(bare), chains(numbered)

    assert_frame_equal(result.select(SHOWN), reference.select(SHOWN))
    assert details(result)[0]["numbered"] is False


def test_chain_via_prompt_hash_when_there_is_no_trace() -> None:
    frame = lines(
        [{"ts": float(m), "prompt_hash": "ph-1", "status": "503"} for m in range(4)]
        + [
            {"ts": 4.0, "prompt_hash": "ph-1", "status": "200", "cost_usd": "0.002"},
            {"ts": 70.0, "prompt_hash": "ph-1", "status": "200"},  # the same prompt an hour later: a new request
            {"ts": 2.0, "prompt_hash": "ph-2", "status": "200"},
        ]
    )

    result = chains(frame)

    expected = expected_frame(
        [
            {
                "kind": "retry_chain",
                "subject": "prompt=ph-1",
                "trace_id": None,
                "window_start": T0,
                "window_end": T0 + timedelta(minutes=4, milliseconds=1),
                "observed": 3.0,  # 0.006 / 0.002
                "excess_cost_usd": Decimal("0.004"),
                "evidence": '{"ids":["rq-0","rq-1","rq-2","rq-3","rq-4"],"count":5}',
            }
        ]
    )
    assert_frame_equal(result.select(SHOWN), expected)


def test_agent_session_splits_into_calls_at_each_answer() -> None:
    frame = lines(
        [
            {"ts": 0, "trace_id": "agent-1", "status": "200"},
            {"ts": 1, "trace_id": "agent-1", "status": "429"},
            {"ts": 2, "trace_id": "agent-1", "status": "429"},
            {"ts": 3, "trace_id": "agent-1", "status": "200"},
            {"ts": 4, "trace_id": "agent-1", "status": "200"},
            {"ts": 5, "trace_id": "agent-1", "status": "200", "attempt": 1},
            {"ts": 6, "trace_id": "agent-1", "status": "500", "attempt": 1},
            {"ts": 7, "trace_id": "agent-1", "status": "200", "attempt": 2},
        ]
    )

    result = number_attempts(frame.lazy().with_columns(_answered=ANSWERED), timedelta(minutes=10)).collect()

    expected = pl.DataFrame(
        {
            "request_id": [f"rq-{i}" for i in range(8)],
            "_req": [1, 2, 2, 2, 3, 4, 5, 5],
            "_pos": [1, 1, 2, 3, 1, 1, 1, 2],
            "_is_answer": [True, False, False, True, True, True, False, True],
            "_error": [None, "429", "429", None, None, None, "5xx", None],
        },
        schema_overrides={"_req": pl.UInt32, "_pos": pl.Int32},
    )
    assert_frame_equal(result.select(expected.columns), expected, check_dtypes=False)


def test_chain_that_never_succeeded_is_measured_against_the_usual_answer() -> None:
    history = [{"ts": float(m), "status": "200", "cost_usd": c} for m, c in enumerate(["0.010", "0.020", "0.050"])]
    failing = [{"ts": 10 + m / 10, "trace_id": "tr-9", "status": "timeout", "cost_usd": "0.008"} for m in range(5)]
    other_feature = [
        {"ts": 20 + m / 10, "trace_id": "tr-10", "feature": "rerank", "status": "503", "cost_usd": "0.004"}
        for m in range(5)
    ]

    result = chains(lines(history + failing + other_feature))

    assert result["subject"].to_list() == ["trace=tr-9", "trace=tr-10"]
    assert result["observed"].to_list() == pytest.approx([2.0, 1.0])  # 0.040 / 0.020, 0.020 / 0.020
    assert result["excess_cost_usd"].to_list() == [Decimal("0.040"), Decimal("0.020")]  # every attempt wasted
    assert [(d["answered"], d["reference"], d["answer_cost_usd"]) for d in details(result)] == [
        (False, "feature_model_median", None),
        (False, "model_median", None),
    ]


def test_amplification_bound_flags_a_short_expensive_chain_and_bounds_are_settings() -> None:
    frame = lines(
        [
            {"ts": 0, "trace_id": "tr-a", "attempt": 1, "status": "timeout", "cost_usd": "0.110"},
            {"ts": 1, "trace_id": "tr-a", "attempt": 2, "status": "200", "cost_usd": "0.010"},
            {"ts": 0, "trace_id": "tr-b", "attempt": 1, "status": "429", "cost_usd": "0.001"},
            {"ts": 1, "trace_id": "tr-b", "attempt": 2, "status": "429", "cost_usd": "0.001"},
            {"ts": 2, "trace_id": "tr-b", "attempt": 3, "status": "200", "cost_usd": "0.010"},
        ]
    )

    assert chains(frame)["subject"].to_list() == ["trace=tr-a"]  # 12x; tr-b is 3 attempts, 1.2x
    assert chains(frame, RetryConfig(min_attempts=3))["subject"].to_list() == ["trace=tr-a", "trace=tr-b"]


def test_retry_bounds_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_RETRY_MIN_ATTEMPTS", "3")
    monkeypatch.setenv("FINOPS_RETRY_STORM_WINDOW_S", "60")

    config = RetryConfig()

    assert (config.min_attempts, config.storm_window_s, config.min_amplification) == (3, 60, 10.0)


# ------------------------------------------------------------------------------------------------ storms

STORM_START = T0 + timedelta(days=8)  # a Tuesday noon, on the 5-minute grid


def background(
    days: int, *, seed: int, features: int = 1, calls_per_hour: int = 6, share: float = 0.02
) -> pl.DataFrame:
    """Seeded ordinary traffic from `T0` on: Poisson calls per feature (a daily rhythm), `share` of them
    failing once (429 / 503 / timeout) and retried 2 s later; 30 % without attempt numbers, 10 % without a
    trace (tied by prompt hash). No call in the 15 minutes from `STORM_START`."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    rhythm = 1 + 0.8 * np.sin(np.arange(hours) % 24 / 24 * 2 * np.pi)
    per_hour = rng.poisson(calls_per_hour * np.tile(rhythm, (features, 1)))
    feature = np.repeat(np.repeat(np.arange(features), hours), per_hour.ravel())
    hour = np.repeat(np.tile(np.arange(hours), features), per_hour.ravel())
    offset_s = hour * 3_600.0 + rng.uniform(0, 3_600, len(hour))
    storm = (offset_s >= 8 * 86_400) & (offset_s < 8 * 86_400 + 900)
    feature, offset_s = feature[~storm], offset_s[~storm]
    n = len(feature)
    failed = rng.random(n) < share
    call = np.repeat(np.arange(n), 1 + failed)
    first = np.ones(len(call), dtype=bool)
    first[1:] = call[1:] != call[:-1]
    status = np.where(first & failed[call], rng.choice(["429", "503", "timeout"], len(call)), "200")
    numbered = rng.random(n) >= 0.3
    traced = rng.random(n) >= 0.1
    names = pl.DataFrame({"f": np.arange(features)}).select(
        team=pl.format("team-{}", pl.col("f") // 2), feature=pl.format("feature-{}", "f")
    )
    attempt = pl.Series(np.where(numbered[call], np.where(first, 1, 2), 0)).cast(pl.Int32)
    return frame_of(
        pl.DataFrame(
            {
                "ts": pl.Series((offset_s[call] + np.where(first, 0, 2)) * 1e6).cast(pl.Int64),
                "f": feature[call],
                "call": call,
                "attempt": attempt,
                "status": status,
                "cost_usd": np.where(status == "200", 0.003, 0.001),
                "traced": traced[call],
            }
        ).with_columns(
            (pl.lit(T0) + pl.duration(microseconds=pl.col("ts"))).alias("ts"),
            names["team"].gather(pl.Series(feature[call])).alias("team"),
            names["feature"].gather(pl.Series(feature[call])).alias("feature"),
            pl.Series(["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"]).gather(feature[call] % 3).alias("model"),
            pl.col("cost_usd").cast(pl.Decimal(38, 12)),
            trace_id=pl.when("traced").then(pl.format("bg-{}-{}", pl.lit(seed), "call")),
            request_id=pl.format("bg-{}-{}", pl.lit(seed), pl.int_range(pl.len())),
            attempt=pl.when(pl.col("attempt") > 0).then("attempt"),
            prompt_hash=pl.format("ph-{}-{}", pl.lit(seed), "call"),
        )
    )


def storm_lines(
    steps: tuple[tuple[str, str], ...] = (("429", "0.001"), ("503", "0.001"), ("200", "0.003")),
) -> pl.DataFrame:
    """15 minutes from `STORM_START`: 10 calls per 5 minutes, each going through `steps` (status, cost)."""
    call = {"team": "team-0", "feature": "feature-0"}
    rows = [
        {**call, "ts": STORM_START + timedelta(seconds=30 * i + 5 * k), "trace_id": f"st-{i}",
         "request_id": f"st-{i}-{k}", "attempt": k + 1, "status": status, "cost_usd": cost}
        for i in range(30)
        for k, (status, cost) in enumerate(steps)
    ]  # fmt: skip
    return lines(rows)


def test_storm_is_found_once_with_its_window_amplification_and_error_mix() -> None:
    frame = pl.concat([background(10, seed=1), storm_lines()]).sort("ts")

    found = detect_retries(inputs(frame)).collect()

    storms = found.filter(pl.col("kind") == "retry_storm")
    expected = pl.DataFrame(
        {
            "detector": ["retries.storm.feature"],
            "subject": ["team=team-0/feature=feature-0"],
            "window_start": [STORM_START],
            # from the first attempt of its first retried request to the end of the last attempt of its last
            # (the 30th call's third attempt at 14:40, 1 ms long when no latency is reported)
            "window_end": [STORM_START + timedelta(seconds=29 * 30 + 10, milliseconds=1)],
            "observed": [3.0],  # 90 attempts for 30 calls
            "excess_cost_usd": [Decimal("0.060")],  # two failed attempts at $0.001 for each of 30 calls
        },
        schema_overrides={"excess_cost_usd": pl.Decimal(38, 12)},
    )
    assert_frame_equal(storms.select(expected.columns), expected)
    (info,) = details(storms)
    assert info["error_mix"] == {"429": 30, "5xx": 30, "timeout": 0, "other": 0}
    assert (info["attempts"], info["logical_requests"], info["retried_requests"], info["windows"]) == (90, 30, 30, 3)
    assert 1.0 < storms["expected"].item() < 1.05  # the feature's ordinary amplification
    assert json.loads(storms["evidence"].item()) == {"ids": [f"st-{i}" for i in range(30)], "count": 30}
    assert found.filter(pl.col("kind") == "retry_chain").is_empty()  # three attempts each: within the bounds


FAILING_TWICE = (("429", "0.001"), ("503", "0.001"), ("200", "0.003"))


def request(
    trace: str, at_s: float, steps: tuple[tuple[str, str], ...], *, after_s: tuple[float, ...] = ()
) -> list[dict[str, Any]]:
    """One logical request of team-0/feature-0 starting `at_s` seconds after `STORM_START`: an attempt per
    step (status, cost), 1 s apart unless `after_s` gives each attempt's offset from the first."""
    offsets = after_s or tuple(range(len(steps)))
    return [
        {"team": "team-0", "feature": "feature-0", "ts": STORM_START + timedelta(seconds=at_s + offset),
         "trace_id": trace, "request_id": f"{trace}-{k}", "attempt": k + 1, "status": status, "cost_usd": cost}
        for k, (offset, (status, cost)) in enumerate(zip(offsets, steps, strict=True))
    ]  # fmt: skip


def ordinary(first_s: float, every_s: float, n: int) -> list[dict[str, Any]]:
    """`n` ordinary calls of team-0/feature-0 (answered at once), `every_s` apart from `first_s`."""
    return [r for i in range(n) for r in request(f"ok-{i}", first_s + every_s * i, (("200", "0.003"),))]


RETRIED_ONCE = (("429", "0.001"), ("200", "0.003"))


def the_storm(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The one `retry_storm` finding of `rows` (team-0/feature-0) over ten days of background traffic."""
    frame = pl.concat([background(10, seed=1), lines(rows)]).sort("ts")
    storms = detect_retries(inputs(frame)).collect().filter(pl.col("kind") == "retry_storm")
    assert storms.height == 1
    return storms


def test_an_ordinary_retry_beside_a_storm_does_not_stretch_it_over_ordinary_calls() -> None:
    """40 calls in 200 s each fail twice; 85 s after the last, in the same 5-minute window, an ordinary call
    fails once, with 8 ordinary calls in between. The storm is the 40 calls: 3.0x from 0 s to 195 s. Before,
    its span ran to the stray retry and counted the 8 calls and the retry too: 130 attempts for 49 requests,
    2.65x (what bench seed 9 showed: 2.9x reported for 4.3x planted)."""
    storm = [r for i in range(40) for r in request(f"st-{i}", 5 * i, FAILING_TWICE)]
    stray = request("stray", 280, RETRIED_ONCE)
    storms = the_storm(storm + ordinary(205, 9, 8) + stray)

    assert storms["window_start"].item() == STORM_START
    assert storms["observed"].item() == 3.0
    (info,) = details(storms)
    assert (info["attempts"], info["logical_requests"], info["retried_requests"]) == (120, 40, 40)
    assert "stray" not in json.loads(storms["evidence"].item())["ids"]


def test_a_busy_storm_does_not_start_at_an_ordinary_retry_a_few_ordinary_calls_before_it() -> None:
    """A dense storm (40 requests a second apart from 60 s) and, 40 s before it, an ordinary call that fails
    once, with 10 ordinary calls between. The storm starts at 60 s: 3.0x. The gap rules of afec9b6 kept the
    stray retry (under their one-minute floor): 132 attempts for 51 requests, 2.59x (bench seed 22: a busy
    agent feature's storm read 3.7x for 4.9x from a span a minute early)."""
    storm = [r for i in range(40) for r in request(f"st-{i}", 60 + i, FAILING_TWICE)]
    stray = request("stray", 20, RETRIED_ONCE)
    storms = the_storm(stray + ordinary(25, 3, 10) + storm)

    assert storms["window_start"].item() == STORM_START + timedelta(seconds=60)
    (info,) = details(storms)
    assert (info["attempts"], info["logical_requests"], info["retried_requests"]) == (120, 40, 40)


def test_a_storm_of_parallel_calls_does_not_start_at_two_ordinary_retries_before_it() -> None:
    """An agent's storm: 20 pairs of parallel calls (each pair at one moment) from 60 s, every call failing
    twice, then 30 ordinary calls in the same 5-minute window; 40 s before the storm, two ordinary calls fail
    once, with four ordinary calls among them. The storm is the 40 calls from 60 s: 3.0x. Before, the second
    call of each pair counted as an ordinary call (bench seed 22: parallel calls of an agent), and the storm's
    share of retried calls was taken from its windows, where the 30 ordinary calls after it lowered it, so two
    retries beside four ordinary calls looked like the storm's start: 128 attempts for 46 requests, 2.8x."""
    storm = [r for i in range(40) for r in request(f"st-{i}", 60 + 3 * (i // 2), FAILING_TWICE)]
    strays = request("stray-0", 20, RETRIED_ONCE) + request("stray-1", 30, RETRIED_ONCE)
    before = [r for i, at in enumerate((25, 35, 40, 45)) for r in request(f"ok-before-{i}", at, (("200", "0.003"),))]
    storms = the_storm(strays + before + storm + ordinary(130, 5, 30))

    assert storms["window_start"].item() == STORM_START + timedelta(seconds=60)
    assert storms["observed"].item() == 3.0
    (info,) = details(storms)
    assert (info["attempts"], info["logical_requests"], info["retried_requests"]) == (120, 40, 40)


def test_a_quiet_storm_does_not_start_at_an_ordinary_retry_one_call_before_it() -> None:
    """A quiet feature's storm: 11 calls four minutes apart from 200 s, each failing twice. 185 s before the
    first, an ordinary call fails once, and one ordinary call follows it. The storm starts at 200 s with its 11
    retried requests. A run's requests retried once, twice or more, and not at all are weighed by their own
    shares in the run (Kulldorff's scan statistic): a request retried once is unlike the storm's. Before, with
    one share for all retried requests, re-estimated inside the span, the span started at the stray retry and
    ran on to an ordinary retry 40 minutes after the storm: 42 attempts for 18 requests, 13 retried, 2.3x
    (bench seed 39: 4.15x read for 4.64x)."""
    storm = [r for i in range(11) for r in request(f"st-{i}", 200 + 240 * i, FAILING_TWICE)]
    stray = request("stray", 15, RETRIED_ONCE)
    storms = the_storm(stray + ordinary(30, 1, 1) + storm)

    assert storms["window_start"].item() == STORM_START + timedelta(seconds=200)
    (info,) = details(storms)
    assert info["retried_requests"] == 11
    assert "stray" not in json.loads(storms["evidence"].item())["ids"]


def test_two_storms_of_one_series_half_an_hour_apart_stay_two_with_their_own_requests() -> None:
    """Two dense storms of one feature 30 minutes apart, with a lone retried request 15 minutes after the
    first (10 ordinary calls after it). Each storm could score a run over the other; each reaches at most
    halfway to the other, so they stay two findings with 20 (and the lone request: 21) and 20 requests.
    Before the halfway rule, both runs covered both storms: one span, reported twice under one id
    (bench seed 21: a duplicate key on `findings`)."""
    first = [r for i in range(20) for r in request(f"a-{i}", i, FAILING_TWICE)]
    lone = request("lone", 900, FAILING_TWICE)
    second = [r for i in range(20) for r in request(f"b-{i}", 1_800 + i, FAILING_TWICE)]
    frame = pl.concat([background(10, seed=1), lines(first + lone + ordinary(905, 10, 10) + second)]).sort("ts")

    found = finalise(detect_retries(inputs(frame))).collect()
    storms = found.filter(pl.col("kind") == "retry_storm").sort("window_start")

    assert storms["finding_id"].n_unique() == storms.height == 2
    assert [d["retried_requests"] for d in details(storms)] == [21, 20]
    evidence = [set(json.loads(e)["ids"]) for e in storms["evidence"]]
    assert not evidence[0] & evidence[1]


def test_a_storms_quiet_tail_alone_in_its_window_is_still_part_of_it() -> None:
    """A quiet feature's storm: 10 calls a minute apart each fail twice, and an 11th, 110 s after the 10th,
    times out after 10 minutes and is retried then, so its window holds its first attempt among 10 ordinary
    calls after it (too little on its own to be elevated). It is the storm's: 11 requests, 33 attempts, $0.022
    wasted. Before, the storm ended at the 10th (bench seed 19: the last of 18 planted requests, a 10-minute
    timeout, left out with a quarter of the wasted dollars)."""
    storm = [r for i in range(10) for r in request(f"st-{i}", 60 * i, FAILING_TWICE)]
    timed_out = (("timeout", "0.001"), *FAILING_TWICE[1:])
    tail = request("st-10", 650, timed_out, after_s=(0, 600, 603))
    storms = the_storm(storm + tail + ordinary(690, 20, 10))

    (info,) = details(storms)
    assert (info["attempts"], info["logical_requests"], info["retried_requests"]) == (33, 11, 11)
    assert storms["excess_cost_usd"].item() == Decimal("0.022")
    assert "st-10" in json.loads(storms["evidence"].item())["ids"]


@pytest.mark.parametrize(
    ("steps", "excess", "wasted", "note"),
    [
        ((("429", None), ("503", None), ("200", None)), None, None, "the wasted dollars are unknown: none of the 60"),
        (
            (("429", None), ("503", "0.001"), ("200", "0.003")),
            Decimal("0.030"),
            "0.030000000000",
            "the wasted dollars count only the priced attempts: 30 wasted attempt(s)",
        ),
    ],
)
def test_a_storm_on_unpriced_attempts_has_unknown_or_lower_bound_waste_not_zero(
    steps: tuple[tuple[str, str | None], ...], excess: Decimal | None, wasted: str | None, note: str
) -> None:
    frame = pl.concat([background(10, seed=1), storm_lines(steps)]).sort("ts")

    storms = detect_retries(inputs(frame)).collect().filter(pl.col("kind") == "retry_storm")

    assert storms["excess_cost_usd"].to_list() == [excess]
    (info,) = details(storms)
    assert (info["wasted_usd"], info["unpriced_wasted_attempts"]) == (wasted, 60 if excess is None else 30)
    assert info["note"].startswith(note)
    assert storms["observed"].item() == 3.0  # the amplification does not need prices


def test_chains_inside_a_storm_are_part_of_it_unless_they_are_costly_themselves() -> None:
    five = (("429", "0.001"),) * 4 + (("200", "0.003"),)  # 5 attempts, 2.3x: a chain by its attempts
    costly = lines(
        [
            {"ts": STORM_START + timedelta(minutes=1), "team": "team-0", "feature": "feature-0", "trace_id": "big",
             "attempt": 1, "status": "timeout", "cost_usd": "0.050"},
            {"ts": STORM_START + timedelta(minutes=2), "team": "team-0", "feature": "feature-0", "trace_id": "big",
             "attempt": 2, "status": "200", "cost_usd": "0.003"},
        ]
    )  # fmt: skip
    frame = pl.concat([background(10, seed=1), storm_lines(five), costly]).sort("ts")

    found = detect_retries(inputs(frame)).collect()

    assert found.select("kind", "subject").to_dicts() == [
        {"kind": "retry_chain", "subject": "trace=big"},  # 17.7x: reported on its own as well
        {"kind": "retry_storm", "subject": "team=team-0/feature=feature-0"},
    ]
    assert json.loads(found["evidence"][1])["count"] == 31


def test_background_retries_are_never_flagged_on_a_large_sample() -> None:
    frame = background(14, seed=7, features=20, calls_per_hour=30, share=0.03).sort("ts")
    failed = frame.filter(pl.col("status") != "200").height
    assert frame.height > 200_000 and failed > 5_000  # 1-3 % of calls failing once, retried

    found = detect_retries(inputs(frame)).collect()

    assert found.select("kind", "subject").to_dicts() == []


def test_reruns_and_row_order_give_identical_findings_and_ids() -> None:
    frame = pl.concat([background(10, seed=1), storm_lines(), lines([{**a, "trace_id": "tr-1"} for a in SIX_ATTEMPTS])])

    first = finalise(detect_retries(inputs(frame.sort("ts")))).collect()
    again = finalise(detect_retries(inputs(frame.sample(fraction=1.0, shuffle=True, seed=11)))).collect()

    assert first.height == 2
    assert_frame_equal(first.sort("finding_id"), again.sort("finding_id"))


# ------------------------------------------------------------------------------------------ end to end

LONG_CHAIN = "\n".join(
    json.dumps(
        {
            "request_id": f"gw-chain-{i}",
            "ts": f"2026-10-02T15:00:{10 * i:02d}Z",
            "model": "gpt-4o-mini",
            "input_tokens": 3100,
            "output_tokens": 240 if i == 5 else 0,
            "team": "support",
            "feature": "summarise",
            "trace_id": "tr-retry-long",
            "attempt": i + 1,
            "status": 200 if i == 5 else 503,
        }
    )
    for i in range(6)
)
AS_OF = datetime(2026, 10, 10, tzinfo=UTC)


def test_run_finds_the_gateway_retry_chains(
    db: Database, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in sorted((fixtures_dir / "raw" / "gateway").glob("*.jsonl")):
        ingest_one(db, path, "gateway")
    ingest_one(db, write_file(tmp_path, "chain.jsonl", LONG_CHAIN), "gateway")

    run_once(db, as_of=AS_OF)
    found = rows(db, "SELECT * FROM findings WHERE kind = 'retry_chain' ORDER BY window_start")

    # the fixture's own chain (tr-retry-1: 3 attempts, 2.5x) is within the default bounds; the long one is not
    assert [(f["trace_id"], f["team"], f["feature"], f["severity"]) for f in found] == [
        ("tr-retry-long", "support", "summarise", "low")
    ]
    failed = db.scalar("SELECT sum(cost_usd) FROM spend WHERE trace_id = 'tr-retry-long' AND status <> '200'")
    assert found[0]["excess_cost_usd"] == failed
    assert json.loads(found[0]["evidence"]) == {"ids": [f"gw-chain-{i}" for i in range(6)], "count": 6}

    monkeypatch.setenv("FINOPS_RETRY_MIN_ATTEMPTS", "3")
    run_once(db, as_of=AS_OF)
    again = rows(db, "SELECT finding_id, trace_id FROM findings WHERE kind = 'retry_chain' ORDER BY window_start")
    assert [f["trace_id"] for f in again] == ["tr-retry-1", "tr-retry-long"]
    assert again[1]["finding_id"] == found[0]["finding_id"]  # a rerun keeps the incident's id, adds no copy


# ------------------------------------------------------------------------------- chains within one team


def two_teams_one_prompt(tries: int) -> list[dict[str, Any]]:
    """The same prompt (one prompt hash, no trace) sent by two teams in the same minute, each tried `tries`
    times (every try but the last a 500), their attempts interleaved in time."""
    return [
        {
            "ts": i / 3 + offset,
            "prompt_hash": "ph-shared",
            "team": team,
            "feature": feature,
            "status": "500" if i < tries - 1 else "200",
            "cost_usd": "0.005" if i < tries - 1 else "0.008",
            "request_id": f"{team}-{i}",
        }
        for i in range(tries)
        for team, feature, offset in (("search", "query", 0.0), ("support", "chat", 0.1))
    ]


def test_prompt_hash_chain_never_merges_two_teams_attempts() -> None:
    # three attempts each: below the 5-attempt bar on its own, five together (the merged chain of hunt C bug 2)
    assert chains(lines(two_teams_one_prompt(3))).is_empty()

    result = chains(lines(two_teams_one_prompt(5)))

    assert result.select("team", "feature", "excess_cost_usd").rows() == [
        ("search", "query", Decimal("0.020")),  # its own four failed attempts, not the other team's
        ("support", "chat", Decimal("0.020")),
    ]
    assert [json.loads(e)["ids"] for e in result["evidence"]] == [
        [f"search-{i}" for i in range(5)],
        [f"support-{i}" for i in range(5)],
    ]


def test_run_keeps_a_prompt_hash_chain_within_its_team(db: Database, tmp_path: Path) -> None:
    records = [
        {
            "request_id": r["request_id"],
            "ts": (T0 + timedelta(minutes=r["ts"])).isoformat(),
            "model": "gpt-4o",
            "team": r["team"],
            "feature": r["feature"],
            "input_tokens": 2000,
            "output_tokens": 300 if r["status"] == "200" else 0,
            "prompt_hash": r["prompt_hash"],
            "status": int(r["status"]),
        }
        for r in two_teams_one_prompt(3) + [{**r, "ts": r["ts"] + 60} for r in two_teams_one_prompt(5)]
    ]
    for r in records[6:]:  # the second round: other request ids
        r["request_id"] += "-b"
    ingest_one(db, write_file(tmp_path, "shared.jsonl", "\n".join(json.dumps(r) for r in records)), "gateway")

    run_once(db, as_of=T0 + timedelta(days=1))

    found = rows(db, "SELECT team, evidence, excess_cost_usd FROM findings WHERE kind = 'retry_chain' ORDER BY team")
    assert [(f["team"], json.loads(f["evidence"])["ids"]) for f in found] == [
        ("search", [f"search-{i}-b" for i in range(5)]),
        ("support", [f"support-{i}-b" for i in range(5)]),
    ]
    assert [f["excess_cost_usd"] for f in found] == [Decimal("0.02")] * 2  # 4 x 2,000 x $2.50/M each


# --------------------------------------------------------------------------------- chains without a price


def test_chain_on_an_unpriced_model_has_unknown_excess_not_zero() -> None:
    unpriced = [{**a, "trace_id": "tr-u", "attempt": i + 1, "cost_usd": None} for i, a in enumerate(SIX_ATTEMPTS)]
    # a fallback chain: two priced failures, then three unpriced ones and an unpriced answer
    partly = [
        {**a, "trace_id": "tr-p", "attempt": i + 1, "cost_usd": "0.001" if i < 2 else None}
        for i, a in enumerate(SIX_ATTEMPTS)
    ]

    result = chains(lines(unpriced + partly)).sort("subject")

    assert result["subject"].to_list() == ["trace=tr-p", "trace=tr-u"]
    assert result["excess_cost_usd"].to_list() == [Decimal("0.002"), None]  # a lower bound; unknown
    assert result["observed"].to_list() == [6.0, 6.0]  # no reference price: the amplification is the attempts
    assert [
        (d["cost_usd"], d["wasted_usd"], d["unpriced_attempts"], d["unpriced_wasted_attempts"]) for d in details(result)
    ] == [
        ("0.002000000000", "0.002000000000", 4, 3),
        (None, None, 6, 5),
    ]
    assert [d["note"] for d in details(result)] == [
        "the wasted dollars count only the priced attempts: 3 wasted attempt(s) have no known price",
        "the wasted dollars are unknown: none of the 5 wasted attempts has a known price",
    ]
    assert finalise(result.lazy()).collect()["severity"].to_list() == ["low", "low"]  # an unknown excess: by score


def chain_attempt(a: int, *, chain: str, model: str, answer: int, answer_tokens: int) -> str:
    """Attempt `a` of the gateway chain `chain` (trace `trace-<chain>`) of team search: 2000 input tokens,
    status 500 before attempt `answer`, which answers with `answer_tokens` output tokens."""
    return json.dumps(
        {
            "request_id": f"{chain}-{a}",
            "ts": (T0 + timedelta(seconds=10 * a)).isoformat(),
            "model": model,
            "team": "search",
            "feature": "query",
            "input_tokens": 2000,
            "output_tokens": 0 if a < answer else answer_tokens,
            "trace_id": f"trace-{chain}",
            "attempt": a,
            "status": 500 if a < answer else 200,
        }
    )


def test_run_stores_an_unpriced_chain_with_a_null_excess(db: Database, tmp_path: Path) -> None:
    chain = [chain_attempt(a, chain="unp", model="my-private-llm", answer=6, answer_tokens=100) for a in range(1, 7)]
    ingest_one(db, write_file(tmp_path, "unp.jsonl", "\n".join(chain)), "gateway")

    run_once(db, as_of=T0 + timedelta(days=1))

    [found] = rows(db, "SELECT kind, observed, excess_cost_usd, details FROM findings")
    assert (found["kind"], found["observed"], found["excess_cost_usd"]) == ("retry_chain", 6.0, None)
    assert json.loads(found["details"])["wasted_usd"] is None
