"""User SQL end to end: check the statement, bring the caller's snapshots up to date, run it in a worker.

Used by `POST /v1/sql` (one `UserSql` per server) and by `finops sql` (one per command).
"""

from __future__ import annotations

import time
from pathlib import Path

from finops.errors import InputError
from finops.settings import Settings
from finops.store.db import Database
from finops.store.readonly import QueryResult, SandboxLimits, check_select
from finops.store.sandbox import SnapshotStore, default_snapshot_dir
from finops.store.sqlpool import PoolLimits, SqlPool

__all__ = ["UserSql", "ensure_snapshot_root", "pool_limits"]


def pool_limits(settings: Settings, *, workers: int | None = None) -> PoolLimits:
    root = snapshot_root(settings)
    return PoolLimits(
        workers=workers or settings.sql_workers,
        nice=settings.sql_nice,
        probation_s=settings.sql_probation_s,
        probation_nice=settings.sql_probation_nice,
        sandbox=SandboxLimits(
            memory_limit_mb=settings.sql_memory_limit_mb,
            threads=settings.sql_threads,
            temp_dir=root / "spill" if settings.sql_temp_limit_mb else None,
            max_temp_mb=settings.sql_temp_limit_mb,
        ),
        max_result_bytes=settings.sql_max_result_bytes,
    )


def snapshot_root(settings: Settings) -> Path:
    return settings.sql_snapshot_dir or default_snapshot_dir(Path(settings.db))


def ensure_snapshot_root(settings: Settings) -> Path:
    """The snapshot directory, created: one that cannot be made would fail every SQL query with a 500."""
    root = snapshot_root(settings)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"The SQL snapshot directory {root} cannot be created ({exc.strerror or exc}); set "
            "FINOPS_SQL_SNAPSHOT_DIR to a writable directory."
        ) from None
    return root


class UserSql:
    """Snapshots and workers for user SQL; `close()` stops the workers."""

    def __init__(self, settings: Settings, *, workers: int | None = None) -> None:
        self.settings = settings
        self.snapshots = SnapshotStore(ensure_snapshot_root(settings))
        self.pool = SqlPool(pool_limits(settings, workers=workers))

    def run(
        self,
        db: Database,
        sql: str,
        *,
        teams: frozenset[str] | None,
        max_rows: int,
        time_limit_ms: int | None = None,
        limit_setting: str = "FINOPS_SQL_TIME_LIMIT_MS",
        started: float | None = None,
        caller: str | None = None,
    ) -> QueryResult:
        """Run one SELECT as a caller who may read `teams` (None: every team).

        The time limit counts from `started` (default: now) and covers waiting for a worker; a snapshot
        copy this query needs first (after an ingest or a run) is not counted: it is finops' cost."""
        statement = check_select(sql)
        started = time.monotonic() if started is None else started
        before = time.monotonic()
        files = self.snapshots.files_for(db, teams, statement)
        copied = time.monotonic() - before
        return self.pool.run(
            files,
            statement,
            max_rows=max_rows,
            time_limit_ms=time_limit_ms or self.settings.sql_time_limit_ms,
            limit_setting=limit_setting,
            started=started + (copied if copied > 0.05 else 0.0),
            caller=caller,
        )

    def invalidate(self) -> None:
        self.snapshots.invalidate()

    def close(self) -> None:
        self.pool.close()
