"""Snapshots for user SQL: per caller scope and per view, a DuckDB file that holds only the allowed rows.

User SQL never sees the main database (see `finops.store.readonly`). For each scope (every team, or a
key's teams) and each view of the allow-list below, this module writes a small DuckDB file holding that
view's rows for that scope, and the SQL worker attaches those files read-only. Views not in the list
(`api_keys`, base tables, the delivery outbox) are never copied, so no statement can reach them.

Cost (why snapshots rather than a copy per request): copying `spend` or `usage` costs about 3-5 s per
million rows on two cores, far too slow per request at 10M rows, and Arrow-registered filtered relations
re-run the filter and lose DuckDB's storage for every query. A snapshot is written once per scope, view
and data version, then every query reads DuckDB's compressed storage at full speed. Versions follow what
feeds each view: ingest (the last batch id), runs (the last run id and whether it finished), and edits
made through the API (`SnapshotStore.invalidate`). A snapshot is refreshed only when a query names its view
(`referenced_views`); other views are served from their last snapshot. Each view is copied in one
transaction, so it is consistent in itself; two views may be a few seconds apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from finops.store.db import Database
from finops.store.readonly import referenced_views

__all__ = ["SANDBOX_VIEWS", "SandboxView", "SnapshotStore", "data_versions", "default_snapshot_dir"]


@dataclass(frozen=True)
class SandboxView:
    """One view user SQL can read: what its rows depend on, and how a team-scoped key's rows are chosen.

    `scoped` is a SQL predicate over the view's columns with the bound list parameter `$teams`;
    None means the view is not served to team-scoped keys at all (it mixes teams or names files).
    """

    name: str
    depends: frozenset[str]
    scoped: str | None
    columns: str = "*"  # what the snapshot copies: a view may hide a column's secrets


_TEAMS = "team IN (SELECT unnest($teams))"
# webhook and Slack URLs are secrets (a Slack URL's path is its key): SQL sees their scheme and host only,
# as the API's non-admin listings do (`Channel.redacted`)
_REDACTED_CHANNELS = r"""* REPLACE (list_transform(channels, lambda c: regexp_replace(c,
    '^(webhook|slack):([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/?#]*@)?([^/?#]*).*$', '\1:\2://\3/...')) AS channels)"""
_BATCH = frozenset({"batch"})
_RUN = frozenset({"run"})
_BOTH = frozenset({"batch", "run"})
_EDITS = frozenset({"run", "edits"})

# The allow-list. Order is the order of `information_schema` listings; a view missing from the database
# (a stage not installed yet) is skipped.
SANDBOX_VIEWS: tuple[SandboxView, ...] = (
    SandboxView(
        "usage",
        _BOTH,
        # a record's own team, else the team attribution gave it; EXISTS, which DuckDB turns into one hash
        # join: a row-valued `(source, request_id) IN (subquery)` took 56 s for the demo's 326k records
        f"{_TEAMS} OR (team IS NULL AND EXISTS (SELECT 1 FROM spend s WHERE s.{_TEAMS} "
        'AND s.source = "usage".source AND s.request_id = "usage".request_id))',
    ),
    SandboxView("spend", _RUN, _TEAMS),
    SandboxView("spend_daily", _RUN, _TEAMS),
    SandboxView("findings", _RUN, _TEAMS),
    SandboxView("forecasts", _RUN, _TEAMS),
    SandboxView("budgets", _EDITS, _TEAMS, _REDACTED_CHANNELS),
    SandboxView("alerts", _EDITS, f"budget_id IN (SELECT budget_id FROM budgets WHERE {_TEAMS})"),
    SandboxView("unpriced_usage", _RUN, _TEAMS),
    SandboxView("reprices", _RUN, _TEAMS),
    SandboxView("prices", _RUN, "true"),
    SandboxView("gpu_utilisation", _BOTH, None),
    SandboxView("reconciliation", _BOTH, None),
    SandboxView("ingest_batches", _BATCH, None),
    SandboxView("rejected_usage", _BATCH, None),
    SandboxView("revisions", _BATCH, None),
)

_VERSIONS = """
    SELECT (SELECT coalesce(max(batch_id), 0) FROM ingest_batches),
           (SELECT coalesce(max(run_id), 0) FROM runs),
           (SELECT count(*) FROM runs WHERE finished_at IS NOT NULL)"""
_EXISTING = """
    SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'
    UNION
    SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main'"""


def data_versions(db: Database, edits: int = 0) -> dict[str, str]:
    """The current version of each input kind: `batch`, `run`, `edits`."""
    batch, run, finished = db.fetchone(_VERSIONS) or (0, 0, 0)
    return {"batch": str(batch), "run": f"{run}.{finished}", "edits": str(edits)}


def default_snapshot_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".sql-snapshots")


def scope_key(teams: frozenset[str] | None) -> str:
    """A directory name for a scope that names no team (snapshot paths are visible to user SQL)."""
    text = "*" if teams is None else "\n".join(sorted(teams))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class SnapshotStore:
    """Builds and finds snapshot files under `root`; thread-safe, one build per (scope, view) at a time."""

    def __init__(self, root: Path, *, keep_versions: int = 2) -> None:
        self.root = root
        self.keep_versions = keep_versions
        self._edits = 0
        self._lock = threading.Lock()
        self._building: dict[tuple[str, str], threading.Lock] = {}
        self._build_slot = threading.Lock()  # one copy at a time: they compete for the same cores

    def invalidate(self) -> None:
        """Say that data changed outside ingest and runs (budgets edited through the API, ...)."""
        with self._lock:
            self._edits += 1

    def files_for(self, db: Database, teams: frozenset[str] | None, sql: str) -> dict[str, Path]:
        """Snapshot files for a query in this scope: views the query names are brought up to date, the
        others served as last built (built now if they never were). Views a scoped key may not read, and
        views missing from the database, are absent."""
        with self._lock:
            edits = self._edits
        versions = data_versions(db, edits)
        existing = {str(r[0]) for r in db.execute(_EXISTING)}
        views = [v for v in SANDBOX_VIEWS if v.name in existing and (teams is None or v.scoped is not None)]
        named = referenced_views(sql, [v.name for v in views])
        return {v.name: self._ensure(db, v, teams, versions, fresh=v.name in named) for v in views}

    def _ensure(
        self, db: Database, view: SandboxView, teams: frozenset[str] | None, versions: dict[str, str], *, fresh: bool
    ) -> Path:
        folder = self.root / scope_key(teams)
        tag = hashlib.sha256(repr(sorted((k, versions[k]) for k in view.depends)).encode()).hexdigest()[:16]
        wanted = folder / f"{view.name}.{tag}.duckdb"
        if wanted.exists():
            return wanted
        if not fresh and (last := self._latest(folder, view.name)) is not None:
            return last
        with self._lock:
            building = self._building.setdefault((folder.name, view.name), threading.Lock())
        with building:
            if not wanted.exists():
                with self._build_slot:
                    build_snapshot(db, view, teams, wanted)
                self._prune(folder, view.name, keep=wanted)
        return wanted

    @staticmethod
    def _latest(folder: Path, view: str) -> Path | None:
        files = sorted(_versions_of(folder, view), key=lambda p: p.stat().st_mtime, reverse=True)
        return files[0] if files else None

    def _prune(self, folder: Path, view: str, keep: Path) -> None:
        """Keep the newest `keep_versions` files of a view (a worker may still be opening the previous one;
        an open file stays readable after its name is removed)."""
        files = sorted(_versions_of(folder, view), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [f for f in files if f != keep][self.keep_versions - 1 :]:
            with contextlib.suppress(OSError):
                old.unlink()

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _versions_of(folder: Path, view: str) -> Iterable[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.glob(f"{view}.*.duckdb") if p.name.count(".") == 2]


def build_snapshot(db: Database, view: SandboxView, teams: frozenset[str] | None, target: Path) -> None:
    """Copy one view (all of it, or a scope's rows) into a new DuckDB file, atomically renamed to `target`.

    Runs on a cursor of its own over the main database: one transaction, so the copy is one consistent
    state of the view; the file is written under a temporary name and renamed when complete.
    """
    if teams is not None and view.scoped is None:
        raise ValueError(f"view {view.name} is not served to team-scoped keys")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    alias = f"finops_snapshot_{secrets.token_hex(4)}"
    cursor = db.con.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        cursor.execute(f"ATTACH '{str(partial).replace(chr(39), chr(39) * 2)}' AS {alias} (READ_WRITE)")
        try:
            where = "" if teams is None else f" WHERE {view.scoped}"
            params = {"teams": sorted(teams)} if teams is not None and "$teams" in where else None
            cursor.execute("BEGIN TRANSACTION")
            sql = f'CREATE TABLE {alias}.main."{view.name}" AS SELECT {view.columns} FROM main."{view.name}"{where}'
            cursor.execute(sql, params) if params else cursor.execute(sql)
            cursor.execute("COMMIT")
        finally:
            cursor.execute(f"DETACH {alias}")
        os.replace(partial, target)
    finally:
        cursor.close()
        for leftover in (partial, partial.with_name(partial.name + ".wal")):
            with contextlib.suppress(OSError):
                leftover.unlink()
