"""Read-only SQL for engineers: one SELECT, on a locked-down connection that holds only what the caller may read.

DuckDB is not a sandbox (its own security page says so), so user SQL never runs on the database that
ingest writes to. It runs, in a worker process (`finops.store.sqlpool`), on a fresh in-memory DuckDB into
which the caller's snapshot files (`finops.store.sandbox`) are attached read-only, one per view. Before
the first user statement, that connection is locked down (`lock_down`): no files, no network, no
extensions, no Python replacement scans, a memory limit, a bounded spill directory, and the configuration
locked so no statement can undo any of it. The statement itself is checked with DuckDB's own parser
(`check_select`: exactly one SELECT), a timer interrupts it at the time limit (the worker is killed if it
does not stop), and the result is cut at `max_rows` rows or `max_result_bytes` bytes with `truncated` set.

Order of operations (`run_select`): check -> bind as a relation -> LIMIT max_rows + 1 -> fetch under the
timer -> cut by size.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from finops.errors import InputError, QueryTimeout

__all__ = [
    "QueryRefused",
    "QueryResult",
    "QueryTooLarge",
    "SandboxLimits",
    "check_select",
    "json_value",
    "lock_down",
    "open_sandbox",
    "referenced_views",
    "run_select",
]


class QueryRefused(InputError):
    """The statement reaches outside the data: files, network, extensions, settings, other databases."""

    code = "query_refused"


class QueryTooLarge(InputError):
    """The statement needed more memory or spill space than the sandbox allows."""

    code = "query_too_large"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


@dataclass(frozen=True)
class SandboxLimits:
    """What a sandbox connection may use."""

    memory_limit_mb: int = 1024
    threads: int = 2
    temp_dir: Path | None = None  # spill directory; None: no spilling
    max_temp_mb: int = 1024
    memory_setting: str = "FINOPS_SQL_MEMORY_LIMIT_MB"


def check_select(sql: str) -> str:
    """The statement if `sql` is exactly one SELECT; otherwise an `InputError` saying what it is.

    Only parses (DuckDB's `extract_statements`): nothing is bound, so no file or URL in `sql` is touched.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"The SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise InputError(f"Expected exactly one SELECT statement; got {len(statements)} statements.")
    kind = statements[0].type
    if kind == duckdb.StatementType.MULTI and "pivot" in sql.lower():
        # a PIVOT without an IN list first runs a query to find its columns (DuckDB makes it two statements)
        raise InputError(
            "A PIVOT here needs its values listed, e.g. PIVOT spend ON kind IN ('tokens', 'gpu') USING "
            "sum(cost_usd) GROUP BY team; without IN it runs a second statement, and only one SELECT is allowed."
        )
    if kind != duckdb.StatementType.SELECT:
        # named as written (INSTALL is DuckDB's LOAD type), unless it starts with a WITH or a comment
        first = re.match(r"\s*([A-Za-z]+)", sql)
        name = first.group(1).upper() if first and first.group(1).upper() != "WITH" else kind.name
        article = "an" if name[0] in "AEIOU" else "a"
        raise InputError(f"Only SELECT queries are allowed; this is {article} {name} statement.")
    return sql.strip().rstrip(";")


def referenced_views(sql: str, views: list[str] | tuple[str, ...]) -> set[str]:
    """Which of `views` the text of `sql` names anywhere (words, quoted names, string literals).

    A plain scan of the text, never a bind (binding user SQL on an unlocked connection would read the
    files it names): it may over-count, which only refreshes a snapshot that did not need it.
    """
    return {v for v in views if re.search(rf"(?<![A-Za-z0-9_]){re.escape(v)}(?![A-Za-z0-9_])", sql, re.IGNORECASE)}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]


def lock_down(con: duckdb.DuckDBPyConnection, limits: SandboxLimits | None = None) -> None:
    """No files, no network, no extensions, no settings changes from here on.

    With `limits`, the memory limit, threads and spill directory are set first. Everything is set with
    `SET GLOBAL` on a connection of its own database, then `lock_configuration` makes it final.
    """
    if limits is not None:
        con.execute(f"SET memory_limit = '{int(limits.memory_limit_mb)}MB'")
        con.execute(f"SET threads = {int(limits.threads)}")
        if limits.temp_dir is not None:
            limits.temp_dir.mkdir(parents=True, exist_ok=True)
            con.execute("SET temp_directory = $dir", {"dir": str(limits.temp_dir)})
            con.execute(f"SET max_temp_directory_size = '{int(limits.max_temp_mb)}MB'")
        else:
            con.execute("SET temp_directory = ''")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET lock_configuration = true")


def open_sandbox(files: Mapping[str, Path], limits: SandboxLimits) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with each snapshot file attached read-only and exposed as a view of its
    name, then locked down. The connection knows no other file: not the main database, not another scope's
    snapshots."""
    con = duckdb.connect(":memory:", config={"python_enable_replacements": False})
    con.execute("SET GLOBAL TimeZone = 'UTC'")  # GLOBAL: a cursor does not inherit a session SET
    for i, (view, path) in enumerate(sorted(files.items())):
        alias = f"snapshot_{i}"
        con.execute(f"ATTACH '{_quoted(path)}' AS {alias} (READ_ONLY)")
        con.execute(f'CREATE VIEW "{view}" AS SELECT * FROM {alias}.main."{view}"')
    lock_down(con, limits)
    return con


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def run_select(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int,
    time_limit_ms: int,
    max_result_bytes: int = 64 * 1024 * 1024,
    limit_setting: str = "FINOPS_SQL_TIME_LIMIT_MS",
    memory_setting: str = "FINOPS_SQL_MEMORY_LIMIT_MB",
) -> QueryResult:
    """Run one user SELECT on a locked-down sandbox connection within the limits."""
    statement = check_select(sql)
    cursor = con.cursor()
    timer = threading.Timer(time_limit_ms / 1000, cursor.interrupt)
    timer.start()
    try:
        relation = cursor.sql(statement)
        columns = list(relation.columns)
        types = [str(t) for t in relation.types]
        rows = relation.limit(max_rows + 1).fetchall()
    except duckdb.InterruptException:
        raise QueryTimeout(
            f"The query ran longer than {time_limit_ms} ms and was stopped. The limit is {limit_setting}.",
            time_limit_ms=time_limit_ms,
        ) from None
    except (duckdb.OutOfMemoryException, MemoryError):
        raise QueryTooLarge(
            "The query needed more memory than the SQL sandbox allows and was stopped. The limit is "
            f"{memory_setting}; aggregate further or select fewer columns.",
        ) from None
    except duckdb.PermissionException as exc:
        raise QueryRefused(
            f"The query was refused: SQL here reads only the finops views, never files, URLs, extensions "
            f"or settings. ({_first_line(exc)})"
        ) from None
    except duckdb.Error as exc:
        message = _first_line(exc)
        if "max_temp_directory_size" in message or "temp_directory" in message:
            raise QueryTooLarge(
                f"The query needed more memory and spill space than the SQL sandbox allows and was stopped. "
                f"The limit is {memory_setting}."
            ) from None
        raise InputError(f"The query failed: {message}") from None
    finally:
        timer.cancel()
        cursor.close()
    truncated = len(rows) > max_rows
    rows = rows[:max_rows]
    kept = _within_bytes(rows, max_result_bytes)
    return QueryResult(columns, types, rows[:kept], truncated=truncated or kept < len(rows))


def _within_bytes(rows: list[tuple[Any, ...]], max_bytes: int) -> int:
    """How many leading rows fit in about `max_bytes` of JSON."""
    total = 0
    for i, row in enumerate(rows):
        total += sum(_size(v) for v in row) + 2
        if total > max_bytes:
            return i
    return len(rows)


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | bytearray):
        return len(value) + 3
    if isinstance(value, list | tuple):
        return sum(_size(v) for v in value) + 2
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) for k, v in value.items()) + 2
    return 24


def json_value(value: Any) -> Any:
    """A DuckDB value as plain JSON (no binary floats for decimals, nothing JSON cannot carry)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"PT{value.total_seconds():g}S"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(json_value(k)): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v) for v in value]
    return str(value)
