"""`finops export`: spend as a CSV or Parquet file, a day-partitioned Parquet lake, or FOCUS 1.2 rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from finops.store.db import connect

if TYPE_CHECKING:
    from finops.export import ExportResult

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

_WHAT = {
    "line": "spend, one row per cost line",
    "daily": "spend_daily, one row per UTC day, team, feature, provider, model, kind and line type",
    "focus": "FOCUS 1.2, one row per UTC day, provider, model, team, feature and kind",
}


def register(cli: click.Group) -> None:
    @cli.command("export")
    @click.option(
        "--format", "fmt", metavar="csv|parquet|focus", help="csv, parquet, or focus (FOCUS 1.2 rows) [required]."
    )
    @click.option(
        "--out",
        "out_path",
        type=click.Path(path_type=Path),
        help="File to write (FOCUS: .csv, .csv.gz or .parquet); with --partition-by-day, the lake's directory "
        "[required].",
    )
    @click.option("--start", metavar="DATE", help="First UTC day, YYYY-MM-DD (default: the first day with spend).")
    @click.option("--end", metavar="DATE", help="UTC day after the last one, YYYY-MM-DD (exclusive).")
    @click.option("--team", "teams", metavar="TEAM", multiple=True, help="Only this team (repeatable).")
    @click.option(
        "--grain", metavar="line|daily", help="line: the spend view; daily: spend_daily [default: line; FOCUS: daily]."
    )
    @click.option(
        "--partition-by-day",
        is_flag=True,
        help="Parquet only: write a Hive-partitioned lake OUT/charge_day=YYYY-MM-DD/; a re-export replaces the "
        "partitions of its range.",
    )
    @click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
    @click.pass_obj
    def export(
        state: object,
        fmt: str | None,
        out_path: Path | None,
        start: str | None,
        end: str | None,
        teams: tuple[str, ...],
        grain: str | None,
        partition_by_day: bool,
        overwrite: bool,
    ) -> int:
        """Export spend as CSV, Parquet (a file or a day-partitioned lake) or FOCUS 1.2 rows."""
        # imported here: the export modules (and polars, through the bill constants) load only when used
        from finops.export import parse_request, run_export

        settings = state.settings  # type: ignore[attr-defined]
        request = parse_request(
            fmt=fmt,
            out=out_path,
            start=start,
            end=end,
            teams=teams,
            grain=grain,
            partition_by_day=partition_by_day,
            overwrite=overwrite,
        )
        with connect(settings, read_only=True) as db:
            result = run_export(db, request)
        _report(result)
        return 0


def _report(result: ExportResult) -> None:
    request, written = result.request, result.written
    spend_filter = request.spend_filter
    since = f"from {spend_filter.start}" if spend_filter.start else "from the first day"
    until = f"up to {spend_filter.end} (exclusive)" if spend_filter.end else "to the last day"
    teams = f"teams {', '.join(spend_filter.teams)}" if spend_filter.teams else "every team"
    where = f"{written.path}" if not request.partition_by_day else f"the lake {written.path}/"
    out.print(f"wrote {_rows(written.rows)} to {where} ({_WHAT[request.grain]}; UTC days {since} {until}; {teams})")
    if result.first_day is not None:
        out.print(f"  days with spend: {result.first_day} .. {result.last_day}")
    if request.partition_by_day:
        removed = len(written.partitions_removed)
        out.print(
            f"  {len(written.partitions_written):,} day partitions written (charge_day=YYYY-MM-DD)"
            + (f"; {removed:,} removed: their days have no rows any more" if removed else "")
        )
    column = "BilledCost" if request.grain == "focus" else "cost_usd"
    out.print(f"  {column} total: {result.total_usd:f} USD")
    if result.unpriced_rows and request.grain == "focus":
        err.print(
            f"warning: {_rows(result.unpriced_rows)} of usage with no known price; FOCUS has no NULL cost, so they "
            "carry 0 and x_PriceStatus 'Unpriced' (finops sql \"SELECT * FROM unpriced_usage\" lists the models)."
        )
    elif result.unpriced_rows:
        out.print(f"  {_rows(result.unpriced_rows)} of usage with no known price (cost_usd NULL, not in the total)")
    for team in result.missing_teams:
        err.print(f"warning: --team '{team}' has no spend in this range; the export holds none of its rows.")


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"
