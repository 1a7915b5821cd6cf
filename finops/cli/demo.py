"""`finops demo`: a demo database from the bundled sample data (a fuller demo comes with the dashboards)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click
from rich.console import Console

from finops.cli.ingest import _print_report
from finops.ingest import IngestOptions, ingest_paths
from finops.store.db import connect

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)


def register(cli: click.Group) -> None:
    @cli.command("demo")
    @click.option("--no-serve", is_flag=True, help="Build and print a summary only.")
    @click.pass_obj
    def demo(state: object, no_serve: bool) -> int:
        """Build a demo database from the bundled sample logs and print what it holds."""
        settings = state.settings  # type: ignore[attr-defined]
        raw = Path(str(resources.files("finops.fixtures").joinpath("raw")))
        with connect(settings) as db:
            for outcome in ingest_paths(db, [raw], "auto", IngestOptions()):
                if outcome.report:
                    _print_report(outcome.report)
                elif outcome.error:
                    out.print(f"skipped: {outcome.error.message}")
            rows = db.fetchall(
                "SELECT kind, provider, model, count(*), sum(input_tokens), sum(output_tokens) "
                "FROM usage GROUP BY ALL ORDER BY ALL"
            )
        out.print(f"\nDemo database: {settings.db}")
        for kind, provider, model, n, tin, tout in rows:
            out.print(
                f"  {kind:6} {provider or '-':10} {model or '-':28} {n:>6,} records {tin or 0:>12,} in "
                f"{tout or 0:>10,} out"
            )
        out.print(f'\nTry: finops --db {settings.db} sql "SELECT team, feature, count(*) FROM usage GROUP BY ALL"')
        return 0
