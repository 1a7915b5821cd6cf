"""`GET /v1/alerts`: fired alerts and their delivery state, newest first; `GET /v1/alerts/{alert_id}`: one
alert with its payload and its delivery per channel.

An alert belongs to its budget's team: a scoped key sees the alerts of its teams' budgets only (not those of a
tag budget across every team), and another team's alert is the same 404 as one that does not exist. Channels
are redacted for every key but admin, in the channel and in the delivery error alike.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from finops.alert.ledger import get_alert, list_alerts
from finops.api.deps import DbDep, Reader, SettingsDep
from finops.api.models import AlertDelivery, AlertDetail, AlertRow, AlertsPage
from finops.api.paging import page_limit
from finops.api.routing import BodyLimitedRoute
from finops.errors import NotFound
from finops.store.keys import Role

router = APIRouter(route_class=BodyLimitedRoute, tags=["alerts"])

State = Literal["open", "recovered", "closed"]
Kind = Literal["actual", "forecast", "finding", "recovery"]
Delivery = Literal["none", "pending", "delivered", "failed"]
Names = Annotated[list[str] | None, Query(max_length=100)]


@router.get("/v1/alerts", response_model=AlertsPage)
def get_alerts(
    caller: Reader,
    db: DbDep,
    settings: SettingsDep,
    status: Annotated[list[State] | None, Query(max_length=10, description="The alert's state.")] = None,
    kind: Annotated[list[Kind] | None, Query(max_length=10)] = None,
    delivery: Annotated[list[Delivery] | None, Query(max_length=10, description="Summary over its channels.")] = None,
    budget_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    team: Names = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> AlertsPage:
    """Alerts of the teams this key sees, newest first (`status=open` for those still firing)."""
    limit = page_limit(limit, settings)
    rows = list_alerts(
        db,
        status=status,
        kind=kind,
        delivery=delivery,
        budget_id=budget_id,
        teams=caller.team_filter(team),
        limit=limit + 1,
        offset=offset,
    )
    more = len(rows) > limit
    return AlertsPage(
        rows=[AlertRow.of(r) for r in rows[:limit]],
        limit=limit,
        truncated=more,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


@router.get("/v1/alerts/{alert_id}", response_model=AlertDetail)
def get_one_alert(
    caller: Reader, db: DbDep, alert_id: Annotated[str, Path(min_length=1, max_length=200)]
) -> AlertDetail:
    """One alert: what its receivers got (`payload`) and each channel's delivery attempts."""
    try:
        row: dict[str, Any] | None = get_alert(db, alert_id)
    except NotFound:
        row = None
    if row is None or not caller.can_see(row["team"]):
        raise NotFound("No alert with that id; GET /v1/alerts lists the alerts this key can see.")
    reveal = caller.role is Role.ADMIN
    return AlertDetail(
        **AlertRow.of(row).model_dump(),
        payload=row["payload"],
        deliveries=[AlertDelivery.of(d, reveal=reveal) for d in row["deliveries"]],
    )
