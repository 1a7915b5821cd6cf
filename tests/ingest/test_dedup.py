"""Nothing is counted twice: re-ingests and repeated records are duplicates; a restatement replaces the
old row and keeps it for audit; of two revisions in one file the later wins."""

from __future__ import annotations

import json
from pathlib import Path

from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_bad_input import line


def usage_rows(db: Database) -> dict[str, int]:
    return {r["request_id"]: r["output_tokens"] for r in rows(db, "SELECT request_id, output_tokens FROM usage")}


def test_reingesting_a_file_adds_nothing_and_says_so(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", "\n".join(line(f"r{i}") for i in range(5)) + "\n")
    first = ingest_one(db, path, "gateway")

    again = ingest_one(db, path, "gateway")

    assert (first.accepted, first.duplicates) == (5, 0)
    assert (again.lines, again.accepted, again.duplicates, again.rejected) == (5, 0, 5, 0)
    assert db.scalar("SELECT count(*) FROM usage_events") == 5
    assert db.scalar("SELECT count(*) FROM ingest_batches") == 2


def test_same_record_in_two_files_is_counted_once(db: Database, tmp_path: Path) -> None:
    a = write_file(tmp_path, "a.jsonl", line("x") + "\n" + line("only-a") + "\n")
    b = write_file(tmp_path, "b.jsonl.gz", line("x") + "\n" + line("only-b") + "\n", gzipped=True)

    ingest_one(db, a, "gateway")
    report = ingest_one(db, b, "gateway")

    assert (report.accepted, report.duplicates) == (1, 1)
    assert set(usage_rows(db)) == {"x", "only-a", "only-b"}


def test_identical_record_twice_in_one_file_is_one_row_and_one_duplicate(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl", line("x") + "\n" + line("x") + "\n")

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.duplicates, report.superseded) == (2, 1, 1, 0)
    assert db.scalar("SELECT count(*) FROM usage_events") == 1


def test_restatement_replaces_the_old_row_and_keeps_an_audit_row(db: Database, tmp_path: Path) -> None:
    ingest_one(db, write_file(tmp_path, "pull1.jsonl", line("x", output_tokens=200) + "\n"), "gateway")

    report = ingest_one(db, write_file(tmp_path, "pull2.jsonl", line("x", output_tokens=250) + "\n"), "gateway")

    assert (report.accepted, report.restated, report.duplicates) == (1, 1, 0)
    assert usage_rows(db) == {"x": 250}
    [audit] = rows(db, "SELECT * FROM revisions")
    assert (audit["target_table"], audit["record_key"], audit["old_batch_id"], audit["new_batch_id"]) == (
        "usage_events",
        "x",
        1,
        2,
    )
    assert json.loads(audit["old_row"])["output_tokens"] == 200


def test_two_revisions_in_one_file_keep_the_later(db: Database, tmp_path: Path) -> None:
    content = "\n".join([line("x", output_tokens=1), line("y"), line("x", output_tokens=3)]) + "\n"

    report = ingest_one(db, write_file(tmp_path, "g.jsonl", content), "gateway")

    assert (report.lines, report.accepted, report.duplicates, report.superseded) == (3, 2, 1, 1)
    assert usage_rows(db) == {"x": 3, "y": 200}


def test_rejected_rows_do_not_count_as_revisions(db: Database, tmp_path: Path) -> None:
    content = "\n".join([line("x", output_tokens=5), line("x", output_tokens=-1)]) + "\n"

    report = ingest_one(db, write_file(tmp_path, "g.jsonl", content), "gateway")

    assert (report.accepted, report.rejected, report.duplicates) == (1, 1, 0)
    assert usage_rows(db) == {"x": 5}


def test_every_batch_balances(db: Database, tmp_path: Path) -> None:
    content = "\n".join([line("a"), line("a"), line("b", input_tokens=-1), "{bad", line("c")]) + "\n"
    path = write_file(tmp_path, "g.jsonl", content)
    ingest_one(db, path, "gateway")
    ingest_one(db, path, "gateway")

    for batch in rows(db, "SELECT lines, accepted, duplicates, rejected FROM ingest_batches"):
        assert batch["lines"] == batch["accepted"] + batch["duplicates"] + batch["rejected"] == 5
    assert db.scalar("SELECT count(*) FROM rejected_usage") == 4


def test_new_duplicate_and_restated_records_against_a_large_table(db: Database, tmp_path: Path) -> None:
    """The stored keys are probed with a Bloom filter over a table of two row groups and two batches; a
    restatement that moves the timestamp to another day is still found."""
    stored = [line(f"k{i}", output_tokens=i % 500) for i in range(130_000)]
    ingest_one(db, write_file(tmp_path, "a.jsonl", "\n".join(stored[:70_000]) + "\n"), "gateway")
    ingest_one(db, write_file(tmp_path, "b.jsonl", "\n".join(stored[70_000:]) + "\n"), "gateway")
    later = [
        stored[5],  # duplicates, from both earlier batches
        stored[129_999],
        line("k7", output_tokens=9_999),  # restated
        line("k80000", ts="2026-11-15T08:00:00Z", output_tokens=0),  # restated, on another day
        line("new-1"),
        line("new-2"),
    ]

    report = ingest_one(db, write_file(tmp_path, "c.jsonl", "\n".join(later) + "\n"), "gateway")

    assert (report.lines, report.accepted, report.duplicates, report.restated) == (6, 4, 2, 2)
    assert db.scalar("SELECT count(*) FROM usage_events") == 130_002
    moved = rows(db, "SELECT ts, output_tokens, charge_day FROM usage_events WHERE request_id = 'k80000'")
    assert [(str(r["charge_day"]), r["output_tokens"]) for r in moved] == [("2026-11-15", 0)]
    assert usage_rows(db)["k7"] == 9_999
    audit = rows(db, "SELECT record_key, old_batch_id, new_batch_id FROM revisions ORDER BY record_key")
    assert audit == [
        {"record_key": "k7", "old_batch_id": 1, "new_batch_id": 3},
        {"record_key": "k80000", "old_batch_id": 2, "new_batch_id": 3},
    ]


def test_text_fields_from_json_keep_their_text(db: Database, tmp_path: Path) -> None:
    """JSON strings are unescaped and trimmed; a number or an object in a text field is kept as its JSON text."""
    content = line('q"1\\é', team="  caf\u00e9 ", feature=7, project={"a": [1, 2]}, user=1e-3, environment="") + "\n"

    report = ingest_one(db, write_file(tmp_path, "g.jsonl", content), "gateway")

    assert (report.accepted, report.rejected) == (1, 0)
    [row] = rows(db, 'SELECT request_id, team, feature, project, "user", environment FROM usage_events')
    assert row == {
        "request_id": 'q"1\\é',
        "team": "café",
        "feature": "7",
        "project": '{"a":[1,2]}',
        "user": "0.001",
        "environment": None,
    }
