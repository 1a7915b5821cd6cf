"""An outlier request that is part of a cost spike (inside its window and scope) or of a runaway session
(every request it names is the session's) is folded into that finding, so its dollars are not reported
twice (hunt C bug 4); outliers outside them stay findings of their own."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from finops.detect.findings import FINDING_SCHEMA, fold_outliers
from tests.detect.test_retries import T0


def finding(kind: str, start: float, end: float, ids: list[str], **owner: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "detector": kind,
        "team": "reports",
        "feature": "summary",
        "model": "gpt-4o",
        "subject": kind,
        "window_start": T0 + timedelta(minutes=start),
        "window_end": T0 + timedelta(minutes=end),
        "metric": "cost_usd",
        "excess_cost_usd": Decimal("1"),
        "score": 0.9,
        "evidence": json.dumps({"ids": ids, "count": len(ids)}, separators=(",", ":")),
        "details": '{"grain":"hour"}',
        **owner,
    }


def test_outliers_inside_a_spike_or_a_runaway_session_are_folded_into_it() -> None:
    records = [
        finding("cost_spike", 0, 60, ["big-1"], feature=None, model=None),  # a team-level spike
        finding("outlier_request", 5, 50, ["big-1", "big-2"]),  # inside it: folded
        finding("outlier_request", 50, 70, ["late-1"]),  # ends after it: kept
        finding("outlier_request", 10, 20, ["other-1"], team="search"),  # another team: kept
        finding("runaway_session", 100, 110, ["loop-1", "loop-2", "loop-3"], details=None, feature="planner"),
        finding("outlier_request", 105, 110, ["loop-2", "loop-3"], feature="planner"),  # the loop's calls: folded
        finding("outlier_request", 105, 110, ["loop-3", "loop-9"], feature="planner"),  # one not in it: kept
    ]

    result = fold_outliers(pl.DataFrame(records, schema=FINDING_SCHEMA).lazy()).collect()

    assert [(r["kind"], json.loads(r["evidence"])["ids"]) for r in result.iter_rows(named=True)] == [
        ("cost_spike", ["big-1"]),
        ("outlier_request", ["late-1"]),
        ("outlier_request", ["other-1"]),
        ("runaway_session", ["loop-1", "loop-2", "loop-3"]),
        ("outlier_request", ["loop-3", "loop-9"]),
    ]
    assert [json.loads(d) for d in result["details"]][0::3] == [
        {"grain": "hour", "outlier_requests": {"count": 2, "ids": ["big-1", "big-2"]}},
        {"outlier_requests": {"count": 2, "ids": ["loop-2", "loop-3"]}},
    ]
    assert result["excess_cost_usd"].sum() == Decimal(5)  # the kept rows only, each counted once
