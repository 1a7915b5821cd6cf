"""`finops run`: price, attribute and rebuild what new data touched (what the scheduler runs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from finops.errors import InputError
from finops.pipeline import run_once
from finops.store.db import connect

__all__ = ["parse_as_of", "register"]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def parse_as_of(value: str | None) -> datetime | None:
    """An ISO date or timestamp; a naive one is UTC (`--as-of` is a replay position, not log data)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"--as-of '{value}' is not a date or timestamp; expected e.g. 2026-10-15 or 2026-10-15T12:00:00Z."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def register(cli: click.Group) -> None:
    @cli.command("run")
    @click.option("--as-of", "as_of", metavar="TIMESTAMP", help="Evaluate as if it were this moment (UTC).")
    @click.option(
        "--owners", type=click.Path(path_type=Path, dir_okay=False), help="Ownership rules CSV [env FINOPS_OWNERS]."
    )
    @click.option(
        "--prices",
        "prices",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Price overrides CSV [env FINOPS_PRICE_OVERRIDES].",
    )
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.pass_obj
    def run(state: object, as_of: str | None, owners: Path | None, prices: Path | None, fmt: str) -> int:
        """Price and attribute new usage, and rebuild the days it touched."""
        settings = state.settings  # type: ignore[attr-defined]
        with connect(settings) as db:
            summary = run_once(
                db,
                as_of=parse_as_of(as_of),
                owners=owners or settings.owners,
                price_overrides=prices or settings.price_overrides,
                idle_policy=settings.idle_policy,
                detect_horizon_days=settings.detect_horizon_days,
                detect_history_days=settings.detect_history_days,
                chunk_records=settings.run_chunk_records,
            )
        if fmt == "json":
            click.echo(json.dumps(summary.as_dict(), indent=2))
            return 0
        out.print(
            f"run {summary.run_id} as of {summary.as_of:%Y-%m-%d %H:%M:%S}Z: "
            f"{summary.priced_records:,} records priced, {summary.unpriced_records:,} unpriced, "
            f"{len(summary.days_rebuilt)} day(s) rebuilt, {summary.findings} finding(s) in the horizon"
        )
        if summary.catalog_reloaded:
            out.print("  loaded the genai-prices catalog")
        if summary.unpriced_records:
            out.print('  unpriced models: finops sql "SELECT * FROM unpriced_usage"')
        day = summary.as_of.astimezone(UTC).date()
        if summary.data_through is not None and (day - summary.data_through).days >= 2:
            err.print(
                f"warning: the newest spend is of {summary.data_through}, {(day - summary.data_through).days} days "
                f"before {day}: is ingest behind? Forecasts take the days since as not reported yet (forecast, "
                "not $0), and alerts on actual spend cannot see them.",
                markup=False,
            )
        return 0
