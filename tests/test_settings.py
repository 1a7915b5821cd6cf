"""Settings: a bad FINOPS_* value stops the command at startup with one sentence naming the variable, never
later as an internal error (a DuckDB parser error, a date overflow, an overflowing wait)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from finops.cli import main
from finops.errors import ConfigError
from finops.ingest import IngestOptions
from finops.settings import load_settings
from finops.store.db import connect
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_bad_input import line

MEMORY_EXPECTED = (
    "Expected a DuckDB memory size from 64MB to 1000TB, such as 3GB, 500MB or 4GiB, "
    "or a share of the machine's memory from 0% (exclusive) to 100%, such as 75%."
)
TIME_EXPECTED = (
    "Expected an ISO 8601 date or date and time, such as 2015-01-01 or 2015-01-01T00:00:00Z "
    "(UTC when no offset is given)."
)


def test_defaults_load() -> None:
    settings = load_settings()

    assert (settings.memory_limit, settings.min_timestamp) == ("3GB", "2015-01-01")


# ------------------------------------------------------------------------------------------ memory limit


@pytest.mark.parametrize("value", ["3GB", "500MB", "75%", "100%", "4GiB", "2 GB", "1.5gb", "64MB", "3g", "1TB"])
def test_memory_limit_accepts_duckdb_sizes_and_duckdb_opens_with_them(tmp_path: Path, value: str) -> None:
    settings = load_settings(db=tmp_path / "f.duckdb", memory_limit=value)

    with connect(settings) as db:
        [row] = rows(db, "SELECT current_setting('memory_limit') AS limit")

    assert settings.memory_limit == value
    assert row["limit"]


@pytest.mark.parametrize(
    "value", ["lots", "1", "", "64", "1KB", "10MB", "0GB", "150%", "0%", "3GBs", "-1", "none", "2000TB", "3,5GB"]
)
def test_memory_limit_not_a_size_stops_at_startup_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FINOPS_MEMORY_LIMIT", value)

    with pytest.raises(ConfigError) as info:
        load_settings()

    assert str(info.value) == f"FINOPS_MEMORY_LIMIT has value {value!r}. {MEMORY_EXPECTED}"
    assert info.value.context == {"setting": "FINOPS_MEMORY_LIMIT"}


def test_memory_limit_bad_value_is_one_sentence_and_exit_1_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FINOPS_MEMORY_LIMIT", "lots")

    with pytest.raises(SystemExit) as exited:
        main(["--db", str(tmp_path / "f.duckdb"), "sql", "SELECT 1"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: FINOPS_MEMORY_LIMIT has value 'lots'. {MEMORY_EXPECTED}\n"


# ------------------------------------------------------------------------------------------ min timestamp


@pytest.mark.parametrize("value", ["notadate", "2026-02-30", "2015-13-01", "yesterday", "", "2015-01-01 25:00"])
def test_min_timestamp_not_an_iso_time_stops_at_startup_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FINOPS_MIN_TIMESTAMP", value)

    with pytest.raises(ConfigError, match="^FINOPS_MIN_TIMESTAMP has value") as info:
        load_settings()

    assert str(info.value) == f"FINOPS_MIN_TIMESTAMP has value {value!r}. {TIME_EXPECTED}"


def test_min_timestamp_bad_value_is_one_sentence_and_exit_1_for_ingest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n")
    monkeypatch.setenv("FINOPS_MIN_TIMESTAMP", "notadate")

    with pytest.raises(SystemExit) as exited:
        main(["--db", str(tmp_path / "f.duckdb"), "ingest", str(path), "--source", "gateway"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: FINOPS_MIN_TIMESTAMP has value 'notadate'. {TIME_EXPECTED}\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2015-01-01", "2015-01-01"),
        ("2020-06-01T12:30:00", "2020-06-01T12:30:00"),
        ("2020-06-01T12:30:00Z", "2020-06-01T12:30:00"),
        ("2020-06-01T12:30:00+02:00", "2020-06-01T10:30:00"),
        (" 2015-01-01 ", "2015-01-01"),
    ],
)
def test_min_timestamp_is_kept_as_a_utc_time(value: str, expected: str) -> None:
    assert load_settings(min_timestamp=value).min_timestamp == expected


def test_min_timestamp_with_an_offset_rejects_at_its_utc_instant(tmp_path: Path) -> None:
    settings = load_settings(db=tmp_path / "f.duckdb", min_timestamp="2026-10-01T12:00:00+02:00")
    before, after = "2026-10-01T09:59:59Z", "2026-10-01T10:00:00Z"  # the bound is 10:00 UTC
    path = write_file(tmp_path, "g.jsonl", line("a", ts=before) + "\n" + line("b", ts=after) + "\n")
    now = datetime(2026, 10, 2, tzinfo=UTC)

    with connect(settings) as db:
        report = ingest_one(db, path, "gateway", min_timestamp=settings.min_timestamp, now=now)

    assert (report.accepted, report.rejected_by_reason) == (1, {"implausible_timestamp": 1})
    assert IngestOptions(min_timestamp=settings.min_timestamp).min_timestamp == "2026-10-01T10:00:00"


# ------------------------------------------------------------------------------------------ upper bounds


@pytest.mark.parametrize(
    ("variable", "value", "limit"),
    [
        # DuckDB intervals end near 9e12 s: "Interval value ... out of range" on every ingest
        ("FINOPS_MAX_FUTURE_S", "100000000000000000", 3_153_600_000),
        # today minus that many days is before year 1: OverflowError in finops run
        ("FINOPS_DETECT_HORIZON_DAYS", "100000000", 3660),
        ("FINOPS_DETECT_HISTORY_DAYS", "1000000", 3660),
        # an overflowing select() / Event.wait(): a 500 from POST /v1/sql, no time limit on /v1/spend
        ("FINOPS_SQL_TIME_LIMIT_MS", "100000000000000000", 3_600_000),
        ("FINOPS_API_QUERY_TIME_LIMIT_MS", "100000000000000000", 3_600_000),
        # LIMIT $limit beyond BIGINT: a 500 from /v1/spend
        ("FINOPS_API_MAX_ROWS", "100000000000000000000", 10_000_000),
        ("FINOPS_SQL_MAX_ROWS", "100000000000000000000", 10_000_000),
        # DuckDB starting 1e8 threads: the process is killed
        ("FINOPS_THREADS", "100000000", 1024),
        # thread stacks beyond the worker's memory allowance, a memory rlimit beyond C long: workers never start
        ("FINOPS_SQL_THREADS", "512", 32),
        ("FINOPS_SQL_MEMORY_LIMIT_MB", "100000000000000", 16_777_216),
        ("FINOPS_SQL_TEMP_LIMIT_MB", "100000000000000000", 16_777_216),
        ("FINOPS_SQL_WORKERS", "100000", 64),
    ],
)
def test_value_a_later_step_cannot_use_stops_at_startup(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, limit: int
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as info:
        load_settings()

    assert str(info.value) == f"{variable} has value {value!r}. Input should be less than or equal to {limit}."
