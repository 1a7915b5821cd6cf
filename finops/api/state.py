"""What one running app holds: settings, the database it owns, the write lock, keys, the SQL workers, the
read cache.

Concurrency in one process (`finops serve`): every request reads through a cursor of its own over the
one DuckDB database (`database()`); DuckDB gives each cursor snapshot isolation, and every ingest
commits a file in one transaction, so a read sees a file wholly or not at all. Writers (ingest pushes,
key changes, the scheduler's runs) take `write_lock`, one at a time, because ingest's dedup reads the
table before it inserts: two concurrent ingests could both miss the same key. Every writer then says the data
changed (`changed()`, or `cache.invalidate()` for an ingest), so no cached answer outlives the data it read.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio

from finops.api.auth import Caller, KeyCache
from finops.api.cache import ReadCache
from finops.api.errors import TooManyQueries
from finops.settings import Settings
from finops.store.db import Database
from finops.store.usersql import UserSql

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    sql: UserSql
    keys: KeyCache = field(default_factory=KeyCache)
    cache: ReadCache = field(default_factory=lambda: ReadCache(0))
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    scheduler: object | None = None
    # threads that wait on SQL workers: a pool of their own, so SQL never holds up the routes' threadpool
    sql_threads: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(64))
    _sql_running: Counter[str] = field(default_factory=Counter)
    _sql_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # every cursor `database()` opens starts in UTC: one global setting rather than a SET per request
        self.db.con.execute("SET GLOBAL TimeZone = 'UTC'")

    def changed(self) -> None:
        """Data changed other than by an ingest (a budget edited, a scheduler job done): the SQL snapshots of
        edited views are stale, and so is every cached answer. Call it after the change is committed."""
        self.sql.invalidate()
        self.cache.invalidate()

    @contextlib.contextmanager
    def database(self) -> Iterator[Database]:
        """A cursor of its own over the app's database, in UTC, closed afterwards."""
        cursor = self.db.con.cursor()  # in UTC: `__post_init__` set it for every connection
        try:
            yield Database(path=self.db.path, con=cursor, read_only=self.db.read_only, settings=self.settings)
        finally:
            cursor.close()

    @contextlib.contextmanager
    def sql_slot(self, caller: Caller) -> Iterator[None]:
        """One of the caller's `sql_max_concurrent_per_key` SQL slots, or `TooManyQueries`."""
        limit = self.settings.sql_max_concurrent_per_key
        with self._sql_lock:
            if self._sql_running[caller.key_id] >= limit:
                raise TooManyQueries(
                    f"This key already has {limit} SQL queries running; wait for one to finish. "
                    "The limit is FINOPS_SQL_MAX_CONCURRENT_PER_KEY.",
                    limit=limit,
                )
            self._sql_running[caller.key_id] += 1
        try:
            yield
        finally:
            with self._sql_lock:
                self._sql_running[caller.key_id] -= 1
                if not self._sql_running[caller.key_id]:
                    del self._sql_running[caller.key_id]
