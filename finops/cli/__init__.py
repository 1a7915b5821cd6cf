"""The `finops` command line: `finops [--db PATH] COMMAND ...`.

A user's mistake ends in one sentence on stderr and a non-zero exit code, never a traceback
(set FINOPS_DEBUG=1 to see one for an internal error).
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from finops import __version__, limits
from finops.errors import FinopsError
from finops.settings import Settings, load_settings

__all__ = ["CliState", "cli", "main"]

err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


@dataclass
class CliState:
    settings: Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--db",
    "db",
    type=click.Path(path_type=Path, dir_okay=False),
    help="DuckDB database file [env FINOPS_DB; default ./finops.duckdb].",
)
@click.version_option(__version__, prog_name="finops")
@click.pass_context
def cli(ctx: click.Context, db: Path | None) -> None:
    """finops: what your AI costs, who spent it, and when it is about to go wrong."""
    ctx.obj = CliState(settings=load_settings(**({"db": db} if db else {})))


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _register_commands()
    try:
        result = cli.main(args=argv, prog_name="finops", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FinopsError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # an internal error: say so plainly, traceback only on request
        if (limit := machine_limit(exc)) is not None:  # the machine's memory or disk, not a bug
            err.print(f"error: {limit}", markup=False)
            sys.exit(1)
        if os.environ.get("FINOPS_DEBUG"):
            traceback.print_exc()
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc)[:500])}\n"
            "This is a bug in finops, not in your input; rerun with FINOPS_DEBUG=1 for details.",
            markup=True,
        )
        sys.exit(70)
    if isinstance(result, int) and result:
        sys.exit(result)


def machine_limit(exc: BaseException) -> str | None:
    """The sentence for an error that is the machine's limit (DuckDB's memory limit, a full disk, a file it
    cannot write), else None."""
    limit = limits.machine_limit(exc)
    if limit is None:
        return None
    if limit.code == "out_of_memory":
        return (
            f"DuckDB ran out of memory ({limit.cause}). The statement was rolled back. Raise "
            "FINOPS_MEMORY_LIMIT (e.g. 8GB or 80%), give fewer threads with FINOPS_THREADS, or free memory, and "
            "run the command again."
        )
    if limit.code == "disk_full":
        return (
            f"the disk is full ({limit.cause}). Nothing of the failed step was committed. Free space on the "
            "disk of the database (and of the temporary directory, TMPDIR), then run the command again."
        )
    return (
        f"DuckDB could not read or write a file: {limit.cause}. Check the disk space and permissions of "
        "the database's directory and of the temporary directory, then run the command again."
    )


_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    from finops.cli import alerts, budgets, dashboard, demo, detect, export, ingest, jobs, keys, prices, run, serve, sql

    for module in (ingest, run, prices, sql, export, demo, dashboard, detect, budgets, alerts, jobs, keys, serve):
        module.register(cli)
    _registered = True
