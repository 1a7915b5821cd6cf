"""`finops ingest PATH... --source NAME`: load files, print what happened to every line."""

from __future__ import annotations

import contextlib
import json
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from finops.errors import InputError
from finops.ingest import SOURCES, IngestOptions, IngestReport, ingest_paths, parse_fx_rates
from finops.ingest.files import INPUT_SUFFIXES, discover
from finops.store.db import Database, connect

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _parse_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError(f"Unknown time zone '{value}'; expected an IANA name such as UTC or Europe/Paris.") from None
    return value


def progress_watch(db: Database, min_bytes: int) -> Callable[[str], AbstractContextManager[None]]:
    """A progress bar fed by DuckDB's own query progress, for files of at least `min_bytes`."""

    @contextlib.contextmanager
    def watch(name: str) -> Iterator[None]:
        if Path(name).stat().st_size < min_bytes or not err.is_terminal:
            yield
            return
        db.execute("SET enable_progress_bar = true")
        db.execute("SET enable_progress_bar_print = false")
        done = threading.Event()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task(f"reading {Path(name).name}", total=100)

            def poll() -> None:
                while not done.wait(0.2):
                    with contextlib.suppress(Exception):
                        pct = db.con.query_progress()
                        if pct >= 0:
                            bar.update(task, completed=pct)

            thread = threading.Thread(target=poll, daemon=True)
            thread.start()
            try:
                yield
            finally:
                done.set()
                thread.join()

    return watch


def _print_report(report: IngestReport) -> None:
    out.print(report.summary())
    if report.detected:
        out.print(f"  recognised as source [bold]{report.source}[/] ({report.file_format})", markup=True)
    if report.lines and report.duplicates == report.lines:
        out.print("  nothing new: every record was already ingested")
    for sample in report.samples:
        where = f"line {sample.line_number}" if sample.line_number is not None else "file"
        if sample.record_path:
            where += f" ({sample.record_path})"
        out.print(f"  {where}: {sample.message}. Kept in rejected_usage (reason={sample.reason}).")
    if report.rejected > len(report.samples):
        out.print(
            f"  ... {report.rejected - len(report.samples):,} more: "
            f'finops sql "SELECT * FROM rejected_usage WHERE batch_id = {report.batch_id}"'
        )


def register(cli: click.Group) -> None:
    sources = ", ".join([*SOURCES, "auto"])

    @cli.command("ingest")
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--source", "-s", required=True, metavar="NAME", help=f"One of: {sources}.")
    @click.option(
        "--timezone",
        "zone",
        metavar="ZONE",
        help="Zone of timestamps written without an offset (e.g. UTC); without it they are rejected.",
    )
    @click.option(
        "--fx-rate",
        "fx",
        multiple=True,
        metavar="CUR=RATE",
        help="USD per unit of a currency other than USD, e.g. EUR=1.08 (repeatable).",
    )
    @click.option(
        "--litellm-prompt-tokens",
        "prompt_includes",
        type=click.Choice(["auto", "all", "reads", "none"]),
        default="auto",
        show_default=True,
        help="litellm: what prompt_tokens includes of Anthropic-style cache reads and writes (releases differ; "
        "auto tells by the numbers, which cannot tell 'reads' from 'all' when uncached input >= cache writes).",
    )
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.pass_obj
    def ingest(
        state: object,
        paths: tuple[str, ...],
        source: str,
        zone: str | None,
        fx: tuple[str, ...],
        prompt_includes: str,
        fmt: str,
    ) -> int:
        """Ingest usage logs and provider exports (files, directories or glob patterns)."""
        settings = state.settings  # type: ignore[attr-defined]
        options = IngestOptions(
            zone=_parse_zone(zone),
            fx_rates=parse_fx_rates(fx, "--fx-rate"),
            max_future_s=settings.max_future_s,
            min_timestamp=settings.min_timestamp,
            litellm_prompt_tokens=prompt_includes,
        )
        failures = 0
        reports = []
        for raw in paths:  # a folder of rotated logs (gw.jsonl.1) would otherwise ingest nothing, silently
            if Path(raw).is_dir() and not discover([raw]):
                err.print(
                    f"warning: {raw} holds no file named *{', *'.join(INPUT_SUFFIXES)} (or .gz of them); "
                    "name files directly to read them whatever their names.",
                    markup=False,
                )
        with connect(settings) as db:
            for outcome in ingest_paths(
                db, paths, source, options, watch=progress_watch(db, settings.progress_min_bytes)
            ):
                if outcome.error is not None:
                    failures += 1
                    err.print(f"[bold red]error:[/] {escape(outcome.error.message)}", markup=True)
                    continue
                assert outcome.report is not None
                reports.append(outcome.report)
                if fmt == "text":
                    _print_report(outcome.report)
        if fmt == "json":
            click.echo(json.dumps([r.as_dict() for r in reports], indent=2, default=str))
        elif len(reports) > 1:
            total = sum(r.lines for r in reports)
            out.print(
                f"{len(reports)} files: {total:,} read, {sum(r.accepted for r in reports):,} accepted, "
                f"{sum(r.duplicates for r in reports):,} duplicates, {sum(r.rejected for r in reports):,} rejected"
            )
        return 1 if failures else 0
