"""`finops demo`: build the demo database, run every stage, create keys and serve the dashboards.

`build_demo_database` does the work (tests call it): the demo's inputs from `finops.synth.demo` are ingested
like any user's files, `run_once` prices, attributes, detects and forecasts, monthly budgets are set from
those forecasts (one about to be breached), and a second `run_once` evaluates them (forecast breach dates,
alerts). The database it writes is replaced by the next demo, but never a database that holds other data.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path

import click
import polars as pl
from rich.console import Console

from finops.alert.budgets import BudgetSpec, set_budget
from finops.errors import InputError
from finops.ingest import IngestOptions, IngestReport, ingest_paths
from finops.pipeline import RunSummary, run_once
from finops.settings import Settings
from finops.store import reports
from finops.store.db import Database, connect
from finops.store.keys import create_key, list_keys
from finops.synth.demo import DEMO_SEED, DemoBudget, DemoPlan, default_as_of, demo_budgets, generate_demo, write_demo

__all__ = ["DEMO_KEY_NAME", "DemoSummary", "build_demo_database", "register"]

out = Console(highlight=False, soft_wrap=True, markup=False)

DEMO_KEY_NAME = "finops demo: admin"
_LIMIT_MS = 60_000


@dataclass
class DemoSummary:
    db: Path
    seed: int
    as_of: datetime
    seconds: float = 0.0
    reports: list[IngestReport] = field(default_factory=list)
    runs: list[RunSummary] = field(default_factory=list)
    budgets: list[DemoBudget] = field(default_factory=list)
    admin_key: str = ""
    owner_key: str = ""
    owner_team: str = ""
    teams: list[str] = field(default_factory=list)
    month_spend: dict[date, Decimal] = field(default_factory=dict)  # UTC month -> spend
    findings: dict[str, int] = field(default_factory=dict)  # kind -> count
    alerts: int = 0


def build_demo_database(
    settings: Settings,
    *,
    seed: int = DEMO_SEED,
    as_of: datetime | None = None,
    rows: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> DemoSummary:
    """Build the demo at `settings.db` (replacing an earlier demo there) and return what it holds."""
    started = time.perf_counter()
    as_of = as_of or default_as_of()
    plan = DemoPlan(as_of=as_of, seed=seed)
    plan = replace(plan, rows=rows) if rows else plan
    _clear_earlier_demo(settings)
    summary = DemoSummary(db=settings.db, seed=seed, as_of=as_of)
    prices = Path(str(resources.files("finops.fixtures").joinpath("prices.csv")))
    with tempfile.TemporaryDirectory(prefix="finops-demo-") as folder:
        progress(f"generating {plan.days} days of data ending {as_of:%Y-%m-%d} (seed {seed})")
        files = write_demo(generate_demo(plan), Path(folder))
        with connect(settings) as db:
            for source, paths in files.items():
                progress(f"ingesting {source}")
                summary.reports += _ingest(db, paths, source)
            progress("pricing, attributing, detecting, forecasting")
            summary.runs.append(run_once(db, as_of=as_of, price_overrides=prices, detect_horizon_days=plan.days))
            progress("setting budgets and evaluating them")
            summary.budgets = _set_budgets(db, as_of, plan.start)
            summary.runs.append(run_once(db, as_of=as_of, price_overrides=prices, detect_horizon_days=plan.days))
            summary.owner_team = summary.budgets[1].team if len(summary.budgets) > 1 else summary.budgets[0].team
            summary.admin_key = create_key(db, "admin", name=DEMO_KEY_NAME).token
            summary.owner_key = create_key(
                db, "owner", [summary.owner_team], name=f"finops demo: owner of {summary.owner_team}"
            ).token
            _describe(db, summary, plan)
    summary.seconds = time.perf_counter() - started
    return summary


def _clear_earlier_demo(settings: Settings) -> None:
    """Remove the database at `settings.db` if an earlier demo (or nothing) is in it; refuse otherwise."""
    path = settings.db
    if not path.exists():
        return
    with connect(settings) as db:
        names = {key.name for key in list_keys(db)}
        batches = db.scalar("SELECT count(*) FROM ingest_batches")
    if batches and DEMO_KEY_NAME not in names:
        raise InputError(
            f"{path} already holds data that is not from the demo; run the demo on another file "
            "(finops --db demo.duckdb demo) or remove it first."
        )
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(settings.sql_snapshot_dir or path.with_name(path.name + ".sql-snapshots"), ignore_errors=True)


def _ingest(db: Database, paths: list[Path], source: str) -> list[IngestReport]:
    found = []
    for outcome in ingest_paths(db, paths, source, IngestOptions()):
        if outcome.error is not None:
            raise outcome.error
        assert outcome.report is not None
        found.append(outcome.report)
    return found


def _set_budgets(db: Database, as_of: datetime, since: datetime) -> list[DemoBudget]:
    forecasts = reports.period_forecasts(db, as_of=as_of, teams=None, time_limit_ms=_LIMIT_MS)
    teams = forecasts.filter(pl.col("team").is_not_null(), pl.col("feature").is_null())
    budgets = demo_budgets(teams)
    for budget in budgets:
        spec = BudgetSpec(amount_usd=budget.amount_usd, team=budget.team, period_kind="month")
        set_budget(db, spec, now=since)
    return budgets


def _describe(db: Database, summary: DemoSummary, plan: DemoPlan) -> None:
    window = reports.SpendQuery(start=plan.start.date(), end=plan.as_of.date(), group_by=("month",))
    months = reports.spend_frame(db, window, time_limit_ms=_LIMIT_MS)
    summary.month_spend = dict(zip(months["month"].to_list(), months["cost_usd"].to_list(), strict=True))
    summary.teams = [t for t in reports.spend_teams(db) if not t.startswith("__")]
    findings = reports.findings_frame(
        db,
        reports.FindingsQuery(start=plan.start.date(), end=plan.as_of.date(), limit=100_000),
        time_limit_ms=_LIMIT_MS,
    )
    summary.findings = dict(findings.group_by("kind").len().sort("kind").iter_rows())  # one row per kind
    summary.alerts = reports.alerts_frame(
        db,
        start=plan.start.date(),
        end=plan.as_of.date() + timedelta(days=1),
        teams=None,
        limit=100_000,
        time_limit_ms=_LIMIT_MS,
    ).height


def print_summary(summary: DemoSummary) -> None:
    accepted = sum(r.accepted for r in summary.reports)
    out.print(f"Demo database: {summary.db} (seed {summary.seed}, as of {summary.as_of:%Y-%m-%d %H:%M} UTC)")
    out.print(f"  built in {summary.seconds:.1f} s: {accepted:,} records from {len(summary.reports)} files")
    out.print(f"  teams: {', '.join(summary.teams)}")
    for month, cost in summary.month_spend.items():
        out.print(f"  spend {month:%Y-%m}: ${cost:,.2f}")
    out.print("  findings: " + ", ".join(f"{kind} {n}" for kind, n in summary.findings.items()))
    for budget in summary.budgets:
        out.print(f"  budget {budget.team}: ${budget.amount_usd:,} a month ({budget.why})")
    out.print(f"  alerts fired: {summary.alerts}")


def register(cli: click.Group) -> None:
    @cli.command("demo")
    @click.option("--no-serve", is_flag=True, help="Build the demo database and print a summary only.")
    @click.option("--seed", type=int, default=DEMO_SEED, show_default=True, help="Seed of the generated data.")
    @click.option(
        "--as-of",
        "as_of",
        metavar="YYYY-MM-DD",
        help="The day the demo is evaluated at (00:00 UTC); data ends the day before. Default: a recent Monday.",
    )
    @click.option("--host", metavar="HOST", help="Address to serve on [env FINOPS_API_HOST; default 127.0.0.1].")
    @click.option("--port", type=click.IntRange(0, 65535), help="Port [env FINOPS_API_PORT; default 8000; 0: any].")
    @click.option("--rows", type=click.IntRange(1_000, 10_000_000), hidden=True, help="Gateway records (tests).")
    @click.pass_obj
    def demo(
        state: object,
        no_serve: bool,
        seed: int,
        as_of: str | None,
        host: str | None,
        port: int | None,
        rows: int | None,
    ) -> int:
        """Build a realistic demo database (8 teams, 9 weeks, GPU jobs, bills, incidents, budgets), run every
        stage, and serve the dashboards on localhost with a new admin key."""
        settings: Settings = state.settings  # type: ignore[attr-defined]
        when = _parse_as_of(as_of)
        host = host or settings.api_host
        port = _free_port(host, settings.api_port if port is None else port) if not no_serve else 0
        summary = build_demo_database(
            settings, seed=seed, as_of=when, rows=rows, progress=lambda step: click.echo(f"demo: {step}", err=True)
        )
        print_summary(summary)
        if no_serve:
            out.print(f'\nTry: finops --db {summary.db} sql "SELECT team, sum(cost_usd) FROM spend GROUP BY 1"')
            return 0
        _serve(settings, summary, host, port)
        return 0


def _parse_as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--as-of '{text}' is not a date; expected YYYY-MM-DD, e.g. 2026-11-16.") from None
    when = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if when > datetime.now(UTC):
        raise InputError(f"--as-of {day} is in the future; the demo's data must end before now (ingest refuses it).")
    return when


def _free_port(host: str, port: int) -> int:
    """`port` if it can be bound on `host` (a free one for 0), else an `InputError` saying what to do."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise InputError(
                f"Port {port} on {host} is in use (or the address is not this machine's); "
                "pass --port with a free port, or --port 0 for any."
            ) from None
        return int(sock.getsockname()[1])


def _serve(settings: Settings, summary: DemoSummary, host: str, port: int) -> None:
    import uvicorn

    from finops.api import create_app

    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    out.print(f"\nDashboards: {base}/dashboards/login?key={summary.admin_key}")
    out.print(f"  admin key: {summary.admin_key}")
    out.print(f"  owner key of team {summary.owner_team} (sees only that team): {summary.owner_key}")
    out.print(f"  API: curl -H 'Authorization: Bearer {summary.admin_key}' {base}/v1/spend?group_by=team")
    out.print("Stop with Ctrl-C.")
    sys.stdout.flush()  # before uvicorn takes over: a script reading our output needs the URL now
    database = connect(settings)
    try:
        app = create_app(settings, database=database, run_scheduler=False)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        database.close()
