"""A small two-team database with canaries planted in team bravo's data, and clients with keys of every role.

Team alpha is the caller of the isolation tests; every distinctive string of bravo starts with `zzq`
and its amounts are unusual, so a leak shows as a substring of a response.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from finops.api import create_app
from finops.settings import Settings, load_settings
from finops.store.db import Database, connect
from finops.store.keys import create_key
from finops.store.spend import rebuild_daily
from tests.helpers import ingest_one, write_file

AS_OF = datetime(2026, 10, 20, tzinfo=UTC)
CANARIES = (
    "zzqfeature",  # bravo's feature
    "zzquser",  # bravo's user
    "zzqproject",  # bravo's project
    "zzqtrace",  # bravo's trace ids
    "zzqreq",  # bravo's request ids
    "zzqsubject",  # bravo's finding
    "zzqhook",  # bravo's budget channel
    "zzqglobal",  # a finding of no team (company-wide)
    "31337.4242",  # bravo's gateway-reported cost, finding and budget
    "313.370042",  # the cost of each of bravo's lines
    "zzqraw",  # a rejected line of bravo
)


def gateway_lines() -> str:
    lines = []
    for day in range(1, 16):
        for i in range(4):
            ts = f"2026-10-{day:02d}T{8 + i:02d}:00:00Z"
            lines.append(
                {
                    "request_id": f"a-{day}-{i}",
                    "ts": ts,
                    "model": "gpt-4o-2024-08-06",
                    "provider": "openai",
                    "input_tokens": 1000 + i,
                    "output_tokens": 100,
                    "team": "alpha",
                    "feature": "chat",
                    "user": f"alice{i}",
                    "project": "alpha-app",
                    "trace_id": f"alpha-trace-{day}",
                    "status": 200,
                }
            )
            lines.append(
                {
                    "request_id": f"zzqreq-{day}-{i}",
                    "ts": ts,
                    "model": "claude-sonnet-4-5",
                    "provider": "anthropic",
                    "input_tokens": 7777,
                    "output_tokens": 333,
                    "team": "bravo",
                    "feature": "zzqfeature",
                    "user": "zzquser",
                    "project": "zzqproject",
                    "trace_id": f"zzqtrace-{day}",
                    "status": 200,
                    "cost_usd": "31337.4242",
                }
            )
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    return text + '{"request_id": "zzqraw-bad", "ts": "2026-10-02T00:00:00Z", "model": "x", "team": "bravo"}\n'


def _price(db: Database) -> None:
    """Spend lines at fixed prices (these tests are about the API, not pricing): 0.01 per alpha request,
    313.370042 per bravo request; then the daily rollup, and a finished run."""
    db.execute("INSERT INTO runs (run_id, as_of, started_at, finished_at) VALUES (1, $t, $t, $t)", {"t": AS_OF})
    db.execute(
        """INSERT INTO spend_lines BY NAME
           SELECT 'usage' AS line_type, 'tokens' AS kind, key_hash AS usage_key, ts, charge_day, source, provider,
                  model, model AS price_model, service_tier, team, feature, project, "user", 'record' AS attribution,
                  CAST(CASE team WHEN 'bravo' THEN 313.370042 ELSE 0.01 END AS DECIMAL(38, 12)) AS list_cost_usd,
                  CAST(CASE team WHEN 'bravo' THEN 313.370042 ELSE 0.01 END AS DECIMAL(38, 12)) AS cost_usd,
                  input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, requests,
                  trace_id, request_id, attempt, status, 'test prices' AS price_source, 1 AS run_id
           FROM usage_events"""
    )
    days = [r[0] for r in db.execute("SELECT DISTINCT charge_day FROM spend_lines ORDER BY 1")]
    rebuild_daily(db, days)


def _plant(db_path: Path, settings: Settings) -> None:
    with connect(settings) as db:
        ingest_one(db, write_file(db_path.parent, "gw.jsonl", gateway_lines()), "gateway")
        _price(db)
        finding = (
            "INSERT INTO findings (finding_id, kind, detector, team, feature, subject, window_start, window_end, "
            "metric, observed, expected, excess_cost_usd, score, severity, evidence, first_run_id, last_run_id, "
            "detected_at) VALUES ($id, 'cost_spike', 'test', $team, $feature, $subject, TIMESTAMPTZ '2026-10-05', "
            "TIMESTAMPTZ '2026-10-06', 'cost_usd', 10, 1, $excess, 0.9, 'high', $evidence, 1, 1, now())"
        )
        for fid, team, feature, subject, excess in (
            ("f-alpha", "alpha", "chat", "team=alpha/feature=chat", "12.5"),
            ("f-bravo", "bravo", "zzqfeature", "zzqsubject", "31337.4242"),
            ("f-global", None, None, "zzqglobal", "99.25"),
        ):
            evidence = json.dumps({"request_ids": [f"{subject}-1"]})
            db.execute(
                finding,
                {
                    "id": fid,
                    "team": team,
                    "feature": feature,
                    "subject": subject,
                    "excess": excess,
                    "evidence": evidence,
                },
            )
        if db.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'budgets'"):
            db.execute(
                "INSERT INTO budgets (budget_id, team, period_kind, amount_usd, thresholds, channels, created_at, "
                "updated_at) VALUES (1, 'bravo', 'month', 31337.4242, [50, 100], ['webhook:https://zzqhook.test/x'], "
                "now(), now()), (2, 'alpha', 'month', 100, [100], ['email:alpha@example.com'], now(), now())"
            )


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded database file, built once; tests copy it."""
    folder = tmp_path_factory.mktemp("api-seed")
    path = folder / "seed.duckdb"
    _plant(path, load_settings(db=path, memory_limit="1GB"))
    return path


def api_settings(folder: Path, **overrides: object) -> Settings:
    defaults: dict[str, object] = {
        "db": folder / "finops.duckdb",
        "memory_limit": "1GB",
        "sql_snapshot_dir": folder / "snapshots",
        "sql_time_limit_ms": 2000,
        "sql_memory_limit_mb": 256,
        "sql_workers": 2,
        "sql_max_concurrent_per_key": 4,
    }
    return load_settings(**(defaults | overrides))


@dataclass
class Api:
    client: TestClient
    settings: Settings
    keys: dict[str, str]  # admin, finance, owner (alpha), engineer, engineer_alpha, owner_bravo

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def make_keys(settings: Settings) -> dict[str, str]:
    with connect(settings) as db:
        return {
            "admin": create_key(db, "admin").token,
            "finance": create_key(db, "finance").token,
            "owner": create_key(db, "owner", ["alpha"]).token,
            "engineer": create_key(db, "engineer").token,
            "engineer_alpha": create_key(db, "engineer", ["alpha"]).token,
            "owner_bravo": create_key(db, "owner", ["bravo"]).token,
        }


@pytest.fixture(scope="module")
def api(seeded: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A client over a copy of the seeded database, one per test module (it starts SQL workers)."""
    folder = tmp_path_factory.mktemp("api")
    shutil.copy(seeded, folder / "finops.duckdb")
    settings = api_settings(folder)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings, keys)


# ------------------------------------------------------------------- budgets, alerts and forecasts
# Planted into the seeded file before any test copies it (an autouse session fixture: `seeded` stays as it
# is). Bravo's rows carry the canaries above; the budget of no team (a tag across every team) and the company
# forecast carry `zzqglobal`, which a team-scoped key must not see either. Alpha's Slack channel holds a
# secret (`alphasecret`) that only admin keys may read.

ALPHA_SLACK = "slack:https://hooks.slack.test/services/T000/B000/alphasecret"
GLOBAL_SLACK = "slack:https://hooks.slack.test/services/zzqglobal"
OCTOBER = ("2026-10", "month", "2026-10-01", "2026-11-01")
Q4 = ("2026-Q4", "quarter", "2026-10-01", "2027-01-01")

_BUDGET = (
    "INSERT INTO budgets (budget_id, team, feature, tag, period_kind, amount_usd, thresholds, channels, created_at, "
    "updated_at) VALUES ($id, $team, $feature, $tag, $kind, $amount, [50, 80, 100], $channels, $t, $t)"
)
_ALERT = """
    INSERT INTO alerts (alert_id, dedup_key, budget_id, kind, condition_kind, threshold_pct, period, period_start,
                        period_end, episode, fired_at, created_at, state, state_changed_at, delivery, amount_usd,
                        actual_usd, forecast_usd, message, payload)
    VALUES ($id, $id, $budget, $kind, $kind, 100, '2026-10', DATE '2026-10-01', DATE '2026-11-01', 1, $fired,
            $fired, $state, $fired, $delivery, $amount, $actual, $forecast, $message, $payload)"""
_DELIVERY = """
    INSERT INTO alert_deliveries (delivery_id, alert_id, channel, status, attempts, last_error, created_at)
    VALUES ($id, $alert, $channel, $status, 3, $error, TIMESTAMPTZ '2026-10-15 00:00:00+00')"""
_FORECAST = """
    INSERT INTO forecasts (team, feature, scope, period, period_kind, period_start, period_end, as_of, forecast_start,
        history_days, actual_to_date_usd, remaining_days, remaining_usd, forecast_usd, lo80_usd, hi80_usd, lo95_usd,
        hi95_usd, daily_forecast_usd, method, note, budget_id, budget_usd, breach_date, input_fingerprint, run_id,
        created_at)
    VALUES ($team, $feature, $scope, $period, $kind, $start, $end, $as_of, CAST($as_of AS DATE), 19, $actual,
        $days, $remaining, $forecast, $forecast * 0.9, $forecast * 1.1, $forecast * 0.8, $forecast * 1.2,
        $path, 'seasonal_naive', $note, $budget, $budget_usd, $breach, 'test', 1, $as_of)"""


def plant_budgets_alerts_forecasts(db: Database) -> None:
    t = AS_OF
    for row in (
        (3, None, None, "project=zzqproject", "month", "31337.4242", [GLOBAL_SLACK]),
        (4, "alpha", None, None, "quarter", "500", [ALPHA_SLACK]),
        (5, "alpha", "chat", None, "month", "1", ["email:alpha@example.com", ALPHA_SLACK]),
        (6, "bravo", "zzqfeature", None, "month", "31337.4242", ["webhook:https://zzqhook.test/feature"]),
    ):
        keys = ("id", "team", "feature", "tag", "kind", "amount", "channels")
        db.execute(_BUDGET, dict(zip(keys, row, strict=True)) | {"t": t})
    db.execute("SELECT nextval('budget_id_seq') FROM range(10)")  # the planted ids are taken
    alerts = (
        ("alr_alpha_open", 2, "actual", "open", "failed", "100", "120.5", "2026-10-15", "team=alpha: 100% reached"),
        ("alr_alpha_old", 2, "forecast", "recovered", "delivered", "100", "80", "2026-10-10", "team=alpha: forecast"),
        ("alr_bravo", 1, "forecast", "open", "pending", "31337.4242", "31337.4242", "2026-10-16", "zzqsubject"),
        ("alr_global", 3, "actual", "open", "pending", "31337.4242", "40000", "2026-10-17", "tag=project=zzqglobal"),
    )
    for aid, budget, kind, state, delivery, amount, actual, day, message in alerts:
        payload = {"budget": {"budget_id": budget}, "drivers": {"feature": [{"feature": message.split(":")[0]}]}}
        db.execute(
            _ALERT,
            {
                "id": aid,
                "budget": budget,
                "kind": kind,
                "state": state,
                "delivery": delivery,
                "amount": amount,
                "actual": actual,
                "forecast": None if kind == "actual" else actual,
                "fired": datetime.fromisoformat(day).replace(tzinfo=UTC),
                "message": message,
                "payload": json.dumps(payload),
            },
        )
    deliveries = (
        (1, "alr_alpha_open", "email:alpha@example.com", "delivered", None),
        (2, "alr_alpha_open", ALPHA_SLACK, "failed", f"could not connect: {ALPHA_SLACK[6:]} refused"),
        (3, "alr_bravo", "webhook:https://zzqhook.test/x", "pending", "HTTP 500: zzqhook"),
    )
    for did, aid, channel, status, error in deliveries:
        db.execute(_DELIVERY, {"id": did, "alert": aid, "channel": channel, "status": status, "error": error})
    # (team, feature, period, as_of, actual, daily path, note, budget, budget_usd, breach)
    forecasts = (
        ("alpha", None, OCTOBER, "2026-10-19", "0.56", ["0.05"] * 13, "older", 2, "100", None),
        ("alpha", None, OCTOBER, "2026-10-20", "0.6", ["0.05"] * 12, "newest", 2, "100", None),
        ("alpha", "chat", OCTOBER, "2026-10-20", "0.6", ["0.05"] * 12, "feature", 5, "1", "2026-10-28"),
        ("alpha", None, Q4, "2026-10-20", "0.6", ["0.05"] * 73, "quarter", 4, "500", None),
        ("bravo", None, OCTOBER, "2026-10-20", "31337.4242", ["313.370042"] * 12, "zzqsubject", 1, "31337.4242", None),
        ("bravo", "zzqfeature", OCTOBER, "2026-10-20", "31337.4242", ["1"] * 12, "zzqfeature", 6, "31337.4242", None),
        (None, None, OCTOBER, "2026-10-20", "31337.4242", ["313.370042"] * 12, "zzqglobal", None, None, None),
    )
    for team, feature, (label, kind, start, end), as_of, actual, path, note, budget, budget_usd, breach in forecasts:
        remaining = sum((Decimal(p) for p in path), Decimal(0))
        db.execute(
            _FORECAST,
            {
                "team": team,
                "feature": feature,
                "scope": "company" if team is None else "feature" if feature else "team",
                "period": label,
                "kind": kind,
                "start": date.fromisoformat(start),
                "end": date.fromisoformat(end),
                "as_of": datetime.fromisoformat(as_of).replace(tzinfo=UTC),
                "actual": Decimal(actual),
                "days": len(path),
                "remaining": remaining,
                "forecast": Decimal(actual) + remaining,
                "path": [Decimal(p) for p in path],
                "note": note,
                "budget": budget,
                "budget_usd": budget_usd,
                "breach": date.fromisoformat(breach) if breach else None,
            },
        )


@pytest.fixture(scope="session", autouse=True)
def planted_budgets_alerts_forecasts(seeded: Path) -> Path:
    """`seeded` with the budgets, alerts and forecasts above (before any `api` fixture copies it)."""
    with connect(load_settings(db=seeded, memory_limit="1GB")) as db:
        plant_budgets_alerts_forecasts(db)
    return seeded
