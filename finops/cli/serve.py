"""`finops serve`: the HTTP API (and the scheduler, when installed) in one process that owns the database."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import click

from finops.errors import ConfigError, FinopsError, InputError
from finops.settings import Settings

__all__ = ["register"]


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option("--host", metavar="HOST", help="Address to listen on [env FINOPS_API_HOST; default 127.0.0.1].")
    @click.option("--port", type=click.IntRange(0, 65535), help="Port [env FINOPS_API_PORT; default 8000].")
    @click.option("--no-scheduler", is_flag=True, help="Serve the API only; do not run scheduled jobs.")
    @click.pass_obj
    def serve(state: object, host: str | None, port: int | None, no_scheduler: bool) -> int:
        """Serve the HTTP API (docs at /docs). Keys: `finops keys create --role admin` before the first start."""
        import uvicorn

        from finops.api import create_app
        from finops.store.db import connect
        from finops.store.keys import list_keys
        from finops.store.usersql import ensure_snapshot_root

        settings = state.settings  # type: ignore[attr-defined]
        host = host or settings.api_host
        port = settings.api_port if port is None else port
        ensure_snapshot_root(settings)  # a configuration mistake is one sentence before the server starts
        if not no_scheduler and settings.api_scheduler:
            _check_watched_folders()
            _check_rule_files(settings)
        _check_port_free(host, port)
        database = connect(settings)  # fail here, with the usual sentence, if another process holds it
        try:
            if not list_keys(database, include_revoked=False):
                click.echo(
                    "warning: no API keys yet; every route but /healthz will answer 401. "
                    "Create one with `finops keys create --role admin` (stop the server first).",
                    err=True,
                )
            app = create_app(settings, database=database, run_scheduler=not no_scheduler)
            click.echo(f"finops API on http://{host}:{port} (docs: http://{host}:{port}/docs)", err=True)
            # the scheduler's jobs and the API's warnings, with time and level, beside uvicorn's own lines
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            logging.getLogger("apscheduler").setLevel(logging.WARNING)  # finops.jobs logs each job once
            uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        finally:
            database.close()
        return 0


def _check_watched_folders() -> None:
    """Before the server starts: a FINOPS_SCHEDULER_WATCH entry naming a file stops the command (ConfigError);
    a watched folder that does not exist or cannot be read is a warning, since it may appear later (a mount, a
    folder the log shipper creates on its first write): the scheduler starts, and every ingest scan logs it."""
    try:
        from finops.cli.jobs import warn_unreadable_folders
        from finops.jobs import load_scheduler_settings
    except ImportError:  # the scheduler is not installed: serve runs without it
        return
    warn_unreadable_folders(load_scheduler_settings())


def _check_rule_files(settings: Settings) -> None:
    """The ownership rules and price overrides every scheduled run reads: a missing or broken file stops the
    server at start (naming its variable), not every run after it, silently, in the server log."""
    from finops.attribute.owners import read_rules
    from finops.price.overrides import read_overrides

    for variable, path, read in (
        ("FINOPS_OWNERS", settings.owners, read_rules),
        ("FINOPS_PRICE_OVERRIDES", settings.price_overrides, read_overrides),
    ):
        if path is None:
            continue
        try:
            read(Path(path))
        except FinopsError as exc:
            raise ConfigError(f"{variable}: {exc.message}", variable=variable) from None


def _check_port_free(host: str, port: int) -> None:
    """A port in use is one sentence before anything starts (uvicorn would log it and exit 3)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"Port {port} on {host} cannot be used ({exc.strerror}); choose another with --port or "
                "FINOPS_API_PORT, or stop what holds it.",
                port=port,
            ) from None
