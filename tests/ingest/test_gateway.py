"""The `gateway` source: the canonical record from JSONL, JSON arrays, CSV and Parquet, gzip or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

RECORDS: list[dict[str, Any]] = [
    {
        "request_id": "req-1",
        "ts": "2026-10-01T23:59:59.5+00:00",
        "model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "input_tokens": 1200,
        "cached_input_tokens": 1000,
        "cache_write_tokens": 0,
        "output_tokens": 300,
        "reasoning_tokens": 0,
        "team": "support",
        "feature": "summarise",
        "project": "helpdesk",
        "user": "u-17",
        "environment": "prod",
        "api_key": "key-support-1",
        "tags": {"customer": "acme"},
        "trace_id": "t-1",
        "attempt": 1,
        "status": 200,
        "prompt_hash": "p-9",
        "service_tier": "default",
        "latency_ms": 812.5,
        "cost_usd": "0.0053",
    },
    {
        "request_id": "req-2",
        "ts": "2026-10-02T01:00:00-07:00",
        "model": "claude-sonnet-4-5",
        "input_tokens": 5000,
        "cached_input_tokens": 0,
        "cache_write_tokens": 4000,
        "output_tokens": 800,
        "team": "platform",
        "feature": "eval",
        "trace_id": "t-2",
        "attempt": 2,
        "status": "timeout",
        "service_tier": "batch",
    },
    {
        "request_id": "req-3",
        "ts": 1790000000000,
        "model": "o3",
        "input_tokens": 10,
        "output_tokens": 900,
        "reasoning_tokens": 850,
        "status": 429,
    },
]

EXPECTED = {
    "req-1": {
        "ts": "2026-10-01 23:59:59.5+00",
        "charge_day": "2026-10-01",
        "provider": "openai",
        "provider_inferred": False,
        "input_tokens": 1200,
        "cached_input_tokens": 1000,
        "output_tokens": 300,
        "team": "support",
        "user": "u-17",
        "status": "200",
        "attempt": 1,
        "reported_cost_usd": Decimal("0.005300000000"),
        "tags": {"customer": "acme"},
        "requests": 1,
    },
    "req-2": {
        "ts": "2026-10-02 08:00:00+00",
        "charge_day": "2026-10-02",
        "provider": "anthropic",
        "provider_inferred": True,
        "input_tokens": 5000,
        "cached_input_tokens": 0,
        "output_tokens": 800,
        "team": "platform",
        "user": None,
        "status": "timeout",
        "attempt": 2,
        "reported_cost_usd": None,
        "tags": None,
        "requests": 1,
    },
    "req-3": {
        "ts": "2026-09-21 14:13:20+00",
        "charge_day": "2026-09-21",
        "provider": "openai",
        "provider_inferred": True,
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "output_tokens": 900,
        "team": None,
        "user": None,
        "status": "429",
        "attempt": None,
        "reported_cost_usd": None,
        "tags": None,
        "requests": 1,
    },
}


def loaded(db: Database) -> dict[str, dict[str, Any]]:
    got = {}
    for r in rows(
        db,
        """SELECT request_id, CAST(ts AS VARCHAR) AS ts, CAST(charge_day AS VARCHAR) AS charge_day,
                                provider, provider_inferred, input_tokens, cached_input_tokens, output_tokens, team,
                                "user", status, attempt, reported_cost_usd, tags, requests FROM usage""",
    ):
        r["tags"] = json.loads(r["tags"]) if r["tags"] else None
        got[r.pop("request_id")] = r
    return got


def as_csv_value(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else str(value)


def write_format(tmp_path: Path, fmt: str) -> Path:
    if fmt in ("jsonl", "jsonl.gz"):
        return write_file(
            tmp_path, f"g.{fmt}", "\n".join(json.dumps(r) for r in RECORDS) + "\n", gzipped=fmt.endswith(".gz")
        )
    if fmt == "json":
        return write_file(tmp_path, "g.json", json.dumps(RECORDS, indent=2))
    if fmt in ("csv", "csv.gz"):
        import csv
        import io

        columns = sorted({k for r in RECORDS for k in r})
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows([[as_csv_value(r.get(c)) for c in columns] for r in RECORDS])
        return write_file(tmp_path, f"g.{fmt}", buf.getvalue(), gzipped=fmt.endswith(".gz"))
    source = write_format(tmp_path, "csv")
    target = tmp_path / "g.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{source}', all_varchar=true)) TO '{target}' (FORMAT parquet)")
    return target


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "json", "csv", "csv.gz", "parquet"])
def test_gateway_formats_load_the_same_records(db: Database, tmp_path: Path, fmt: str) -> None:
    report = ingest_one(db, write_format(tmp_path, fmt), "gateway")

    assert (report.lines, report.accepted, report.rejected) == (3, 3, 0)
    assert loaded(db) == EXPECTED


def test_parquet_native_types_are_read_without_text_round_trips(db: Database, tmp_path: Path) -> None:
    target = tmp_path / "native.parquet"
    duckdb.sql(f"""COPY (SELECT 'n1' AS request_id, TIMESTAMPTZ '2026-10-01 12:00:00+00' AS ts, 'gpt-4o' AS model,
                               CAST(100 AS BIGINT) AS input_tokens, CAST(7 AS INTEGER) AS output_tokens,
                               {{'team': 'x'}} AS tags, 3.25 AS latency_ms, CAST(0.5 AS DECIMAL(10,4)) AS cost_usd,
                               CAST(200 AS SMALLINT) AS status)
                   TO '{target}' (FORMAT parquet)""")

    ingest_one(db, target, "gateway")

    [row] = rows(db, "SELECT input_tokens, output_tokens, tags, latency_ms, reported_cost_usd, status FROM usage")
    assert row == {
        "input_tokens": 100,
        "output_tokens": 7,
        "tags": '{"team":"x"}',
        "latency_ms": Decimal("3.250000000"),
        "reported_cost_usd": Decimal("0.500000000000"),
        "status": "200",
    }


def test_directory_ingest_with_auto_recognises_gateway_files(db: Database, tmp_path: Path) -> None:
    write_format(tmp_path / "a", "jsonl")
    from finops.ingest import IngestOptions, ingest_paths

    outcomes = list(ingest_paths(db, [tmp_path / "a"], "auto", IngestOptions()))

    assert [(o.report.source, o.report.detected) for o in outcomes if o.report] == [("gateway", True)]


@pytest.mark.parametrize("delimiter", [";", "|", "\t"])
def test_auto_recognises_csv_with_the_delimiters_the_reader_reads(db: Database, tmp_path: Path, delimiter: str) -> None:
    from finops.ingest import IngestOptions, ingest_paths

    header = delimiter.join(["request_id", "ts", "model", "input_tokens", "output_tokens"])
    body = delimiter.join(["d1", "2026-10-01T00:00:00Z", "gpt-4o", "5", "6"])
    path = write_file(tmp_path, "g.csv", f"{header}\n{body}\n")

    [outcome] = list(ingest_paths(db, [path], "auto", IngestOptions()))

    assert outcome.report is not None
    assert (outcome.report.source, outcome.report.accepted) == ("gateway", 1)


@pytest.mark.slow
def test_daily_and_monthly_counts_do_not_depend_on_the_process_time_zone(tmp_path: Path) -> None:
    # records around UTC midnight at month ends: a process-local zone would move them across days and months
    records = [
        {"request_id": f"r{i}", "ts": ts, "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}
        for i, ts in enumerate(
            [
                "2026-09-30T23:30:00Z",
                "2026-10-01T00:30:00Z",
                "2026-10-01T06:59:00Z",
                "2026-10-31T23:59:59Z",
                "2026-11-01T00:00:00Z",
                "2026-10-15T12:00:00+09:00",
                1790000000,
                "2026-10-31T20:00:00-07:00",
            ]
        )
    ]
    source = write_file(tmp_path, "g.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    query = (
        "SELECT charge_day, CAST(date_trunc('month', charge_day) AS DATE) AS month, count(*) AS n "
        "FROM usage GROUP BY ALL ORDER BY ALL"
    )
    outputs = {}
    for zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        db_path = tmp_path / f"{zone.replace('/', '_')}.duckdb"
        env = {**os.environ, "TZ": zone, "FINOPS_DB": str(db_path)}
        for args in (["ingest", str(source), "--source", "gateway"], ["sql", query, "--format", "csv"]):
            done = subprocess.run([sys.executable, "-m", "finops", *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        outputs[zone] = done.stdout
    assert outputs["UTC"] == outputs["America/Los_Angeles"] == outputs["Asia/Tokyo"]
    assert outputs["UTC"].splitlines() == [
        "charge_day,month,n",
        "2026-09-21,2026-09-01,1",
        "2026-09-30,2026-09-01,1",
        "2026-10-01,2026-10-01,2",
        "2026-10-15,2026-10-01,1",
        "2026-10-31,2026-10-01,1",
        "2026-11-01,2026-11-01,2",
    ]
