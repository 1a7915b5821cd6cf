"""One router per resource. To add one: a module with `router = APIRouter(route_class=BodyLimitedRoute)`,
handlers that declare their permission through a role alias of `finops.api.deps`, and its name in
`ROUTERS` below."""

from __future__ import annotations

from fastapi import APIRouter

from finops.api.routes import alerts, budgets, dashboards, findings, forecasts, health, ingest, keys, spend, sql

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [health.router, spend.router, findings.router, sql.router, ingest.router, keys.router]
ROUTERS.append(dashboards.router)  # the HTML dashboards, under /dashboards
ROUTERS.append(budgets.router)  # /v1/budgets
ROUTERS.append(alerts.router)  # /v1/alerts
ROUTERS.append(forecasts.router)  # /v1/forecasts
