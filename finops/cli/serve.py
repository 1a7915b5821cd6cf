"""`finops serve`: the HTTP API (and the scheduler, when installed) in one process that owns the database."""

from __future__ import annotations

import click

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
