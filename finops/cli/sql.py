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

from finops.store.db import connect
from finops.store.readonly import lock_down, run_select

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)
# piped output is not cut to 80 columns
if not out.is_terminal:
    out = Console(highlight=False, soft_wrap=True, markup=False, width=240)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def register(cli: click.Group) -> None:
    @cli.command("sql")
    @click.argument("query")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
    @click.option("--max-rows", type=click.IntRange(1, 10_000_000), default=10_000, show_default=True)
    @click.option("--time-limit-ms", type=click.IntRange(1, 3_600_000), default=60_000, show_default=True)
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
            writer.writerows([[_plain(v) for v in row] for row in result.rows])
        elif fmt == "json":
            click.echo(
                json.dumps(
                    [dict(zip(result.columns, map(_plain, row), strict=True)) for row in result.rows],
                    indent=1,
                    default=str,
                )
            )
        else:
            table = Table(*result.columns, show_lines=False, header_style="bold")
            for row in result.rows:
                table.add_row(*("NULL" if v is None else str(_plain(v)) for v in row))
            out.print(table)
            out.print(f"{len(result.rows):,} row{'s' if len(result.rows) != 1 else ''}", style="dim")
        if result.truncated:
            click.echo(f"(cut at {max_rows:,} rows; raise --max-rows to see more)", err=True)
        return 0
