"""The scheduler: overlapping ticks skipped, one catch-up run at start, jobs on a shared database, watched folders
ingested once per change."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from finops.errors import ConfigError
from finops.jobs import (
    Job,
    WatchedFolder,
    ingest_watched,
    job_table,
    load_scheduler_settings,
    shared_database,
    shutdown,
    start_scheduler,
)
from finops.settings import Settings
from finops.store.db import Database
from tests.alert.conftest import Receiver, alert_settings
from tests.alert.test_deliver import fire
from tests.alert.test_replay import START, record
from tests.helpers import write_file


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_overlapping_ticks_are_skipped_not_doubled(db: Database, settings: Settings) -> None:
    running, most, runs = 0, 0, 0
    lock = threading.Lock()

    def slow(_: Database) -> None:
        nonlocal running, most, runs
        with lock:
            running += 1
            runs += 1
            most = max(most, running)
        time.sleep(0.3)
        with lock:
            running -= 1

    scheduler = start_scheduler(settings, shared_database(db), jobs=(Job("run", 0.05, slow),))
    time.sleep(1.0)  # 20 ticks
    shutdown(scheduler)

    assert most == 1
    assert 1 <= runs <= 5  # one run at a time: about 1.0 / 0.3, not 20


def test_each_job_runs_once_at_start_then_on_its_interval(db: Database, settings: Settings) -> None:
    calls: dict[str, int] = {}

    def count(job_id: str) -> Callable[[Database], None]:
        def run(_: Database) -> None:
            calls[job_id] = calls.get(job_id, 0) + 1

        return run

    scheduler = start_scheduler(settings, shared_database(db), jobs=tuple(Job(j, 3600, count(j)) for j in ("a", "b")))
    wait_for(lambda: len(calls) == 2)
    time.sleep(0.2)
    shutdown(scheduler)

    assert calls == {"a": 1, "b": 1}  # the catch-up run, once each; the next is an interval away


def test_a_failing_job_does_not_stop_the_scheduler(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ran = threading.Event()

    def broken(_: Database) -> None:
        raise RuntimeError("boom")

    scheduler = start_scheduler(
        settings, shared_database(db), jobs=(Job("bad", 3600, broken), Job("good", 3600, lambda _: ran.set()))
    )
    assert ran.wait(5)
    wait_for(lambda: "job bad failed" in caplog.text)
    shutdown(scheduler)


def test_the_real_jobs_ingest_run_and_deliver_on_a_shared_database(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    watched = tmp_path / "logs"
    write_file(watched, "day1.jsonl", record("r1", START + timedelta(hours=1), "support") + "\n")
    old = time.time() - 60
    os.utime(watched / "day1.jsonl", (old, old))
    table = job_table(
        settings,
        load_scheduler_settings(watch=f"{watched}:gateway", ingest_settle_s=0, run_interval_s=3600),
        alert_settings(),
        clock=lambda: START + timedelta(days=1),
    )
    scheduler = start_scheduler(settings, shared_database(db), jobs=table)
    try:
        wait_for(lambda: db.scalar("SELECT count(*) FROM usage_events") == 1)
        wait_for(lambda: db.scalar("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") >= 1, 30)
        assert db.scalar("SELECT count(*) FROM budgets") == 0  # the API can read while jobs run
    finally:
        shutdown(scheduler)
    assert db.scalar("SELECT as_of FROM runs ORDER BY run_id LIMIT 1") == START + timedelta(days=1)


def test_watched_folders_ingest_new_and_changed_files_once(db: Database, settings: Settings, tmp_path: Path) -> None:
    folder = WatchedFolder(tmp_path / "logs", "gateway")
    path = write_file(folder.path, "a.jsonl", record("r1", START, "support") + "\n")

    first = ingest_watched(db, settings, [folder], settle_s=0)
    second = ingest_watched(db, settings, [folder], settle_s=0)
    with path.open("a") as f:
        f.write(record("r2", START, "support") + "\n")
    third = ingest_watched(db, settings, [folder], settle_s=0)
    fresh = write_file(folder.path, "b.jsonl", record("r3", START, "support") + "\n")
    fourth = ingest_watched(db, settings, [folder], settle_s=3600)  # just written: left to settle

    assert (first.ingested, second.ingested, second.unchanged) == ([str(path)], [], 1)
    assert third.ingested == [str(path)]
    assert (fourth.ingested, fourth.settling, fresh.exists()) == ([], 1, True)
    batches = db.execute("SELECT accepted, duplicates FROM ingest_batches ORDER BY batch_id")
    assert batches == [(1, 0), (1, 1)]  # the changed file re-read: its old line counted as a duplicate
    assert db.scalar("SELECT count(*) FROM usage_events") == 2


def test_a_file_under_a_linked_folder_is_ingested_once_not_on_every_scan(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # hunt G 1: found by its resolved path, outside the watched folder's own, it was taken for new each scan
    archive = tmp_path / "archive"
    path = write_file(archive, "a.jsonl", record("r1", START, "support") + "\n")
    folder = WatchedFolder(tmp_path / "logs", "gateway")
    folder.path.mkdir()
    (folder.path / "archive").symlink_to(archive, target_is_directory=True)

    scans = [ingest_watched(db, settings, [folder], settle_s=0) for _ in range(3)]

    assert [s.ingested for s in scans] == [[str(path.resolve())], [], []]
    assert db.scalar("SELECT count(*) FROM ingest_batches") == 1


def test_a_file_whose_writer_paused_mid_line_waits_before_it_is_read(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # hunt G 5: a writer pausing longer than the settle time got its file read half-written
    folder = WatchedFolder(tmp_path / "logs", "gateway")
    line = record("r1", START, "support")
    path = write_file(folder.path, "a.jsonl", line[:40])
    os.utime(path, (time.time() - 30, time.time() - 30))  # settled for 30 s, but mid-line

    waiting = ingest_watched(db, settings, [folder], settle_s=1)
    path.write_text(line + "\n")
    os.utime(path, (time.time() - 30, time.time() - 30))
    done = ingest_watched(db, settings, [folder], settle_s=1)

    assert (waiting.ingested, waiting.settling) == ([], 1)
    assert done.ingested == [str(path)]
    assert db.scalar("SELECT count(*) FROM rejected_usage") == 0


@pytest.mark.parametrize(
    ("field", "value"), [("run_interval_s", "inf"), ("ingest_interval_s", "1e12"), ("ingest_settle_s", "nan")]
)
def test_an_interval_no_trigger_can_hold_is_refused_at_load(field: str, value: str) -> None:
    # hunt G 3: inf or 1e12 passed, then `finops serve` died with a traceback at startup
    with pytest.raises(ConfigError, match=f"FINOPS_SCHEDULER_{field.upper()} has value '{value}'"):
        load_scheduler_settings(**{field: value})


def test_watch_setting_is_checked_at_load(tmp_path: Path) -> None:
    settings = load_scheduler_settings(watch=f"{tmp_path}/a:gateway, {tmp_path}/b:auto")
    assert settings.folders() == [WatchedFolder(tmp_path / "a", "gateway"), WatchedFolder(tmp_path / "b", "auto")]
    with pytest.raises(ConfigError, match="^FINOPS_SCHEDULER_WATCH entry '/x' is not DIR:SOURCE with a source among"):
        load_scheduler_settings(watch="/x")
    with pytest.raises(ConfigError, match="^FINOPS_SCHEDULER_RUN_INTERVAL_S has value 'soon'"):
        load_scheduler_settings(run_interval_s="soon")


def test_inside_serve_delivery_never_waits_for_the_write_lock(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    fire(db, f"webhook:{receiver.url}")
    write_lock = threading.Lock()
    invalidated = threading.Event()

    with write_lock:  # an API ingest push holds the app's write lock
        scheduler = start_scheduler(
            settings,
            db=db,
            write_lock=write_lock,
            invalidate=invalidated.set,
            scheduler_settings=load_scheduler_settings(),
            alert_settings=alert_settings(),
        )
        try:
            wait_for(lambda: len(receiver.received) == 3)  # delivered meanwhile
            assert db.scalar("SELECT count(*) FROM runs") == 0  # the run waits for the lock
        except BaseException:
            shutdown(scheduler, wait=False)
            raise
    try:
        wait_for(lambda: db.scalar("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") == 1, 30)
    finally:
        shutdown(scheduler)
    assert invalidated.is_set()
