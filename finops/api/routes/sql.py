"""`POST /v1/sql`: one read-only SELECT over the caller's views, time-limited and row-capped."""

from __future__ import annotations

import time
from functools import partial

import anyio
from fastapi import APIRouter

from finops.api.deps import DbDep, SettingsDep, SqlUser, StateDep
from finops.api.models import SqlRequest, SqlResult
from finops.api.routing import BodyLimitedRoute
from finops.errors import InputError

router = APIRouter(route_class=BodyLimitedRoute, tags=["sql"])


@router.post("/v1/sql", response_model=SqlResult)
async def post_sql(body: SqlRequest, caller: SqlUser, db: DbDep, settings: SettingsDep, state: StateDep) -> SqlResult:
    """Runs in a worker process over snapshots holding only the caller's teams' rows: no files, no network,
    no settings; stopped at FINOPS_SQL_TIME_LIMIT_MS; cut at `max_rows` with `truncated` set."""
    max_rows = body.max_rows or min(1000, settings.sql_max_rows)
    if max_rows > settings.sql_max_rows:
        raise InputError(
            f"max_rows is above the most rows a query returns ({settings.sql_max_rows}). The limit is "
            "FINOPS_SQL_MAX_ROWS.",
            max_rows=settings.sql_max_rows,
        )
    started = time.monotonic()  # the time limit counts from here: snapshot checks and waiting included
    with state.sql_slot(caller):
        result = await anyio.to_thread.run_sync(
            partial(
                state.sql.run,
                db,
                body.sql,
                teams=caller.teams,
                max_rows=max_rows,
                started=started,
                caller=caller.key_id,
            ),
            limiter=state.sql_threads,
        )
    return SqlResult.of(result)
