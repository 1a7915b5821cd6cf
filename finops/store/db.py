"""The only door to DuckDB: open (waiting for a lock another process holds), apply the schema, transact.

Every connection runs in UTC, whatever the machine's time zone, so daily and monthly totals do not
depend on where the process runs.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from finops.errors import DatabaseLocked, FileProblem
from finops.settings import Settings
from finops.store.queries import schema_scripts, view_scripts

log = logging.getLogger(__name__)

__all__ = ["Database", "connect"]

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


@dataclass
class Database:
    """An open DuckDB database; `con` is the one connection this process writes through."""

    path: Path
    con: duckdb.DuckDBPyConnection
    read_only: bool
    settings: Settings
    _depth: int = field(default=0, init=False, repr=False)  # transactions open (`transaction` nests)

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and fetch its whole result (DuckDB 2 keeps an unfetched result open, which
        blocks the next `register()` on the connection)."""
        cursor = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        return cursor.fetchall()

    fetchall = execute

    def fetchone(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> tuple[Any, ...] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        row = self.fetchone(sql, params)
        return None if row is None else row[0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Commit on success, roll back on any exception: a file is ingested whole or not at all. A
        transaction opened inside another is part of it: the outermost one commits or rolls back."""
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self.con
        except BaseException:
            self._depth = 0
            self.execute("ROLLBACK")
            raise
        self._depth = 0
        self.execute("COMMIT")

    @contextlib.contextmanager
    def insertion_order(self, preserve: bool) -> Iterator[None]:
        """Bulk loads run with `preserve_insertion_order=false` (PERFORMANCE-NOTES); staging keeps it."""
        self.execute(f"SET preserve_insertion_order = {'true' if preserve else 'false'}")
        try:
            yield
        finally:
            self.execute("SET preserve_insertion_order = true")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings, *, read_only: bool = False, path: Path | None = None) -> Database:
    """Open the database (creating it and its schema when writable), waiting up to `lock_timeout_s`."""
    db_path = Path(path or settings.db)
    if read_only and not db_path.exists():
        raise FileProblem(
            f"Database {db_path} does not exist. Ingest something first (finops ingest ...) "
            "or point --db / FINOPS_DB at an existing file.",
            path=str(db_path),
        )
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_foreign_file(db_path)
    # no extension is fetched or loaded behind the user's back (a SQLite file would make DuckDB download one)
    config: dict[str, Any] = {
        "memory_limit": settings.memory_limit,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if settings.threads:
        config["threads"] = settings.threads
    con = _connect_waiting(db_path, read_only=read_only, config=config, timeout_s=settings.lock_timeout_s)
    con.execute("SET GLOBAL TimeZone = 'UTC'").fetchall()  # GLOBAL: cursors do not inherit a session SET
    db = Database(path=db_path, con=con, read_only=read_only, settings=settings)
    if not read_only:
        try:
            apply_schema(db)
        except BaseException:
            con.close()
            raise
    return db


def _refuse_foreign_file(path: Path) -> None:
    """A SQLite file is not opened as a DuckDB one (DuckDB would attach it through an extension)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:  # no such file yet, or unreadable: DuckDB says what is wrong
        return
    if head == b"SQLite format 3\x00":
        raise FileProblem(
            f"{path} is a SQLite database, not a finops (DuckDB) database; point --db / FINOPS_DB at a finops "
            "database or a new file.",
            path=str(path),
        )


def _connect_waiting(
    path: Path, *, read_only: bool, config: dict[str, Any], timeout_s: float
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            holder = _LOCK_HOLDER.search(str(exc))
            if holder is None:
                raise FileProblem(f"Could not open database {path}: {exc}", path=str(path)) from None
            if time.monotonic() >= deadline:
                pid = int(holder["pid"])
                raise DatabaseLocked(
                    f"Database {path} is in use by {_describe_process(pid, holder['exe'])}; "
                    f"waited {timeout_s:g} s. Stop that process, wait for it to finish, "
                    "or raise FINOPS_LOCK_TIMEOUT_S.",
                    path=str(path),
                    pid=pid,
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _describe_process(pid: int, exe: str) -> str:
    """`finops serve (PID 4441)` when /proc tells us the command line, else the executable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{exe} (PID {pid})"
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if "finops" in " ".join(args):
        sub = [a for a in args if not a.startswith("-") and "/" not in a and a not in {"-m", "finops"}]
        verb = sub[0] if sub else ""
        return f"another finops process{f' ({verb!r})' if verb else ''} (PID {pid})"
    command = " ".join(" ".join(args).split())  # one line, whatever the holder's command line holds
    return f"{command[:80] + ('...' if len(command) > 80 else '')} (PID {pid})"


def apply_schema(db: Database) -> None:
    """Create missing tables in order (`queries/schema/NNNN_*.sql`), then (re)create the views. A database
    of another application (tables, but no `schema_migrations` of ours) is refused, never converted."""
    if not db.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations'"):
        others = [r[0] for r in db.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1 LIMIT 4")]
        if others:
            raise FileProblem(
                f"{db.path} is a DuckDB database of another application (tables {', '.join(others)}), not a finops "
                "database; point --db / FINOPS_DB at a finops database or a new file. Nothing was changed in it.",
                path=str(db.path),
            )
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    done = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
    unknown = sorted(done - {name for name, _ in schema_scripts()})
    if unknown:
        log.warning(
            "%s was written by a newer finops (migrations %s are not known to this version); "
            "upgrade finops before writing to it",
            db.path,
            ", ".join(unknown[:3]),
        )
    pending = [(name, sql) for name, sql in schema_scripts() if name not in done]
    if pending:
        with db.transaction():
            for name, sql in pending:
                db.execute(sql)
                db.execute("INSERT INTO schema_migrations VALUES ($name, now())", {"name": name})
    for _name, sql in view_scripts():
        db.execute(sql)
