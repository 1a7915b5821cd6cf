"""Broken files: a gzip file cut off or damaged. What can be read is read, the rest is rejected with its line
and a reason, the counts add up, and the files after it are ingested."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.ingest import IngestOptions, ingest_paths
from finops.jobs import WatchedFolder, ingest_watched
from finops.settings import Settings
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

REPO = Path(__file__).resolve().parents[2]
SPEND_LOGS = REPO / "fixtures" / "raw" / "litellm" / "spend_logs.csv"
CSV_HEADER = "request_id,ts,model,input_tokens,output_tokens,team,tags\n"


def record(i: int) -> dict[str, Any]:
    return {
        "request_id": f"z{i}",
        "ts": "2026-10-01T00:00:00Z",
        "model": "gpt-4o",
        "input_tokens": i,
        "output_tokens": 5,
        "team": "t" * (i % 50),  # lines of different lengths, so a cut falls anywhere in a line
    }


def jsonl(n: int) -> bytes:
    return "".join(json.dumps(record(i)) + "\n" for i in range(n)).encode()


def csv_text(n: int) -> bytes:
    return (CSV_HEADER + "".join(f"c{i},2026-10-01T00:00:00Z,gpt-4o,{i},5,t{i % 7},\n" for i in range(n))).encode()


def truncated(data: bytes) -> bytes:
    """`data` gzipped, then cut in half (a partial download)."""
    compressed = gzip.compress(data)
    return compressed[: len(compressed) // 2]


def damaged(data: bytes) -> bytes:
    """`data` gzipped with one byte in the middle flipped (zlib finds it by the CRC only)."""
    compressed = bytearray(gzip.compress(data))
    compressed[len(compressed) // 2] ^= 0xFF
    return bytes(compressed)


def readable_lines(compressed: bytes) -> int:
    """The newlines in what zlib can decompress of `compressed`."""
    return zlib.decompressobj(wbits=31).decompress(compressed).count(b"\n")


def rejects(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT line_number, reason, message, raw FROM rejected_usage ORDER BY line_number NULLS FIRST")


def batches(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT source_file, lines, accepted, duplicates, rejected FROM ingest_batches ORDER BY batch_id")


def assert_balanced(db: Database) -> None:
    for batch in batches(db):
        assert batch["lines"] == batch["accepted"] + batch["duplicates"] + batch["rejected"], batch


# ------------------------------------------------------------------------------------------------ gzip


@pytest.mark.parametrize(("name", "make"), [("g.jsonl.gz", jsonl), ("g.csv.gz", csv_text)])
def test_truncated_gzip_keeps_its_complete_lines_and_rejects_the_rest(
    db: Database, tmp_path: Path, name: str, make: Any
) -> None:
    data = truncated(make(20_000))
    complete = readable_lines(data)  # physical lines wholly decompressed (a CSV's header among them)
    path = write_file(tmp_path, name, data)

    report = ingest_one(db, path, "gateway")

    records = complete - (1 if name.endswith(".csv.gz") else 0)
    assert (report.lines, report.accepted, report.rejected) == (records + 1, records, 1)
    [reject] = rejects(db)
    assert reject["reason"] == "unreadable_file"
    assert reject["line_number"] == complete + 1
    assert "the gzip data ends before its end marker: the file is cut off" in reject["message"]
    assert reject["raw"]  # what came of the cut line
    assert db.scalar("SELECT count(*) FROM usage_events") == records
    assert_balanced(db)


@pytest.mark.parametrize(("name", "make"), [("g.jsonl.gz", jsonl), ("g.csv.gz", csv_text)])
def test_damaged_gzip_is_rejected_whole_with_the_reason(db: Database, tmp_path: Path, name: str, make: Any) -> None:
    path = write_file(tmp_path, name, damaged(make(20_000)))

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (1, 0, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (None, "unreadable_file")
    assert "the gzip data is damaged (zlib: incorrect data check)" in reject["message"]
    assert db.scalar("SELECT count(*) FROM usage_events") == 0  # DuckDB alone would have loaded garbage
    assert_balanced(db)


@pytest.mark.parametrize("broken", [truncated, damaged])
def test_a_broken_gzip_file_does_not_stop_the_files_after_it(db: Database, tmp_path: Path, broken: Any) -> None:
    bad = write_file(tmp_path, "a.jsonl.gz", broken(jsonl(20_000)))
    good = write_file(tmp_path, "b.jsonl", json.dumps(record(99_999)) + "\n")

    outcomes = list(ingest_paths(db, [bad, good], "gateway", IngestOptions()))

    assert [o.error for o in outcomes] == [None, None]
    assert [b["source_file"] for b in batches(db)] == [str(bad), str(good)]
    assert db.scalar("SELECT count(*) FROM usage_events WHERE request_id = 'z99999'") == 1
    assert_balanced(db)


def test_the_watch_job_ingests_the_files_after_a_truncated_gzip(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = WatchedFolder(tmp_path / "logs", "gateway")
    write_file(folder.path, "a.jsonl.gz", truncated(jsonl(20_000)))
    good = write_file(folder.path, "b.jsonl", json.dumps(record(99_999)) + "\n")

    report = ingest_watched(db, settings, [folder], settle_s=0)

    assert report.errors == []
    assert str(good) in report.ingested
    assert db.scalar("SELECT count(*) FROM usage_events WHERE request_id = 'z99999'") == 1


def test_a_small_truncated_gzip_is_read_not_refused(db: Database, tmp_path: Path) -> None:
    # smaller than the head the format is told from: the head itself is cut off
    compressed = gzip.compress(jsonl(5))
    path = write_file(tmp_path, "g.jsonl.gz", compressed[:-12])

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (5, 4, 1)
    assert [(r["line_number"], r["reason"]) for r in rejects(db)] == [(5, "unreadable_file")]


def test_gzip_cut_at_a_line_end_still_says_the_rest_is_missing(db: Database, tmp_path: Path) -> None:
    # two gzip members; the second cut inside its header: the readable data ends with a whole line
    data = gzip.compress(jsonl(5)) + gzip.compress(jsonl(10)[len(jsonl(5)) :])[:5]
    path = write_file(tmp_path, "g.jsonl.gz", data)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (6, 5, 1)
    assert [(r["line_number"], r["reason"], r["raw"]) for r in rejects(db)] == [(6, "unreadable_file", "")]


def test_concatenated_gzip_members_and_zero_padding_are_read_whole(db: Database, tmp_path: Path) -> None:
    data = gzip.compress(jsonl(5)) + gzip.compress(jsonl(10)[len(jsonl(5)) :]) + b"\0" * 64
    path = write_file(tmp_path, "g.jsonl.gz", data)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (10, 10, 0)


def test_bytes_after_the_gzip_data_are_rejected_not_dropped(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl.gz", gzip.compress(jsonl(5)) + b"not gzip")

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (6, 5, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (6, "unreadable_file")
    assert "followed by bytes that are not gzip" in reject["message"]


def test_truncated_gzip_json_document_is_rejected_whole(db: Database, tmp_path: Path) -> None:
    document = json.dumps([record(i) for i in range(5_000)]).encode()
    path = write_file(tmp_path, "g.json.gz", truncated(document))

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (1, 0, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (None, "unreadable_file")
    assert "a JSON document cannot be read in part" in reject["message"]


def test_gzip_parquet_is_read_and_a_truncated_one_rejected_whole(db: Database, tmp_path: Path) -> None:
    plain = tmp_path / "p.parquet"
    duckdb.sql(
        "COPY (SELECT 'p' || i AS request_id, '2026-10-01T00:00:00Z' AS ts, 'gpt-4o' AS model, i AS input_tokens, "
        f"1 AS output_tokens FROM range(5000) t(i)) TO '{plain}' (FORMAT parquet)"
    )
    whole = write_file(tmp_path, "whole.parquet.gz", plain.read_bytes(), gzipped=True)
    cut = write_file(tmp_path, "cut.parquet.gz", truncated(plain.read_bytes()))

    assert ingest_one(db, whole, "gateway").accepted == 5000
    report = ingest_one(db, cut, "gateway")

    assert (report.lines, report.rejected) == (1, 1)
    assert "a Parquet file cannot be read in part" in rejects(db)[0]["message"]
