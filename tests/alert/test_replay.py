"""End to end through the pipeline: a month of gateway logs replayed day by day with `finops run --as-of`, tag
budgets over usage tags, restated usage, and overlapping runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finops.alert.budgets import BudgetSpec, create_budget
from finops.cli import main
from finops.jobs import run_pipeline, shared_database
from finops.pipeline import run_once
from finops.settings import Settings
from finops.store.db import Database, connect
from tests.alert.conftest import alerts, put_forecast
from tests.helpers import ingest_one, rows, write_file

START = datetime(2025, 9, 1, tzinfo=UTC)  # a 30-day month safely in the past (ingest refuses the future)
COST = Decimal("0.45")  # 100k input + 20k output tokens of gpt-4o-2024-08-06 at $2.50 / $10 per million


def record(request_id: str, ts: datetime, team: str, **fields: object) -> str:
    return json.dumps(
        {
            "request_id": request_id,
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "model": "gpt-4o-2024-08-06",
            "provider": "openai",
            "input_tokens": 100_000,
            "output_tokens": 20_000,
            "team": team,
            "feature": "chat",
            **fields,
        }
    )


def month_of_logs(directory: Path) -> Path:
    """`growth` sends 2 + d requests on day d (0-based), `flat` 10 every day; $0.45 each."""
    lines = []
    for d in range(30):
        day = START + timedelta(days=d)
        lines += [record(f"g-{d}-{i}", day + timedelta(hours=8, minutes=i), "growth") for i in range(2 + d)]
        lines += [record(f"f-{d}-{i}", day + timedelta(hours=9, minutes=i), "flat") for i in range(10)]
    return write_file(directory, "november.jsonl", "\n".join(lines) + "\n")


def run_rate_forecast(db: Database, as_of: datetime, run_id: int) -> int:
    """Stands in for the forecast stage: spend to date plus the last 7 days' daily average for the rest of the
    month, per team (the alert stage only reads the `forecasts` table)."""
    period = f"{as_of:%Y-%m}"
    month_start = as_of.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days_left = Decimal((START + timedelta(days=30) - as_of).total_seconds()) / 86400
    teams = db.execute(
        """SELECT team, sum(cost_usd) FILTER (WHERE charge_day >= $start) AS actual,
                  sum(cost_usd) FILTER (WHERE charge_day >= $week) AS week
           FROM spend_daily WHERE charge_day < $today GROUP BY team""",
        {"start": month_start.date(), "week": (as_of - timedelta(days=7)).date(), "today": as_of.date()},
    )
    for team, actual, week in teams:
        spent, last_week = Decimal(actual or 0), Decimal(week or 0)
        put_forecast(db, team, period, as_of, spent + last_week / 7 * days_left, method="run_rate")
    return len(teams)


@pytest.fixture
def replay_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("finops.pipeline.forecast_step", run_rate_forecast)
    monkeypatch.setenv("FINOPS_ALERT_FORECAST_MIN_HISTORY_DAYS", "7")
    yield


def finops(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        main(list(argv))
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.slow
def test_a_month_replayed_day_by_day_fires_each_threshold_once(
    replay_env: None, tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = str(settings.db)
    finops(capsys, "--db", db_path, "ingest", str(month_of_logs(tmp_path)), "--source", "gateway")
    fired_on: dict[tuple[str, str, int | None], int] = {}
    with connect(settings) as db:
        for team, amount in (("growth", "150"), ("flat", "400")):
            create_budget(db, BudgetSpec(amount_usd=amount, team=team, channels=[f"email:{team}@example.com"]))
        for d in range(1, 30):  # what `finops run --as-of` calls, on one connection to keep the test short
            run_once(db, as_of=START + timedelta(days=d))
            for a in alerts(db):
                fired_on.setdefault((a["message"].split(":")[0], a["kind"], a["threshold_pct"]), d)
    finops(capsys, "--db", db_path, "run", "--as-of", (START + timedelta(days=30)).isoformat())  # the last day

    # after d observed days growth has spent 0.45 * (2d + d(d-1)/2): $76.50 on day 17, $123.75 on 22, $157.50 on 25
    assert fired_on == {
        ("team=growth", "forecast", 100): 16,  # the run-rate forecast reaches $150 nine days before the spend does
        ("team=growth", "actual", 50): 17,
        ("team=growth", "actual", 80): 22,
        ("team=growth", "actual", 100): 25,
    }
    with connect(settings) as db:
        assert [(a["kind"], a["threshold_pct"], a["episode"]) for a in alerts(db)] == [
            ("forecast", 100, 1),
            ("actual", 50, 1),
            ("actual", 80, 1),
            ("actual", 100, 1),
        ]
        assert db.scalar("SELECT count(*) FROM alert_deliveries") == 4  # one e-mail per alert, none for flat
        periods = rows(
            db,
            "SELECT budget_id, evaluations, actual_usd FROM budget_periods WHERE period = '2025-09' ORDER BY budget_id",
        )
        assert [(p["evaluations"], p["actual_usd"]) for p in periods] == [
            (30, COST * (2 * 30 + 30 * 29 // 2)),
            (30, COST * 30 * 10),
        ]
    listed = finops(capsys, "--db", db_path, "alerts", "list", "--status", "open")
    assert listed.count("team=growth:") == 4 and "team=flat" not in listed


@pytest.mark.slow
def test_the_month_replayed_with_the_real_forecast_stage(tmp_path: Path, db: Database) -> None:
    """The same month with `finops.forecast` itself and default settings: the forecast alert still comes first."""
    ingest_one(db, month_of_logs(tmp_path), "gateway")
    for team, amount in (("growth", "150"), ("flat", "400")):
        create_budget(db, BudgetSpec(amount_usd=amount, team=team))
    for d in range(1, 30):
        run_once(db, as_of=START + timedelta(days=d))

    found = {(a["kind"], a["threshold_pct"]): a["fired_at"] for a in alerts(db, "period = '2025-09'")}
    assert sorted(found) == [("actual", 50), ("actual", 80), ("actual", 100), ("forecast", 100)]
    assert found[("forecast", 100)] < found[("actual", 100)]
    assert db.scalar("SELECT count(*) FROM alerts") == 4  # each once, nothing for flat


def test_a_tag_budget_sums_the_spend_of_usage_carrying_the_tag(replay_env: None, db: Database, tmp_path: Path) -> None:
    day = START + timedelta(hours=10)
    lines = [record(f"a{i}", day, "search", tags={"project": "apollo"}) for i in range(6)]
    lines += [record(f"b{i}", day, "search", tags={"project": "zeus"}) for i in range(6)]
    lines += [record(f"c{i}", day, "support", tags={"project": "apollo", "env": "prod"}) for i in range(4)]
    ingest_one(db, write_file(tmp_path, "tags.jsonl", "\n".join(lines) + "\n"), "gateway")
    run_once(db, as_of=START + timedelta(days=1))  # prices the usage
    create_budget(db, BudgetSpec(amount_usd="5", tag="project=apollo"))
    create_budget(db, BudgetSpec(amount_usd="5", team="search", tag="project=apollo"))

    run_once(db, as_of=START + timedelta(days=1, hours=1))

    spent = {r["budget_id"]: r["actual_usd"] for r in rows(db, "SELECT budget_id, actual_usd FROM budget_periods")}
    assert spent == {1: 10 * COST, 2: 6 * COST}  # every team's apollo usage; only search's
    assert [(a["budget_id"], a["threshold_pct"]) for a in alerts(db)] == [(1, 50), (1, 80), (2, 50)]
    assert (
        "tag=project=apollo: 80% of the monthly budget reached in 2025-09: $4.50 of $5.00" in alerts(db)[1]["message"]
    )


def test_restated_usage_re_evaluates_without_duplicates(replay_env: None, db: Database, tmp_path: Path) -> None:
    day = START + timedelta(hours=10)
    first = [record(f"r{i}", day, "support") for i in range(10)]  # $4.50
    ingest_one(db, write_file(tmp_path, "a.jsonl", "\n".join(first) + "\n"), "gateway")
    create_budget(db, BudgetSpec(amount_usd="10", team="support", channels=["email:lead@example.com"]))
    assert run_once(db, as_of=START + timedelta(days=1)).alerts == 0

    # the provider restates the same ten requests with twice the output: $6.50, past 50 %
    restated = [record(f"r{i}", day, "support", output_tokens=40_000) for i in range(10)]
    ingest_one(db, write_file(tmp_path, "b.jsonl", "\n".join(restated) + "\n"), "gateway")
    assert run_once(db, as_of=START + timedelta(days=1, hours=1)).alerts == 1
    ingest_one(db, write_file(tmp_path, "c.jsonl", "\n".join(restated) + "\n"), "gateway")  # the same again
    assert run_once(db, as_of=START + timedelta(days=1, hours=2)).alerts == 0

    assert db.scalar("SELECT sum(cost_usd) FROM spend WHERE team = 'support'") == Decimal("6.5")
    assert [(a["kind"], a["threshold_pct"]) for a in alerts(db)] == [("actual", 50)]


def test_two_overlapping_runs_record_each_alert_once(
    replay_env: None, db: Database, tmp_path: Path, settings: Settings
) -> None:
    day = START + timedelta(hours=10)
    ingest_one(
        db, write_file(tmp_path, "a.jsonl", "\n".join(record(f"r{i}", day, "support") for i in range(30))), "gateway"
    )
    create_budget(db, BudgetSpec(amount_usd="10", team="support", channels=["email:lead@example.com"]))
    provide = shared_database(db)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduled_run() -> None:
        try:
            with provide() as cursor_db:
                barrier.wait()
                run_pipeline(cursor_db, settings, as_of=START + timedelta(days=1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scheduled_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert db.scalar("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") == 2
    assert sorted((a["kind"], a["threshold_pct"]) for a in alerts(db)) == [
        ("actual", 50),
        ("actual", 80),
        ("actual", 100),
    ]
    assert db.scalar("SELECT count(*) FROM alert_deliveries") == 3
    assert db.scalar("SELECT sum(cost_usd) FROM spend") == 30 * COST  # and no usage priced twice
