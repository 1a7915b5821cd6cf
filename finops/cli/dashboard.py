"""`finops dashboard --out DIR`: the dashboards as static HTML files (data and plotly.js embedded)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from finops.dashboards.filters import parse_filter
from finops.dashboards.site import write_static
from finops.errors import InputError
from finops.settings import Settings
from finops.store.db import connect
from finops.store.reports import latest_as_of, spend_teams

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)


def register(cli: click.Group) -> None:
    @cli.command("dashboard")
    @click.option(
        "--out",
        "out_dir",
        required=True,
        type=click.Path(path_type=Path, file_okay=False),
        help="Folder to write index.html, findings.html and team-<name>.html into (created if missing).",
    )
    @click.option("--team", "teams", multiple=True, metavar="TEAM", help="Only these teams (repeatable).")
    @click.option("--start", metavar="YYYY-MM-DD", help="First UTC day [default: the first of last month].")
    @click.option("--end", metavar="YYYY-MM-DD", help="UTC day after the last one [default: after the last run].")
    @click.option("--grain", type=click.Choice(["day", "month"]), default="day", show_default=True)
    @click.pass_obj
    def dashboard(
        state: object, out_dir: Path, teams: tuple[str, ...], start: str | None, end: str | None, grain: str
    ) -> int:
        """Write the finance overview, findings and team dashboards as static HTML files to mail around."""
        settings: Settings = state.settings  # type: ignore[attr-defined]
        with connect(settings, read_only=True) as db:
            known = spend_teams(db)
            unknown = [t for t in teams if t not in known]
            if unknown:
                listed = ", ".join(known[:20]) or "none yet (run finops run first)"
                raise InputError(f"Team '{unknown[0]}' has no spend in {settings.db}; teams with spend: {listed}.")
            as_of = latest_as_of(db) or datetime.now(UTC)
            view_filter = parse_filter(start=start, end=end, grain=grain, teams=list(teams) or None, as_of=as_of)
            pages = list(teams) or [t for t in known if not t.startswith("__")]
            files = write_static(db, out_dir, view_filter, teams=pages, time_limit_ms=settings.api_query_time_limit_ms)
        for file in files:
            out.print(f"{file.path}  {file.bytes / 1e6:.1f} MB  ({file.view}{': ' + file.team if file.team else ''})")
        out.print(f"{len(files)} files, {view_filter.start} to {view_filter.end} (end exclusive, UTC)")
        return 0
