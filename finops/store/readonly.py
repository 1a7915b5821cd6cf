"""Read-only SQL for engineers: one SELECT, on a read-only connection, time-limited, row-capped.

Modelled on datasette: DuckDB's own parser checks there is exactly one SELECT statement, external
access is switched off and the configuration locked before user SQL runs, a timer interrupts a query
that runs past the limit, and `max_rows + 1` rows are fetched to tell whether the result was cut.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb

from finops.errors import InputError, QueryTimeout
from finops.store.db import Database

__all__ = ["QueryResult", "check_select", "run_select"]


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def check_select(sql: str) -> str:
    """The statement if `sql` is exactly one SELECT; otherwise an `InputError` saying what it is."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"The SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise InputError(f"Expected exactly one SELECT statement; got {len(statements)} statements.")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise InputError(f"Only SELECT queries are allowed; this is a {kind.name} statement.")
    return sql.strip().rstrip(";")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """No files, no network, no extensions, no settings changes from here on."""
    con.execute("SET enable_external_access = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET lock_configuration = true")


def run_select(
    db: Database, sql: str, *, max_rows: int, time_limit_ms: int, limit_setting: str = "FINOPS_QUERY_TIME_LIMIT_MS"
) -> QueryResult:
    """Run one user SELECT on `db` (opened read-only and locked down) within the limits."""
    statement = check_select(sql)
    con = db.con
    timer = threading.Timer(time_limit_ms / 1000, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(statement)
        columns = [d[0] for d in cursor.description or []]
        types = [str(d[1]) for d in cursor.description or []]
        rows = cursor.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise QueryTimeout(
            f"The query ran longer than {time_limit_ms} ms and was stopped. The limit is {limit_setting}.",
            time_limit_ms=time_limit_ms,
        ) from None
    except duckdb.Error as exc:
        raise InputError(f"The query failed: {_first_line(exc)}") from None
    finally:
        timer.cancel()
    return QueryResult(columns, types, rows[:max_rows], truncated=len(rows) > max_rows)
