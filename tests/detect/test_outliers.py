"""Outlier requests and runaway sessions: the 200k-token context and the runaway reasoning against their
group's usual, bursts as one incident, floors on history and dollars; an agent loop against its feature's
ordinary sessions; the same findings whatever the row order."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from finops.detect.findings import finalise
from finops.detect.outliers import OutlierConfig, detect_outliers
from tests.detect.test_retries import T0, inputs, lines

SHOWN = ["kind", "subject", "trace_id", "request_id", "window_start", "window_end", "excess_cost_usd", "evidence"]


def usual(n: int = 60, **extra: Any) -> list[dict[str, Any]]:
    """`n` ordinary requests a minute apart, costing $0.0100, $0.0101, ... (lower median: index (n-1)//2)."""
    return [{"ts": float(i), "cost_usd": Decimal("0.0100") + Decimal("0.0001") * i, **extra} for i in range(n)]


def found(rows: list[dict[str, Any]], config: OutlierConfig | None = None) -> pl.DataFrame:
    return detect_outliers(inputs(lines(rows)), config).collect()


def test_outlier_request_is_found_with_its_excess_over_the_median() -> None:
    huge = {"ts": 30.5, "cost_usd": "0.600", "input_tokens": 200_000, "trace_id": "tr-big"}

    result = found(usual() + [huge])

    expected = pl.DataFrame(
        {
            "kind": ["outlier_request"],
            "subject": ["team=search/feature=answer/model=gpt-4o-mini"],
            "trace_id": ["tr-big"],
            "request_id": ["rq-60"],
            "window_start": [T0 + timedelta(minutes=30.5)],
            "window_end": [T0 + timedelta(minutes=30.5, milliseconds=1)],
            "excess_cost_usd": [Decimal("0.587")],  # 0.600 - 0.0130, the median of the 61 lines
            "evidence": ['{"ids":["rq-60"],"count":1}'],
        },
        schema_overrides={"window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
                          "excess_cost_usd": pl.Decimal(38, 12)},
    )  # fmt: skip
    assert_frame_equal(result.select(SHOWN), expected)
    assert (result["observed"].item(), result["expected"].item()) == (0.6, 0.013)
    info = json.loads(result["details"].item())
    assert (info["driver"], info["input_tokens"], info["typical_input_tokens"], info["history_requests"]) == (
        "input",
        200_000,
        1_000,
        61,
    )


def test_runaway_reasoning_is_driven_by_output() -> None:
    runaway = {"ts": 10.5, "cost_usd": "0.400", "output_tokens": 60_000, "reasoning_tokens": 55_000}

    result = found(usual() + [runaway])

    assert json.loads(result["details"].item())["driver"] == "reasoning"


def test_outliers_close_in_time_are_one_incident() -> None:
    burst = [
        {"ts": 20.0, "cost_usd": "0.600", "input_tokens": 200_000},
        {"ts": 25.0, "cost_usd": "0.900", "input_tokens": 300_000},
        {"ts": 200.0, "cost_usd": "0.500", "input_tokens": 180_000},  # hours later: another incident
    ]

    result = found(usual() + burst)

    median = Decimal("0.0131")  # 63 lines: the 32nd smallest
    assert result.select("request_id", "excess_cost_usd", "evidence").to_dicts() == [
        {
            "request_id": None,
            "excess_cost_usd": Decimal("1.500") - 2 * median,
            "evidence": '{"ids":["rq-60","rq-61"],"count":2}',
        },
        {
            "request_id": "rq-62",
            "excess_cost_usd": Decimal("0.500") - median,
            "evidence": '{"ids":["rq-62"],"count":1}',
        },
    ]


def test_no_outlier_without_enough_history_or_dollars() -> None:
    short = usual(20) + [{"ts": 30, "cost_usd": "0.600"}]
    cheap = [{"ts": float(i), "cost_usd": "0.0001"} for i in range(60)] + [{"ts": 61, "cost_usd": "0.003"}]

    assert found(short).is_empty()  # 21 lines: no usual cost yet
    assert found(cheap).is_empty()  # 30x, but $0.0029 above the usual
    assert found(cheap, OutlierConfig(request_min_excess_usd=Decimal("0.001")))["request_id"].to_list() == ["rq-60"]


# ---------------------------------------------------------------------------------------------- sessions


def session(
    trace: str, start: float, calls: int, *, cost: str = "0.010", growing: bool = False
) -> list[dict[str, Any]]:
    """`calls` answered calls of one agent trace, 10 s apart; input grows by 1,000 tokens a call when `growing`."""
    return [
        {"ts": start + k / 6, "trace_id": trace, "team": "eng", "feature": "coder", "cost_usd": cost,
         "input_tokens": 1_000 * (k + 1) if growing else 1_000, "request_id": f"{trace}-{k:02d}"}
        for k in range(calls)
    ]  # fmt: skip


def ordinary_sessions(n: int = 40, calls: int = 4) -> list[dict[str, Any]]:
    return [line for s in range(n) for line in session(f"s-{s}", 30.0 * s, calls, growing=True)]


def test_agent_loop_is_a_runaway_session() -> None:
    loop = session("loop-1", 600.0, 40, cost="0.020", growing=True)

    result = found(ordinary_sessions() + loop)

    expected = pl.DataFrame(
        {
            "kind": ["runaway_session"],
            "subject": ["team=eng/feature=coder"],
            "trace_id": ["loop-1"],
            "request_id": [None],
            "window_start": [T0 + timedelta(minutes=600)],
            "window_end": [T0 + timedelta(minutes=600 + 39 / 6, milliseconds=1)],
            "excess_cost_usd": [Decimal("0.76")],  # 40 x 0.020 - 0.040, the median session of the feature
            "evidence": [json.dumps({"ids": [r["request_id"] for r in loop], "count": 40}, separators=(",", ":"))],
        },
        schema_overrides={"window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
                          "excess_cost_usd": pl.Decimal(38, 12), "request_id": pl.String},
    )  # fmt: skip
    assert_frame_equal(result.select(SHOWN), expected)
    info = json.loads(result["details"].item())
    assert (info["calls"], info["pattern"], info["growth_share"], info["calls_bound"]) == (
        40,
        ["many_calls", "growing_context"],
        1.0,
        25.0,
    )


def test_growing_context_flags_a_session_twice_as_long_as_usual() -> None:
    usual_sessions = [line for s in range(40) for line in session(f"s-{s}", 30.0 * s, 10)]  # p95: 10 calls
    growing = session("grows", 1_300.0, 30, cost="0.020", growing=True)
    flat = session("flat", 1_400.0, 30)  # as long, but its context does not grow: within 4 x p95

    result = found(usual_sessions + growing + flat)

    assert result["trace_id"].to_list() == ["grows"]
    info = json.loads(result["details"].item())
    assert (info["pattern"], info["calls_bound"], info["growth_bound"]) == (["growing_context"], 40.0, 25.0)


def test_long_sessions_that_are_ordinary_for_the_feature_are_not_flagged() -> None:
    long_flat = [line for s in range(40) for line in session(f"s-{s}", 30.0 * s, 30)]

    assert found(long_flat).is_empty()  # every session has 30 calls: 30 is the feature's normal


def test_reruns_and_row_order_give_identical_findings_and_ids() -> None:
    frame = lines(usual() + [{"ts": 30.5, "cost_usd": "0.600"}] + ordinary_sessions() + session("loop", 600, 40))

    first = finalise(detect_outliers(inputs(frame))).collect()
    again = finalise(detect_outliers(inputs(frame.sample(fraction=1.0, shuffle=True, seed=5)))).collect()

    assert first["kind"].to_list() == ["outlier_request", "runaway_session"]
    assert_frame_equal(first.sort("finding_id"), again.sort("finding_id"))
