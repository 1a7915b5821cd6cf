"""SQL is evaluated in UTC whatever the machine's zone: an analyst's `date_trunc('month', ts)` or `ts::DATE`
agrees with `charge_day`, in `finops sql` and in the SQL workers behind `POST /v1/sql`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finops.store.readonly import SandboxLimits
from finops.store.sqlpool import PoolLimits, SqlPool

# 03:00 UTC on the 1st of November is still the 31st of October in Los Angeles
QUERY = "SELECT current_setting('TimeZone') AS zone, CAST(TIMESTAMPTZ '2026-11-01 03:00:00+00' AS DATE) AS day"


def test_finops_sql_answers_in_utc_on_a_machine_in_another_zone(tmp_path: Path, fixtures_dir: Path) -> None:
    env = {**os.environ, "TZ": "America/Los_Angeles", "FINOPS_DB": str(tmp_path / "f.duckdb")}
    source = fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl"
    finops = [sys.executable, "-m", "finops"]
    subprocess.run([*finops, "ingest", str(source), "--source", "gateway"], env=env, check=True, capture_output=True)

    done = subprocess.run([*finops, "sql", QUERY, "--format", "csv"], env=env, capture_output=True, text=True)

    assert done.stdout.splitlines() == ["zone,day", "UTC,2026-11-01"], done.stderr


def test_sql_workers_answer_in_utc_on_a_machine_in_another_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")  # the workers are processes started with this zone
    pool = SqlPool(PoolLimits(workers=1, sandbox=SandboxLimits(threads=1)))
    try:
        result = pool.run({}, QUERY, max_rows=10, time_limit_ms=30_000)
    finally:
        pool.close()

    assert [(zone, str(day)) for zone, day in result.rows] == [("UTC", "2026-11-01")]
