"""`create_app(settings)`: the whole HTTP API, built from settings (nothing is read at import time).

The lifespan opens the database (unless one is given; the app then owns it), starts the SQL workers
lazily on the first query, and the scheduler when asked; on shutdown it stops them in reverse order. The read
routes are served through the read cache (`finops.api.cache`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finops import __version__
from finops.api import scheduler
from finops.api.cache import ReadCache, ReadCacheMiddleware
from finops.api.errors import install_error_handlers
from finops.api.routes import ROUTERS
from finops.api.state import AppState
from finops.settings import Settings
from finops.store.db import Database, connect
from finops.store.usersql import UserSql

__all__ = ["create_app"]

DESCRIPTION = """What your AI costs, who spent it, and when it is about to go wrong.

Every route but `/healthz` needs `Authorization: Bearer <key>` (`finops keys create --role ROLE`).
Money is a decimal string (exact); dates are UTC. Errors are `{"detail": "...", "code": "..."}`;
request-shape errors keep FastAPI's 422 body."""


def create_app(settings: Settings, *, database: Database | None = None, run_scheduler: bool = False) -> FastAPI:
    """The API over `settings.db` (or over `database`, which the caller then keeps and closes)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or connect(settings)
        state = AppState(settings=settings, db=db, sql=UserSql(settings), cache=ReadCache(settings.api_cache_entries))
        app.state.finops = state
        if run_scheduler and settings.api_scheduler:
            state.scheduler = scheduler.start(state)
        try:
            yield
        finally:
            scheduler.stop(state.scheduler)
            state.sql.close()
            if database is None:
                db.close()

    app = FastAPI(title="finops", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(ReadCacheMiddleware)
    app.add_middleware(HeadAsGet)  # outermost: HEAD goes through auth, cache and routes as a GET
    for router in ROUTERS:
        app.include_router(router)
    return app


class HeadAsGet:
    """HEAD answered as the GET of the same URL without its body (RFC 9110: a server that has GET has HEAD;
    uptime checks and load balancers send it). FastAPI routes declare GET only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
