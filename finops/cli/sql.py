"""`finops sql "SELECT ..."`: read-only SQL over the views, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from finops.settings import HOUR_MS, MAX_ROWS
from finops.store.db import connect
from finops.store.readonly import json_value, lock_down, run_select

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)
# piped output is not cut to 80 columns
if not out.is_terminal:
    out = Console(highlight=False, soft_wrap=True, markup=False, width=240)


# a table cell shows at most this many characters (rich lays out every character of a cell: one cell of a
# million-element list took 13 s as a table, 1.3 s as CSV); CSV and JSON carry whole values
TABLE_CELL_CHARS = 200
# control characters print escaped (`\x1b`): a rejected line's raw text must not drive the terminal
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def _cell(value: Any) -> tuple[str, bool]:
    """A value as a table shows it, and whether it was cut."""
    text = "NULL" if value is None else str(_text(value))
    cut = len(text) > TABLE_CELL_CHARS
    if cut:
        text = text[: TABLE_CELL_CHARS - 1] + "\u2026"
    return text.translate(_ESCAPED), cut


def _text(value: Any) -> Any:
    """A value as a table or CSV cell shows it: a list or struct as JSON text whose decimals are exact numbers,
    a decimal as exact text, a time in ISO 8601, anything else as it is."""
    if isinstance(value, list | tuple | dict):
        return _json_text(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _json_text(value: Any) -> str:
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_json_text, value)) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_json_text(v)}" for k, v in value.items())
            + "}"
        )
    return json.dumps(json_value(value), ensure_ascii=False)


def _unique(columns: list[str]) -> list[str]:
    """JSON object keys for `columns`: a name met again gets `_1`, `_2`, ... as DuckDB names them in a subquery,
    so no column is lost (`SELECT 1 AS a, 2 AS a`)."""
    taken: set[str] = set(columns)
    seen: set[str] = set()
    names = []
    for name in columns:
        unique, n = name, 0
        while unique in seen or (unique != name and unique in taken):
            n += 1
            unique = f"{name}_{n}"
        seen.add(unique)
        names.append(unique)
    return names


def register(cli: click.Group) -> None:
    @cli.command("sql")
    @click.argument("query")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
    @click.option("--max-rows", type=click.IntRange(1, MAX_ROWS), default=10_000, show_default=True)
    @click.option("--time-limit-ms", type=click.IntRange(1, HOUR_MS), default=60_000, show_default=True)
    @click.pass_obj
    def sql(state: object, query: str, fmt: str, max_rows: int, time_limit_ms: int) -> int:
        """Run one read-only SELECT over the finops views (usage, spend, findings, ...)."""
        settings = state.settings  # type: ignore[attr-defined]
        # the caller can read the database file anyway: no snapshot, just a read-only connection that can
        # touch no other file, URL or setting (POST /v1/sql, for API keys, runs in the snapshot sandbox)
        with connect(settings, read_only=True) as db:
            lock_down(db.con)
            result = run_select(
                db.con, query, max_rows=max_rows, time_limit_ms=time_limit_ms, max_result_bytes=1 << 40,
                limit_setting="--time-limit-ms",
            )  # fmt: skip
        if fmt == "csv":
            writer = csv.writer(sys.stdout)
            writer.writerow(result.columns)
            writer.writerows([[_text(v) for v in row] for row in result.rows])
        elif fmt == "json":
            click.echo(
                json.dumps(
                    [dict(zip(_unique(result.columns), map(json_value, row), strict=True)) for row in result.rows],
                    indent=1,
                    allow_nan=False,  # json_value gives a NaN or an infinity as text, as POST /v1/sql does
                )
            )
        else:
            table = Table(*(_cell(c)[0] for c in result.columns), show_lines=False, header_style="bold")
            cut = 0
            for row in result.rows:
                cells = [_cell(v) for v in row]
                cut += sum(c for _, c in cells)
                table.add_row(*(text for text, _ in cells))
            out.print(table)
            out.print(f"{len(result.rows):,} row{'s' if len(result.rows) != 1 else ''}", style="dim")
            if cut:
                click.echo(
                    f"({cut:,} value{'s' if cut != 1 else ''} cut to {TABLE_CELL_CHARS} characters in the table; "
                    "--format csv or json shows them whole)",
                    err=True,
                )
        if result.truncated:
            click.echo(f"(cut at {max_rows:,} rows; raise --max-rows to see more)", err=True)
        return 0
