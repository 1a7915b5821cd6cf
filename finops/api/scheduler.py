"""Start the scheduler inside `finops serve` when the scheduler module is installed.

`finops.jobs` is written by another stage; this looks for `start_scheduler` there and passes it, by
name, whichever of these parameters it declares: `settings`, `db_provider` (a context manager giving a
job its own cursor while it holds the app's write lock, so a scheduled run or watched-folder ingest never
overlaps an API push; SQL snapshots and cached answers are marked stale after each job), `db` / `database` (the app's
`Database`), `write_lock` / `lock`, `invalidate`. Stopping calls `finops.jobs.shutdown` (with the handle when it
takes one) or the handle's own `shutdown()`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

from finops.api.state import AppState
from finops.store.db import Database

__all__ = ["start", "stop"]

log = logging.getLogger("finops.api")


def start(state: AppState) -> object | None:
    try:
        jobs = importlib.import_module("finops.jobs")
    except ImportError:
        log.info("finops.jobs is not installed: serving without the scheduler")
        return None
    start_scheduler = getattr(jobs, "start_scheduler", None)
    if not callable(start_scheduler):
        log.info("finops.jobs has no start_scheduler: serving without the scheduler")
        return None
    offered: dict[str, Any] = {
        "settings": state.settings,
        "db_provider": _provider(state),
        "db": state.db,
        "database": state.db,
        "write_lock": state.write_lock,
        "lock": state.write_lock,
        "invalidate": state.changed,
    }
    params = inspect.signature(start_scheduler).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if k in params or (takes_any and k in {"settings", "db", "write_lock"})}
    handle: object = start_scheduler(**kwargs)
    log.info("scheduler started")
    return handle if handle is not None else True


def _provider(state: AppState) -> Callable[[], contextlib.AbstractContextManager[Database]]:
    @contextlib.contextmanager
    def provide() -> Iterator[Database]:
        with state.write_lock, state.database() as db:
            try:
                yield db
            finally:
                state.changed()

    return provide


def stop(handle: object | None) -> None:
    if handle is None:
        return
    jobs = importlib.import_module("finops.jobs")
    shutdown = getattr(jobs, "shutdown", None)
    with contextlib.suppress(Exception):
        if callable(shutdown):
            takes = len(inspect.signature(shutdown).parameters) > 0
            shutdown(handle) if takes and handle is not True else shutdown()
        elif hasattr(handle, "shutdown"):
            handle.shutdown()
