"""One router per resource. To add one: a module with `router = APIRouter(route_class=BodyLimitedRoute)`,
handlers that declare their permission through a role alias of `finops.api.deps`, and its name in
`ROUTERS` below."""

from __future__ import annotations

from fastapi import APIRouter

from finops.api.routes import findings, health, ingest, keys, spend, sql

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [health.router, spend.router, findings.router, sql.router, ingest.router, keys.router]
