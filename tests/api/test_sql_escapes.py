"""POST /v1/sql refuses every way out of the data, with no side effect; runaway queries stop at the limit.

Each statement is refused with a 4xx and its code; afterwards the canary file is unchanged, nothing was
written, and the main database is as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Api

CANARY_TEXT = "zzqfilecanary-4c1d"


@pytest.fixture(scope="module")
def plant(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("escapes")
    (folder / "canary.csv").write_text(f"secret\n{CANARY_TEXT}\n")
    yield folder


def _escapes(folder: Path, db: Path) -> list[tuple[str, str]]:
    canary = folder / "canary.csv"
    out = folder / "out.csv"
    cases: list[tuple[str, str]] = []
    for target in ("/etc/passwd", str(db), str(canary)):
        for fn in ("read_csv", "read_text", "read_blob", "read_parquet", "read_json", "glob"):
            cases.append((f"SELECT * FROM {fn}('{target}')", "query_refused"))
    cases += [
        (f"SELECT * FROM '{canary}'", "query_refused"),
        (f"FROM '{canary}'", "query_refused"),
        (f"COPY (SELECT 1) TO '{out}'", "invalid_input"),
        (f"COPY spend TO '{out}' (FORMAT csv)", "invalid_input"),
        (f"EXPORT DATABASE '{folder / 'export'}'", "invalid_input"),
        (f"ATTACH '{db}' AS main_db", "invalid_input"),
        ("DETACH snapshot_0", "invalid_input"),
        ("USE snapshot_0", "invalid_input"),
        ("INSTALL httpfs", "invalid_input"),
        ("LOAD httpfs", "invalid_input"),
        ("SET memory_limit = '100GB'", "invalid_input"),
        ("SET enable_external_access = true", "invalid_input"),
        ("RESET lock_configuration", "invalid_input"),
        ("PRAGMA threads = 64", "invalid_input"),
        ("PRAGMA enable_profiling", "invalid_input"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", "invalid_input"),
        ("SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')", "query_refused"),
        ("SELECT * FROM read_parquet('https://127.0.0.1:9/x.parquet')", "query_refused"),
        ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "query_refused"),
        ("SELECT 1; SELECT 2", "invalid_input"),
        ("SELECT 1; ATTACH 'x.db'", "invalid_input"),
        (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'", "invalid_input"),
        (f"SELECT * FROM query('ATTACH ''{db}'' AS m')", "invalid_input"),
        ("SELECT * FROM query_table('api_keys')", "invalid_input"),
        ("SELECT * FROM api_keys", "invalid_input"),
        ("SELECT * FROM spend_lines", "invalid_input"),
        ("CREATE TABLE t AS SELECT 1", "invalid_input"),
        ("CHECKPOINT", "invalid_input"),
        ("CALL duckdb_secrets()", "invalid_input"),
    ]
    return cases


def test_every_escape_is_refused_without_side_effect(api: Api, plant: Path) -> None:
    db = Path(api.settings.db)
    tables_before = _tables(api)
    failures = []
    for sql, code in _escapes(plant, db):
        response = api.client.post("/v1/sql", json={"sql": sql}, headers=api.headers("engineer"))
        body = response.json()
        if not (400 <= response.status_code < 500 and body.get("code") == code) or CANARY_TEXT in response.text:
            failures.append((sql, response.status_code, body))
    assert failures == []
    assert sorted(p.name for p in plant.iterdir()) == ["canary.csv"]
    assert (plant / "canary.csv").read_text() == f"secret\n{CANARY_TEXT}\n"
    assert _tables(api) == tables_before


def _tables(api: Api) -> list[object]:
    body = api.client.post(
        "/v1/sql",
        json={"sql": "SELECT database_name, table_name FROM duckdb_tables() ORDER BY ALL"},
        headers=api.headers("admin"),
    ).json()
    return body["rows"]


def test_configuration_is_locked_and_external_access_off(api: Api) -> None:
    sql = (
        "SELECT current_setting('enable_external_access') AS ext, current_setting('lock_configuration') AS locked, "
        "current_setting('autoinstall_known_extensions') AS install, "
        "current_setting('python_enable_replacements') AS py"
    )
    body = api.client.post("/v1/sql", json={"sql": sql}, headers=api.headers("engineer")).json()
    assert body["rows"] == [[False, True, False, False]]


def test_only_snapshots_are_attached(api: Api) -> None:
    body = api.client.post(
        "/v1/sql",
        json={"sql": "SELECT path FROM duckdb_databases() WHERE path IS NOT NULL"},
        headers=api.headers("engineer"),
    ).json()
    paths = [row[0] for row in body["rows"]]
    assert paths and all(str(api.settings.sql_snapshot_dir) in p for p in paths)
    assert str(api.settings.db) not in paths


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELECT count(*) FROM range(1e12::BIGINT) a CROSS JOIN range(1e12::BIGINT) b",
    ],
)
def test_runaway_query_stops_at_the_time_limit(api: Api, sql: str) -> None:
    started = time.monotonic()
    response = api.client.post("/v1/sql", json={"sql": sql}, headers=api.headers("engineer"))
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The query ran longer than 2000 ms and was stopped. The limit is FINOPS_SQL_TIME_LIMIT_MS.",
        "code": "query_timeout",
        "time_limit_ms": 2000,
    }
    assert elapsed < 2.0 + 0.5 + 0.5  # limit + the 0.5 s budget + TestClient overhead on a busy machine


def test_allocation_past_the_memory_limit_is_stopped(api: Api) -> None:
    response = api.client.post(
        "/v1/sql", json={"sql": "SELECT length(repeat('x', 2000000000))"}, headers=api.headers("engineer")
    )
    assert response.status_code == 400
    assert response.json()["code"] == "query_too_large"


def test_result_over_the_row_cap_is_truncated(api: Api) -> None:
    body = api.client.post(
        "/v1/sql", json={"sql": "SELECT * FROM range(1e12::BIGINT)", "max_rows": 5}, headers=api.headers("engineer")
    ).json()
    assert body == {"columns": ["range"], "types": ["BIGINT"], "rows": [[0], [1], [2], [3], [4]], "truncated": True}


def test_max_rows_over_the_setting_is_refused(api: Api) -> None:
    response = api.client.post("/v1/sql", json={"sql": "SELECT 1", "max_rows": 10**9}, headers=api.headers("engineer"))
    assert response.json() == {
        "detail": "max_rows is above the most rows a query returns (10000). The limit is FINOPS_SQL_MAX_ROWS.",
        "code": "invalid_input",
        "max_rows": 10000,
    }


def test_typical_aggregate_returns_exact_decimals(api: Api) -> None:
    body = api.client.post(
        "/v1/sql",
        json={"sql": "SELECT team, sum(cost_usd) AS cost FROM spend GROUP BY 1 ORDER BY 1"},
        headers=api.headers("engineer"),
    ).json()
    assert body["rows"] == [["alpha", "0.600000000000"], ["bravo", "18802.202520000000"]]
    assert body["types"] == ["VARCHAR", "DECIMAL(38,12)"]
