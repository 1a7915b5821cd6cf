"""`finops jobs list|run|start`: the scheduler's jobs, one at a time or on their intervals in the foreground."""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import asdict, is_dataclass
from typing import Any

import click
from rich.console import Console

from finops.alert.settings import load_alert_settings
from finops.jobs import (
    JOB_IDS,
    SchedulerSettings,
    WatchedFolder,
    WatchReport,
    job_table,
    load_scheduler_settings,
    shared_database,
    shutdown,
    start_scheduler,
    watch_problem,
)
from finops.store.db import connect

__all__ = ["register", "warn_unreadable_folders"]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _jsonable(result: object) -> Any:
    as_dict = getattr(result, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    return asdict(result) if is_dataclass(result) and not isinstance(result, type) else result


def _watch_lines(folders: list[WatchedFolder]) -> list[str]:
    """One line per watched folder, with what stops it being read now."""
    if not folders:
        return ["watches no folder (FINOPS_SCHEDULER_WATCH is empty)"]
    return [f"watches {f.path} ({f.source})" + (f": {p}" if (p := watch_problem(f)) else "") for f in folders]


def warn_unreadable_folders(scheduler_settings: SchedulerSettings) -> None:
    """Say on stderr, before a scheduler starts, which watched folders cannot be read now (they may appear
    later: the scheduler keeps going, and every ingest scan logs them again)."""
    for folder in scheduler_settings.folders():
        problem = watch_problem(folder)
        if problem is not None:
            err.print(f"warning: FINOPS_SCHEDULER_WATCH: watched folder {folder.path} {problem}.")


def register(cli: click.Group) -> None:
    @cli.group("jobs")
    def jobs() -> None:
        """The scheduler's jobs (finops serve runs them on their intervals)."""

    @jobs.command("list")
    @click.pass_obj
    def list_command(state: object) -> int:
        """Each job and its interval (FINOPS_SCHEDULER_*), and the folders the ingest job watches."""
        scheduler_settings = load_scheduler_settings()
        table = job_table(state.settings, scheduler_settings, load_alert_settings())  # type: ignore[attr-defined]
        for job in table:
            out.print(f"{job.job_id:8} every {job.interval_s:g} s")
            if job.job_id == "ingest":
                for line in _watch_lines(scheduler_settings.folders()):
                    out.print(f"{'':8} {line}")
        return 0

    @jobs.command("run")
    @click.argument("job_id", type=click.Choice(JOB_IDS))
    @click.pass_obj
    def run_command(state: object, job_id: str) -> int:
        """Run one job now, as the scheduler would. The ingest job exits with code 1 when a watched folder or
        one of its files could not be read (its report, on stdout, says which)."""
        settings = state.settings  # type: ignore[attr-defined]
        table = {j.job_id: j for j in job_table(settings, load_scheduler_settings(), load_alert_settings())}
        with connect(settings) as db:
            result = table[job_id].function(db)
        click.echo(json.dumps(_jsonable(result), indent=2, default=str))
        if isinstance(result, WatchReport) and result.errors:
            for error in result.errors:
                err.print(f"error: ingest: {error}.")
            return 1
        return 0

    @jobs.command("start")
    @click.pass_obj
    def start_command(state: object) -> int:
        """Run the scheduler in the foreground (without the HTTP API) until interrupted."""
        settings = state.settings  # type: ignore[attr-defined]
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        warn_unreadable_folders(load_scheduler_settings())
        with connect(settings) as db:
            scheduler = start_scheduler(settings, shared_database(db))
            out.print("scheduler started; Ctrl-C stops it after the running jobs finish")
            stop.wait()
            shutdown(scheduler)
        return 0
