"""Reading the alert ledger: what `finops alerts list|show` and `GET /v1/alerts` return."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from finops.alert import store
from finops.errors import InputError, NotFound
from finops.store.db import Database

__all__ = ["ALERT_DELIVERIES", "ALERT_KINDS", "ALERT_STATES", "get_alert", "list_alerts"]

ALERT_STATES = ("open", "recovered", "closed")
ALERT_KINDS = ("actual", "forecast", "finding", "recovery")
ALERT_DELIVERIES = ("none", "pending", "delivered", "failed")


def _check(values: Sequence[str] | None, valid: tuple[str, ...], what: str) -> list[str] | None:
    if not values:
        return None
    for value in values:
        if value not in valid:
            raise InputError(f"Unknown {what} '{value}'. Valid values are: {', '.join(valid)}.", **{what: value})
    return list(values)


def list_alerts(
    db: Database,
    *,
    status: Sequence[str] | None = None,
    kind: Sequence[str] | None = None,
    delivery: Sequence[str] | None = None,
    budget_id: int | None = None,
    teams: Sequence[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Alerts newest first. `status` filters on the alert's state (open / recovered / closed), `delivery` on its
    delivery summary; `teams` restricts to budgets of those teams (a team-scoped API key)."""
    if limit < 1:
        raise InputError(f"limit is {limit}; expected a positive number of alerts.")
    if offset < 0:
        raise InputError(f"offset is {offset}; expected 0 or more.")
    rows = store.select_alerts(
        db,
        states=_check(status, ALERT_STATES, "status"),
        kinds=_check(kind, ALERT_KINDS, "kind"),
        deliveries=_check(delivery, ALERT_DELIVERIES, "delivery"),
        budget_id=budget_id,
        teams=teams,
        alert_id=None,
        limit=limit,
        offset=offset,
    )
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


def get_alert(db: Database, alert_id: str) -> dict[str, Any]:
    """One alert with its payload and its delivery per channel."""
    rows = store.select_alerts(
        db, states=None, kinds=None, deliveries=None, budget_id=None, teams=None, alert_id=alert_id, limit=1
    )
    if not rows:
        raise NotFound(f"No alert {alert_id}; `finops alerts list` shows the alerts.", alert_id=alert_id)
    row = rows[0]
    row["payload"] = json.loads(row["payload"])
    row["deliveries"] = store.select_deliveries(db, alert_id)
    return row
