"""A finding keeps its id and first run when it is found again: on a plain re-run, and when earlier records
of the same incident arrive late and move its start (hunt C bug 3: a chain's first attempt, a storm's first
minutes), so its finding alert is not sent twice. Other incidents of the same subject stay their own."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from finops.detect.findings import FINDING_SCHEMA, finalise
from finops.pipeline import run_once
from finops.store.db import Database
from finops.store.findings import replace_findings
from tests.detect.test_retries import T0
from tests.detect.test_retries import chain_attempt as retried_attempt
from tests.helpers import ingest_one, rows, write_file

HORIZON = T0 - timedelta(days=1)


def storm(start_min: float, end_min: float, *, feature: str = "chat", excess: str = "1") -> dict[str, Any]:
    return {
        "kind": "retry_storm",
        "detector": "retries.storm",
        "team": "support",
        "feature": feature,
        "subject": f"team=support/feature={feature}",
        "window_start": T0 + timedelta(minutes=start_min),
        "window_end": T0 + timedelta(minutes=end_min),
        "metric": "amplification",
        "observed": 3.0,
        "expected": 1.0,
        "excess_cost_usd": Decimal(excess),
        "score": 0.9,
        "evidence": '{"ids":[],"count":0}',
        "details": "{}",
    }


def found(*records: dict[str, Any]) -> pl.DataFrame:
    return finalise(pl.DataFrame(list(records), schema=FINDING_SCHEMA).lazy()).collect()


def stored(db: Database) -> list[tuple[str, str, int, int]]:
    return [
        (r["finding_id"], r["feature"], r["first_run_id"], r["last_run_id"])
        for r in rows(db, "SELECT * FROM findings ORDER BY window_start, feature")
    ]


def test_an_incident_whose_start_arrives_late_keeps_its_id_and_first_run(db: Database) -> None:
    first = found(storm(12, 30), storm(100, 110), storm(12, 30, feature="faq"))
    replace_findings(db, first, HORIZON, run_id=1)
    ids = first["finding_id"].to_list()

    again = found(storm(0, 30, excess="2"), storm(100, 110), storm(12, 30, feature="faq"))  # the first 12 min late
    replace_findings(db, again, HORIZON, run_id=2)

    assert again["finding_id"][0] != ids[0]  # the id hashes the start ...
    assert stored(db) == [(ids[0], "chat", 1, 2), (ids[2], "faq", 1, 2), (ids[1], "chat", 1, 2)]  # ... it is kept
    assert db.scalar("SELECT excess_cost_usd FROM findings WHERE finding_id = $i", {"i": ids[0]}) == Decimal(2)

    replace_findings(db, again, HORIZON, run_id=3)  # a plain re-run: the same ids
    assert stored(db) == [(ids[0], "chat", 1, 3), (ids[2], "faq", 1, 3), (ids[1], "chat", 1, 3)]


def test_an_incident_that_does_not_overlap_is_a_new_finding(db: Database) -> None:
    replace_findings(db, found(storm(12, 30)), HORIZON, run_id=1)

    later = found(storm(40, 50))
    replace_findings(db, later, HORIZON, run_id=2)

    assert stored(db) == [(later["finding_id"][0], "chat", 2, 2)]


def test_late_data_joining_two_incidents_keeps_the_first_found(db: Database) -> None:
    replace_findings(db, found(storm(0, 10)), HORIZON, run_id=1)
    replace_findings(db, found(storm(0, 10), storm(20, 30)), HORIZON, run_id=2)
    first_id = stored(db)[0][0]

    replace_findings(db, found(storm(0, 30)), HORIZON, run_id=3)

    assert stored(db) == [(first_id, "chat", 1, 3)]


def chain_attempt(a: int) -> str:
    return retried_attempt(a, chain="chainA", model="gpt-4o", answer=7, answer_tokens=300)


def test_run_keeps_a_chain_id_when_its_first_attempt_arrives_late(db: Database, tmp_path: Path) -> None:
    as_of = T0 + timedelta(days=1)
    ingest_one(db, write_file(tmp_path, "chain.jsonl", "\n".join(chain_attempt(a) for a in range(2, 8))), "gateway")
    run_once(db, as_of=as_of)
    [before] = rows(db, "SELECT finding_id, window_start, excess_cost_usd FROM findings")

    ingest_one(db, write_file(tmp_path, "late.jsonl", chain_attempt(1)), "gateway")
    run_once(db, as_of=as_of)

    [after] = rows(db, "SELECT finding_id, window_start, excess_cost_usd, first_run_id FROM findings")
    assert after["finding_id"] == before["finding_id"]
    assert after["first_run_id"] < db.scalar("SELECT max(run_id) FROM runs")
    assert (after["window_start"], after["excess_cost_usd"]) == (T0 + timedelta(seconds=10), Decimal("0.03"))
    assert before["window_start"] == T0 + timedelta(seconds=20)


def test_a_storm_reported_for_another_of_its_series_after_late_data_keeps_its_id(db: Database) -> None:
    feature_subject, model_subject = "team=support/feature=chat", "provider=openai/model=gpt-4o"
    scopes = json.dumps({"scopes": [{"subject": feature_subject}, {"subject": model_subject}]})
    as_feature = {**storm(12, 30), "details": scopes}
    # late calls of other features tip it: now reported for the provider/model, seen in the feature too
    as_model = {
        **storm(10, 30),
        "detector": "retries.storm.model",
        "team": None,
        "feature": None,
        "provider": "openai",
        "model": "gpt-4o",
        "subject": model_subject,
        "details": scopes,
    }
    other = {
        **storm(12, 30, feature="faq"),
        "details": json.dumps({"scopes": [{"subject": "team=support/feature=faq"}]}),
    }
    first = found(as_feature, other)
    replace_findings(db, first, HORIZON, run_id=1)

    replace_findings(db, found(as_model, other), HORIZON, run_id=2)

    kept = rows(db, "SELECT finding_id, subject, first_run_id FROM findings ORDER BY subject")
    assert [(r["finding_id"], r["subject"], r["first_run_id"]) for r in kept] == [
        (first["finding_id"][0], model_subject, 1),
        (first["finding_id"][1], "team=support/feature=faq", 1),  # another storm: not taken for it
    ]


def test_a_level_shift_reported_by_the_hourly_detector_instead_of_the_daily_one_keeps_its_id(db: Database) -> None:
    # hunt F 6: the same step, found by spikes.daily then by spikes.hourly, was two findings and two alerts
    shift = {**storm(0, 60 * 72), "kind": "level_shift", "detector": "spikes.daily", "subject": "team=support"}
    first = found(shift)
    replace_findings(db, first, HORIZON, run_id=1)

    hourly = {**shift, "detector": "spikes.hourly", "window_start": T0 + timedelta(hours=1),
              "window_end": T0 + timedelta(days=11)}  # fmt: skip
    replace_findings(db, found(hourly), HORIZON, run_id=2)

    assert [(r["finding_id"], r["detector"], r["first_run_id"]) for r in rows(db, "SELECT * FROM findings")] == [
        (first["finding_id"][0], "spikes.hourly", 1)
    ]
