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
