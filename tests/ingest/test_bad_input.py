"""Bad input never stops a file and is never lost: each bad line is a `rejected_usage` row with its line,
its text, a reason, and a message saying what came and what was expected."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from finops.ingest import sniff_for
from finops.ingest.readers import open_input
from finops.ingest.sources import get_adapter
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file


def line(request_id: str = "r1", **fields: Any) -> str:
    """One canonical gateway record as a JSON line; `None` drops a field."""
    record: dict[str, Any] = {
        "request_id": request_id,
        "ts": "2026-10-01T10:00:00Z",
        "model": "gpt-4o-2024-08-06",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def rejects(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT line_number, reason, message, raw FROM rejected_usage ORDER BY line_number")


def assert_balanced(db: Database) -> None:
    for batch in rows(db, "SELECT * FROM ingest_batches"):
        assert batch["lines"] == batch["accepted"] + batch["duplicates"] + batch["rejected"], batch


@pytest.mark.parametrize(
    ("fields", "reason", "message"),
    [
        ({"input_tokens": -3}, "negative_value", "input_tokens is -3; expected a non-negative integer"),
        ({"output_tokens": 1.5}, "fractional_value", "output_tokens is 1.5; expected a non-negative integer"),
        ({"input_tokens": "12"}, "wrong_type", 'input_tokens is "12"; expected a non-negative integer'),
        ({"input_tokens": True}, "wrong_type", "input_tokens is true; expected a non-negative integer"),
        ({"cached_input_tokens": [1]}, "wrong_type", "cached_input_tokens is [1]; expected a non-negative integer"),
        (
            {"input_tokens": 10**13 + 1},
            "invalid_value",
            "input_tokens is 10000000000001; expected a non-negative integer of at most 1e13",
        ),
        ({"request_id": None}, "missing_field", "request_id is missing"),
        ({"ts": None}, "missing_field", "ts is missing"),
        ({"model": None}, "missing_field", "model is missing"),
        ({"model": ""}, "missing_field", "model is empty"),
        ({"input_tokens": None}, "missing_field", "input_tokens is missing"),
        ({"output_tokens": None}, "missing_field", "output_tokens is missing"),
        ({"ts": "2026-10-01T10:00:00"}, "naive_timestamp", 'ts is "2026-10-01T10:00:00"; expected a timestamp with'),
        ({"ts": "yesterday"}, "invalid_timestamp", 'ts is "yesterday"; expected an RFC 3339 timestamp'),
        ({"ts": "2026-10-01T10:00:00+25:00"}, "invalid_timestamp", "expected a UTC offset from -14:00 to +14:00"),
        ({"ts": "2026-10-01T10:00:00+05:75"}, "invalid_timestamp", "with minutes under 60, or Z"),
        ({"ts": "2026-10-01 10:00:00.5-1500"}, "invalid_timestamp", "expected a UTC offset from -14:00 to +14:00"),
        ({"ts": "2099-01-01T00:00:00Z"}, "future_timestamp", "no later than the ingest time"),
        ({"ts": 1759312}, "implausible_timestamp", "a time after FINOPS_MIN_TIMESTAMP"),
        ({"cost_usd": "NaN"}, "invalid_number", 'cost_usd is "NaN"; expected a non-negative decimal number'),
        ({"cost_usd": "Infinity"}, "invalid_number", 'cost_usd is "Infinity"'),
        ({"cost_usd": "$3"}, "invalid_number", 'cost_usd is "$3"'),
        ({"cost_usd": "1,234.5"}, "invalid_number", 'cost_usd is "1,234.5"'),
        ({"cost_usd": -0.5}, "negative_value", "cost_usd is -0.5"),
        ({"cost_usd": 1, "currency": "EUR"}, "unsupported_currency", "currency is EUR; expected USD, or a rate"),
        (
            {"cached_input_tokens": 900, "cache_write_tokens": 200},
            "token_invariant",
            "cached_input_tokens (900) + cache_write_tokens (200) exceed input_tokens (1000)",
        ),
        ({"reasoning_tokens": 201}, "token_invariant", "reasoning_tokens (201) exceed output_tokens (200)"),
        ({"status": "ok"}, "invalid_value", 'status is "ok"; expected an HTTP status code'),
        ({"status": 999}, "invalid_value", "status is 999"),
        ({"attempt": 0}, "invalid_value", "attempt is 0; expected an integer of at least 1"),
        ({"service_tier": "turbo"}, "invalid_value", "service_tier is turbo; expected one of default, batch, flex"),
        ({"tags": "team=a"}, "wrong_type", 'tags is "team=a"; expected a JSON object'),
    ],
)
def test_bad_field_rejected_with_reason_and_message(
    db: Database, tmp_path: Path, fields: dict[str, Any], reason: str, message: str
) -> None:
    bad = line(**{"request_id": "bad", **fields})
    path = write_file(tmp_path, "g.jsonl", "\n".join([line("ok1"), bad, line("ok2")]) + "\n")

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (3, 2, 1)
    [reject] = rejects(db)
    assert reject["line_number"] == 2
    assert reject["reason"] == reason
    assert message in reject["message"]
    assert reject["raw"] == bad
    assert_balanced(db)


def test_invalid_json_mid_file_keeps_other_lines_and_line_numbers(db: Database, tmp_path: Path) -> None:
    content = "\n".join([line("a"), line("b"), '{"request_id": "c", oops', line("d"), "", line("e")]) + "\n"
    path = write_file(tmp_path, "g.jsonl", content)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (5, 4, 1)
    assert rejects(db) == [
        {
            "line_number": 3,
            "reason": "invalid_json",
            "raw": '{"request_id": "c", oops',
            "message": 'the line is not valid JSON: \'{"request_id": "c", oops\'; expected one JSON object per line',
        }
    ]
    assert [r["request_id"] for r in rows(db, "SELECT request_id FROM usage ORDER BY 1")] == ["a", "b", "d", "e"]


@pytest.mark.parametrize("name", ["g.jsonl", "g.json", "g.log"])
@pytest.mark.parametrize("first", ["oops", "42", "id,ts,model"])
def test_a_broken_first_line_rejects_that_line_not_the_file(
    db: Database, tmp_path: Path, name: str, first: str
) -> None:
    # the format is known from the name, or from the lines that follow: one bad first line is not CSV
    path = write_file(tmp_path, name, "\n".join([first, line("a"), line("b"), line("c")]) + "\n")

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (4, 3, 1)
    assert [(r["line_number"], r["raw"]) for r in rejects(db)] == [(1, first)]


def test_json_nested_deeper_than_python_parses_is_a_rejected_line(db: Database, tmp_path: Path) -> None:
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    path = write_file(tmp_path, "g.jsonl", deep + "\n" + line("a") + "\n")

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (2, 1, 1)


def test_parquet_counts_beyond_the_limit_reject_their_record_not_the_file(db: Database, tmp_path: Path) -> None:
    # two counts near the 64-bit maximum: checking cached <= input must not overflow and abort the file
    big = 2**63 - 1
    records = [json.loads(line("big", input_tokens=big, cached_input_tokens=big)), json.loads(line("ok"))]
    path = tmp_path / "g.parquet"
    pl.DataFrame(records).write_parquet(path)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (2, 1, 1)
    assert rejects(db)[0]["message"].startswith(f"input_tokens is {big}; expected a non-negative integer of at most")


def test_truncated_last_line_is_rejected_as_truncated(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n" + line("b")[:25])

    report = ingest_one(db, path, "gateway")

    assert (report.accepted, report.rejected) == (1, 1)
    assert rejects(db)[0]["reason"] == "truncated_line"
    assert rejects(db)[0]["line_number"] == 2


def test_no_trailing_newline_loads_the_last_line(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n" + line("b"))

    assert ingest_one(db, path, "gateway").accepted == 2


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.json"])
def test_empty_file_reads_zero_lines(db: Database, tmp_path: Path, name: str) -> None:
    report = ingest_one(db, write_file(tmp_path, name, ""), "gateway")

    assert (report.lines, report.accepted, report.rejected) == (0, 0, 0)
    assert rows(db, "SELECT lines FROM ingest_batches") == [{"lines": 0}]


def test_header_only_csv_reads_zero_lines(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.csv", "request_id,ts,model,input_tokens,output_tokens\n")

    assert ingest_one(db, path, "gateway").lines == 0


@pytest.mark.parametrize("name", ["g.jsonl", "g.csv"])
def test_byte_order_mark_and_crlf_are_read(db: Database, tmp_path: Path, name: str) -> None:
    if name.endswith(".jsonl"):
        body = "\r\n".join([line("a"), line("b")]) + "\r\n"
    else:
        body = (
            "request_id,ts,model,input_tokens,output_tokens\r\na,2026-10-01T10:00:00Z,gpt-4o,10,1\r\n"
            "b,2026-10-01T10:00:00Z,gpt-4o,10,1\r\n"
        )
    path = write_file(tmp_path, name, b"\xef\xbb\xbf" + body.encode())

    report = ingest_one(db, path, "gateway")

    assert (report.accepted, report.rejected) == (2, 0)
    assert {r["request_id"] for r in rows(db, "SELECT request_id FROM usage")} == {"a", "b"}


def test_csv_quoted_newline_does_not_shift_line_numbers(db: Database, tmp_path: Path) -> None:
    content = (
        "request_id,ts,model,input_tokens,output_tokens,team\n"
        'a,2026-10-01T10:00:00Z,gpt-4o,10,1,"search\nteam"\n'
        "b,2026-10-01T10:00:00Z,gpt-4o,-1,1,x\n"
        "c,2026-10-01T10:00:00Z,gpt-4o\n"
        "d,2026-10-01T10:00:00Z,gpt-4o,abc,1,x\n"
    )
    path = write_file(tmp_path, "g.csv", content)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (4, 1, 3)
    assert [(r["line_number"], r["reason"], r["raw"]) for r in rejects(db)] == [
        (4, "negative_value", "b,2026-10-01T10:00:00Z,gpt-4o,-1,1,x"),
        (5, "csv_structure", "c,2026-10-01T10:00:00Z,gpt-4o"),
        (6, "wrong_type", "d,2026-10-01T10:00:00Z,gpt-4o,abc,1,x"),
    ]
    assert rows(db, "SELECT team FROM usage") == [{"team": "search\nteam"}]


@pytest.mark.parametrize("name", ["g.jsonl", "g.csv"])
def test_latin1_byte_rejects_only_its_line(db: Database, tmp_path: Path, name: str) -> None:
    if name.endswith(".jsonl"):
        latin1 = line("b", team="caf\xe9").replace("\\u00e9", "\xe9").encode("latin-1")
        body = line("a").encode() + b"\n" + latin1 + b"\n" + line("c").encode()
    else:
        body = (
            b"request_id,ts,model,input_tokens,output_tokens,team\n"
            b"a,2026-10-01T10:00:00Z,gpt-4o,10,1,x\nb,2026-10-01T10:00:00Z,gpt-4o,10,1,caf\xe9\n"
            b"c,2026-10-01T10:00:00Z,gpt-4o,10,1,x\n"
        )
    path = write_file(tmp_path, name, body)

    report = ingest_one(db, path, "gateway")

    assert (report.accepted, report.rejected) == (2, 1)
    [reject] = rejects(db)
    assert reject["reason"] == "invalid_encoding"
    assert reject["line_number"] == (2 if name.endswith(".jsonl") else 3)
    assert "caf\ufffd" in reject["raw"]


def test_unknown_extra_fields_are_kept_not_rejected(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a", region="eu-west", sdk={"name": "py", "v": 2}, empty=None) + "\n")

    report = ingest_one(db, path, "gateway")

    assert report.accepted == 1
    assert json.loads(rows(db, "SELECT extra FROM usage")[0]["extra"]) == {
        "region": "eu-west",
        "sdk": {"name": "py", "v": 2},
    }


def test_every_offset_some_place_has_is_read_exactly(db: Database, tmp_path: Path) -> None:
    stamps = [
        "2026-10-01T10:00:00+05:45",
        "2026-10-01T10:00:00-1200",
        "2026-10-01 10:00:00+14",
        "2026-10-01T10:00Z",
        "2026-10-01t11:00:00z",  # RFC 3339 allows lower case
        "2016-12-31T23:59:60Z",  # a leap second: the last microsecond of its minute
    ]
    path = write_file(tmp_path, "g.jsonl", "\n".join(line(f"r{i}", ts=ts) for i, ts in enumerate(stamps)) + "\n")

    assert ingest_one(db, path, "gateway").accepted == 6
    assert [
        r[0] for r in db.fetchall("SELECT strftime(ts, '%Y-%m-%d %H:%M:%S.%f') FROM usage ORDER BY request_id")
    ] == [
        "2026-10-01 04:15:00.000000",
        "2026-10-01 22:00:00.000000",
        "2026-09-30 20:00:00.000000",
        "2026-10-01 10:00:00.000000",
        "2026-10-01 11:00:00.000000",
        "2016-12-31 23:59:59.999999",
    ]


def test_naive_timestamp_accepted_in_the_declared_zone(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a", ts="2026-10-01T20:30:00") + "\n")

    ingest_one(db, path, "gateway", zone="America/Los_Angeles")

    [row] = rows(db, "SELECT CAST(ts AS VARCHAR) AS ts, charge_day FROM usage")
    assert row["ts"] == "2026-10-02 03:30:00+00"
    assert str(row["charge_day"]) == "2026-10-02"


def test_epoch_seconds_and_milliseconds_mean_the_same_instant(db: Database, tmp_path: Path) -> None:
    content = "\n".join([line("s", ts=1790000000), line("ms", ts=1790000000000), line("f", ts=1790000000.25)])
    ingest_one(db, write_file(tmp_path, "g.jsonl", content + "\n"), "gateway")

    got = {r["request_id"]: r["ts"] for r in rows(db, "SELECT request_id, CAST(ts AS VARCHAR) AS ts FROM usage")}
    assert got == {"s": "2026-09-21 14:13:20+00", "ms": "2026-09-21 14:13:20+00", "f": "2026-09-21 14:13:20.25+00"}


def test_other_currency_converted_exactly_with_a_declared_rate(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a", cost_usd="0.10", currency="EUR") + "\n")

    ingest_one(db, path, "gateway", fx_rates={"EUR": Decimal("1.0825")})

    assert rows(db, "SELECT reported_cost_usd FROM usage") == [{"reported_cost_usd": Decimal("0.108250000000")}]


def test_tiny_cost_is_kept_exactly(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a", cost_usd=0.00022500000000000002) + "\n" + line("b", cost_usd=1e-7))

    ingest_one(db, path, "gateway")

    got = {r["request_id"]: r["reported_cost_usd"] for r in rows(db, "SELECT request_id, reported_cost_usd FROM usage")}
    assert got == {"a": Decimal("0.000225000000"), "b": Decimal("0.000000100000")}


def test_not_an_object_line_is_rejected(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + '\n[1, 2]\n"text"\n')

    report = ingest_one(db, path, "gateway")

    assert (report.accepted, report.rejected) == (1, 2)
    assert [r["message"] for r in rejects(db)] == [
        "the record is [1, 2]; expected a JSON object",
        'the record is "text"; expected a JSON object',
    ]


def test_a_key_first_seen_after_the_reader_sample_is_still_kept(db: Database, tmp_path: Path) -> None:
    # the fast reader learns the keys from the first 20,480 records; a key met later must not be dropped
    body = "\n".join(line(f"r{i}") for i in range(20_600)) + "\n" + line("late", region="eu", cost_usd="0.5") + "\n"

    report = ingest_one(db, write_file(tmp_path, "g.jsonl", body), "gateway")

    assert (report.lines, report.accepted, report.rejected) == (20_601, 20_601, 0)
    [late] = rows(db, "SELECT extra, reported_cost_usd FROM usage WHERE request_id = 'late'")
    assert (json.loads(late["extra"]), late["reported_cost_usd"]) == ({"region": "eu"}, Decimal("0.500000000000"))


def test_the_shallow_reader_probe_types_as_the_file_reads(db: Database, tmp_path: Path) -> None:
    # the stage DESCRIBEs the probe instead of sampling the file again: the two must type every column alike
    body = "\n".join(
        [
            line("a", tags={"team": "x"}, attempt=2, status="timeout", cost_usd="0.5", currency="EUR"),
            line("b", region="eu", latency_ms=12.5, reasoning_tokens=None, nested={"k": [1, 2]}),
        ]
    )
    path = write_file(tmp_path, "g.jsonl", body + "\n")
    adapter = get_adapter("gateway")
    file, _ = sniff_for(path, adapter, str(path), "files")
    relation = open_input(db, file, adapter)

    assert relation.probe_sql is not None
    real = db.fetchall(f"DESCRIBE {relation.sql}", relation.params)
    probe = db.fetchall(f"DESCRIBE {relation.probe_sql}")
    assert [r[:2] for r in probe] == [r[:2] for r in real]
    assert db.fetchall(f"SELECT count(*) FROM ({relation.probe_sql})") == [(0,)]
