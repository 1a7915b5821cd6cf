"""APScheduler wiring: a table of `(job_id, interval, function)` whose functions call only pipeline and stage
functions, started by `finops serve` (`start_scheduler` / `shutdown`) or `finops jobs start`.

    ingest   ingest new or changed files of the watched folders (FINOPS_SCHEDULER_WATCH)
    run      `pipeline.run_once` as of now: price, attribute, detect, forecast, evaluate budgets
    deliver  drain the alert outbox (`finops.alert.deliver.deliver_due`)

Every job is also a command (`finops jobs run JOB`; `finops run`, `finops ingest`, `finops alerts deliver`).

Overlap and catch-up: each job has `max_instances=1` (a tick that finds the job still running is skipped,
never doubled) and `coalesce=True` with no misfire grace limit (ticks missed while the machine slept become
one run). Jobs start once at scheduler start: that first `run` is the catch-up, whose `alert_step` evaluates
every budget period the downtime spanned once. `ingest` and `run` also share `PIPELINE_LOCK`, because a run
must see whole ingest batches (its watermark is the highest batch id).

Database sharing: DuckDB lets one process own the file. Inside `finops serve` the process opens it once and
passes `shared_database(db)`: every job runs on its own cursor (a connection to the same database instance),
so a long run does not stop API reads (DuckDB's MVCC), and the alert ledger's short write transactions are
serialised with delivery bookkeeping by `finops.alert.LEDGER_LOCK`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.alert.deliver import DeliveryReport, deliver_due
from finops.alert.settings import AlertSettings, load_alert_settings
from finops.errors import ConfigError, FinopsError
from finops.ingest import SOURCES, IngestOptions, ingest_paths
from finops.ingest.files import discover
from finops.pipeline import RunSummary, run_once
from finops.settings import Settings
from finops.store.db import Database

__all__ = [
    "JOB_IDS",
    "PIPELINE_LOCK",
    "DbProvider",
    "Job",
    "SchedulerSettings",
    "WatchReport",
    "WatchedFolder",
    "deliver_alerts",
    "ingest_watched",
    "job_table",
    "load_scheduler_settings",
    "run_pipeline",
    "shared_database",
    "shutdown",
    "start_scheduler",
    "watch_problem",
]

log = logging.getLogger("finops.jobs")

PIPELINE_LOCK = threading.Lock()  # ingest and run, one at a time, when the caller has no write lock of its own
JOB_IDS = ("ingest", "run", "deliver")

DbProvider = Callable[[], AbstractContextManager[Database]]
Lock = AbstractContextManager[object]


_YEAR_S = 366 * 86_400  # the longest interval: an APScheduler trigger must fall before year 9999
_DAY_S = 86_400


class SchedulerSettings(BaseSettings):
    """The scheduler; each field reads `FINOPS_SCHEDULER_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_SCHEDULER_", frozen=True, extra="ignore")

    watch: str = Field(
        "",
        description="Watched folders as DIR:SOURCE pairs separated by commas, e.g. /logs/gw:gateway,/exports:auto.",
    )
    ingest_interval_s: float = Field(
        300.0, gt=0, le=_YEAR_S, allow_inf_nan=False, description="Seconds between scans of the watched folders."
    )
    run_interval_s: float = Field(
        3600.0, gt=0, le=_YEAR_S, allow_inf_nan=False, description="Seconds between pipeline runs (`finops run`)."
    )
    deliver_interval_s: float = Field(
        30.0, gt=0, le=_YEAR_S, allow_inf_nan=False, description="Seconds between drains of the alert outbox."
    )
    ingest_settle_s: float = Field(
        5.0,
        ge=0,
        le=_DAY_S,
        allow_inf_nan=False,
        description="A watched file modified less than this many seconds ago is left for the next scan.",
    )

    def folders(self) -> list[WatchedFolder]:
        """The parsed `watch` list; a bad entry, or one naming a file rather than a folder, is a `ConfigError`
        naming the variable. A folder that does not exist (yet) is accepted: `watch_problem` reports it."""
        found = []
        for entry in filter(None, (e.strip() for e in self.watch.split(","))):
            path, sep, source = entry.rpartition(":")
            if not sep or not path or source not in (*SOURCES, "auto"):
                raise ConfigError(
                    f"FINOPS_SCHEDULER_WATCH entry '{entry}' is not DIR:SOURCE with a source among "
                    f"{', '.join([*SOURCES, 'auto'])}.",
                    setting="FINOPS_SCHEDULER_WATCH",
                )
            if Path(path).exists() and not Path(path).is_dir():
                raise ConfigError(
                    f"FINOPS_SCHEDULER_WATCH entry '{entry}' names a file, not a folder; expected DIR:SOURCE with "
                    "DIR a folder whose files are ingested (`finops ingest FILE` reads one file).",
                    setting="FINOPS_SCHEDULER_WATCH",
                )
            found.append(WatchedFolder(Path(path), source))
        return found


def load_scheduler_settings(**overrides: object) -> SchedulerSettings:
    try:
        settings = SchedulerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = f"FINOPS_SCHEDULER_{str(first['loc'][0]).upper()}" if first["loc"] else "FINOPS_SCHEDULER_*"
        raise ConfigError(f"{name} has value {first.get('input')!r}. {first['msg']}.", setting=name) from None
    settings.folders()
    return settings


@dataclass(frozen=True)
class WatchedFolder:
    path: Path
    source: str


def watch_problem(folder: WatchedFolder) -> str | None:
    """Why the ingest job cannot scan `folder` now ("does not exist; ..."), or None when it can. A folder
    that does not exist yet is skipped, and reported, by every scan until it appears."""
    path = folder.path
    if not path.exists():
        return "does not exist; nothing is ingested from it until it appears"
    if not path.is_dir():
        return "is a file, not a folder; nothing is ingested from it"
    if not os.access(path, os.R_OK | os.X_OK):
        return "cannot be read (permission denied); nothing is ingested from it"
    return None


@dataclass(frozen=True)
class Job:
    """One row of the job table."""

    job_id: str
    interval_s: float
    function: Callable[[Database], object]


# ----------------------------------------------------------------------------------- the job functions


def run_pipeline(
    db: Database, settings: Settings, *, as_of: datetime | None = None, lock: Lock = PIPELINE_LOCK
) -> RunSummary:
    """`finops run`, as the scheduler runs it: under `lock`, never alongside an ingest."""
    with lock:
        return run_once(
            db,
            as_of=as_of,
            owners=settings.owners,
            price_overrides=settings.price_overrides,
            idle_policy=settings.idle_policy,
            detect_horizon_days=settings.detect_horizon_days,
            detect_history_days=settings.detect_history_days,
            chunk_records=settings.run_chunk_records,
        )


@dataclass
class WatchReport:
    """What one scan of the watched folders did."""

    ingested: list[str] = field(default_factory=list)
    unchanged: int = 0
    settling: int = 0
    errors: list[str] = field(default_factory=list)


def ingest_watched(
    db: Database,
    settings: Settings,
    folders: list[WatchedFolder],
    *,
    settle_s: float = 5.0,
    lock: Lock = PIPELINE_LOCK,
) -> WatchReport:
    """Ingest the watched folders' files that are new or changed (size or modification time) since they were
    last ingested, under `lock`; a file written less than `settle_s` ago waits for the next scan."""
    report = WatchReport()
    options = IngestOptions(max_future_s=settings.max_future_s, min_timestamp=settings.min_timestamp)
    with lock:
        for folder in folders:
            problem = watch_problem(folder)
            if problem is not None:
                report.errors.append(f"watched folder {folder.path} {problem}")
                continue
            found = discover([folder.path])
            # looked up by the paths found (resolved, as discover gives them): a file under a linked folder is
            # outside the watched folder's own path, and was taken for new on every scan
            known = _watched_state(db, [str(p) for p in found])
            changed: list[tuple[Path, os.stat_result]] = []
            for path in found:
                stat = path.stat()
                age = time.time() - stat.st_mtime
                if known.get(str(path)) == (stat.st_size, stat.st_mtime_ns):
                    report.unchanged += 1
                elif age < settle_s or (age < max(60.0, 10 * settle_s) and _mid_line(path)):
                    report.settling += 1  # a writer that paused mid-line gets longer before its file is read
                else:
                    changed.append((path, stat))
            stats = {p: s for p, s in changed}
            for outcome in ingest_paths(db, [p for p, _ in changed], folder.source, options):
                stat = stats[outcome.path]
                batch = outcome.report.batch_id if outcome.report else None
                _record_watched(db, str(outcome.path), folder.source, stat, batch)
                if outcome.error is not None:
                    report.errors.append(outcome.error.message)
                else:
                    report.ingested.append(str(outcome.path))
    return report


def deliver_alerts(db: Database, alert_settings: AlertSettings | None = None) -> DeliveryReport:
    """Drain the alert outbox once (`finops alerts deliver`)."""
    return deliver_due(db, alert_settings)


# watched-file bookkeeping (the table is created by queries/schema/0009_budgets_alerts.sql)
def _watched_state(db: Database, paths: list[str]) -> dict[str, tuple[int, int]]:
    rows = db.execute(
        "SELECT path, size_bytes, mtime_ns FROM watched_files WHERE list_contains($paths, path)", {"paths": paths}
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def _mid_line(path: Path) -> bool:
    """Whether a plain text file ends without a newline: its writer may be mid-record (a gzip file's end is
    checked by ingest itself)."""
    if path.suffix.lower() in (".gz", ".parquet", ".pq"):
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) not in (b"\n", b"")
    except OSError:  # empty or unreadable: ingest says what is wrong with it
        return False


def _record_watched(db: Database, path: str, source: str, stat: os.stat_result, batch_id: int | None) -> None:
    db.execute(
        """INSERT INTO watched_files (path, source, size_bytes, mtime_ns, batch_id, ingested_at)
           VALUES ($path, $source, $size, $mtime, $batch, now())
           ON CONFLICT (path) DO UPDATE SET source = $source, size_bytes = $size, mtime_ns = $mtime, batch_id = $batch,
               ingested_at = now()""",
        {"path": path, "source": source, "size": stat.st_size, "mtime": stat.st_mtime_ns, "batch": batch_id},
    )


# ------------------------------------------------------------------------------------------ the table


def job_table(
    settings: Settings,
    scheduler_settings: SchedulerSettings,
    alert_settings: AlertSettings,
    *,
    clock: Callable[[], datetime] | None = None,
    lock: Lock = PIPELINE_LOCK,
) -> tuple[Job, ...]:
    """The scheduler's jobs; `clock` gives each run's `as_of` (default: now); `lock` keeps ingest and run (and
    whatever else the caller guards with it, such as API pushes) one at a time. Delivery takes no such lock."""
    folders = scheduler_settings.folders()
    settle_s = scheduler_settings.ingest_settle_s
    return (
        Job(
            "ingest",
            scheduler_settings.ingest_interval_s,
            lambda db: ingest_watched(db, settings, folders, settle_s=settle_s, lock=lock),
        ),
        Job(
            "run",
            scheduler_settings.run_interval_s,
            lambda db: run_pipeline(db, settings, as_of=(clock or _now)(), lock=lock),
        ),
        Job("deliver", scheduler_settings.deliver_interval_s, lambda db: deliver_alerts(db, alert_settings)),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def shared_database(db: Database) -> DbProvider:
    """A provider that gives each job its own cursor on the process's one open database."""

    @contextlib.contextmanager
    def provide() -> Iterator[Database]:
        cursor = db.con.cursor()
        cursor.execute("SET TimeZone = 'UTC'").fetchall()
        try:
            yield Database(path=db.path, con=cursor, read_only=db.read_only, settings=db.settings)
        finally:
            cursor.close()

    return provide


def _runner(job: Job, db_provider: DbProvider, invalidate: Callable[[], object] | None) -> Callable[[], None]:
    def run() -> None:
        started = time.monotonic()
        try:
            with db_provider() as db:
                result = job.function(db)
        except FinopsError as exc:  # a user-fixable problem: one sentence in the log, the scheduler goes on
            log.error("job %s: %s", job.job_id, exc.message)
            return
        except Exception:
            log.exception("job %s failed", job.job_id)
            return
        finally:
            if invalidate is not None:
                invalidate()
        if isinstance(result, WatchReport):  # a folder or file that could not be read is news, not a detail
            for error in result.errors:
                log.error("job %s: %s", job.job_id, error)
        log.info("job %s done in %.1f s: %s", job.job_id, time.monotonic() - started, _summary(result))

    run.__name__ = f"finops_{job.job_id}"
    return run


def _summary(result: object) -> object:
    as_dict = getattr(result, "as_dict", None)
    return as_dict() if callable(as_dict) else result


def start_scheduler(
    settings: Settings,
    db_provider: DbProvider | None = None,
    *,
    db: Database | None = None,
    write_lock: Lock | None = None,
    invalidate: Callable[[], object] | None = None,
    scheduler_settings: SchedulerSettings | None = None,
    alert_settings: AlertSettings | None = None,
    clock: Callable[[], datetime] | None = None,
    jobs: tuple[Job, ...] | None = None,
) -> BackgroundScheduler:
    """Start the jobs in a background thread pool, each at once (the catch-up) and then every interval.

    Args:
        db: the process's open database; each job then runs on a cursor of its own (preferred over
            `db_provider`, which is used when no `db` is given).
        write_lock: the lock the process's other writers (API ingest pushes) take; ingest and run hold it,
            delivery does not (it never holds the database while it waits on a receiver).
        invalidate: called after every job (e.g. to mark cached SQL snapshots stale).
    """
    provider = shared_database(db) if db is not None else db_provider
    if provider is None:
        raise TypeError("start_scheduler needs db or db_provider")
    table = jobs or job_table(
        settings,
        scheduler_settings or load_scheduler_settings(),
        alert_settings or load_alert_settings(),
        clock=clock,
        lock=write_lock or PIPELINE_LOCK,
    )
    scheduler = BackgroundScheduler(timezone=UTC)
    now = datetime.now(UTC)
    for job in table:
        scheduler.add_job(
            _runner(job, provider, invalidate),
            IntervalTrigger(seconds=job.interval_s, timezone=UTC),
            id=job.job_id,
            name=job.job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=now,
        )
    scheduler.start()
    return scheduler


def shutdown(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Stop scheduling; with `wait`, let running jobs finish (a run is never cut in half)."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)
