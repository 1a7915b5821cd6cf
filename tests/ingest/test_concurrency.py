"""Two processes and one database: a second writer waits briefly or fails with a sentence naming the holder;
a `kill -9` mid-ingest leaves every acknowledged file complete and no partial file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

HOLD = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def finops(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )  # type: ignore[call-overload]


def write_jsonl(path: Path, rows: int, prefix: str) -> Path:
    duckdb.sql(f"""
        COPY (SELECT '{prefix}-' || i AS request_id,
                     strftime(TIMESTAMP '2026-10-01' + to_seconds(i % 86400), '%Y-%m-%dT%H:%M:%SZ') AS ts,
                     'gpt-4o-mini' AS model, 100 + i % 50 AS input_tokens, 10 + i % 7 AS output_tokens,
                     'team-' || (i % 5) AS team
              FROM range({rows}) t(i))
        TO '{path}' (FORMAT json)""")
    return path


def hold_database(db_path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db_path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()


def test_second_writer_fails_with_a_sentence_naming_the_holder(tmp_path: Path) -> None:
    db_path = tmp_path / "spend.duckdb"
    data = write_jsonl(tmp_path / "g.jsonl", 10, "a")
    holder = hold_database(db_path, 30)
    try:
        done = finops(
            "--db", str(db_path), "ingest", str(data), "--source", "gateway", env={"FINOPS_LOCK_TIMEOUT_S": "0.5"}
        )
    finally:
        stop(holder)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"(PID {holder.pid})" in done.stderr
    assert "FINOPS_LOCK_TIMEOUT_S" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_second_writer_waits_for_a_short_lock(tmp_path: Path) -> None:
    db_path = tmp_path / "spend.duckdb"
    data = write_jsonl(tmp_path / "g.jsonl", 10, "a")
    holder = hold_database(db_path, 1.0)
    try:
        time.sleep(0.1)
        done = finops(
            "--db", str(db_path), "ingest", str(data), "--source", "gateway", env={"FINOPS_LOCK_TIMEOUT_S": "20"}
        )
    finally:
        stop(holder)

    assert done.returncode == 0, done.stderr
    assert "10 accepted" in done.stdout


def test_two_concurrent_ingests_both_complete(tmp_path: Path) -> None:
    db_path = tmp_path / "spend.duckdb"
    files = [write_jsonl(tmp_path / f"g{i}.jsonl", 50_000, f"p{i}") for i in range(2)]
    env = {**os.environ, "FINOPS_LOCK_TIMEOUT_S": "120"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "finops", "--db", str(db_path), "ingest", str(f), "--source", "gateway"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    results = [p.communicate(timeout=300) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM usage_events").fetchall() == [(100_000,)]


def test_kill_during_ingest_leaves_only_complete_files(tmp_path: Path) -> None:
    db_path = tmp_path / "spend.duckdb"
    files = [write_jsonl(tmp_path / f"g{i}.jsonl", 150_000, f"k{i}") for i in range(8)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "finops", "--db", str(db_path), "ingest", *map(str, files), "--source", "gateway"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acknowledged = []
    assert proc.stdout is not None
    while len(acknowledged) < 2:
        report = proc.stdout.readline()
        assert report, proc.stderr.read() if proc.stderr else ""
        acknowledged.append(report.split(" [gateway]")[0])
    time.sleep(0.3)  # well inside the next file
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()

    with duckdb.connect(str(db_path)) as con:  # opens cleanly, replaying the WAL
        batches = dict(con.execute("SELECT source_file, accepted FROM ingest_batches").fetchall())
        per_batch = dict(
            con.execute(
                "SELECT b.source_file, count(u.batch_id) FROM ingest_batches b "
                "LEFT JOIN usage_events u USING (batch_id) GROUP BY ALL"
            ).fetchall()
        )
        orphans = con.execute(
            "SELECT count(*) FROM usage_events WHERE batch_id NOT IN (SELECT batch_id FROM ingest_batches)"
        ).fetchall()

    assert set(acknowledged) <= set(batches)
    assert len(batches) < len(files), "the kill came too late to test anything"
    assert per_batch == batches == {f: 150_000 for f in batches}
    assert orphans == [(0,)]
