"""Reads and writes of delivery: claim due outbox rows, record each attempt, disable endpoints that answered 410.

A claim moves the rows' `next_attempt_at` forward by a lease, so a second drainer in the same process skips
them; a drainer that dies mid-send leaves them due again when the lease runs out (at-least-once; the
receiver deduplicates on the alert id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finops.alert.store import refresh_delivery
from finops.store.db import Database
from finops.store.spend import frame

__all__ = ["Claimed", "Result", "claim_due", "disable_endpoint", "enable_endpoint", "endpoints", "record_results"]


@dataclass(frozen=True)
class Claimed:
    """One outbox row being sent, with its alert's payload."""

    delivery_id: int
    alert_id: str
    channel: str
    attempts: int
    payload: str  # JSON text


@dataclass(frozen=True)
class Result:
    """What happened to one claimed row. `status` is pending (retry at `next_attempt_at`), delivered, failed
    or disabled; `counted` is False for a row that was not tried (its endpoint failed earlier in the drain)."""

    delivery_id: int
    alert_id: str
    status: str
    next_attempt_at: datetime | None
    last_status: str | None
    last_error: str | None
    counted: bool = True


def claim_due(
    db: Database, *, now: datetime, lease_until: datetime, limit: int, skip: Sequence[int], ignore_schedule: bool
) -> list[Claimed]:
    """Pending rows due at `now` (or all pending ones), oldest first, leased until `lease_until`."""
    rows = db.execute(
        """UPDATE alert_deliveries SET next_attempt_at = $lease
           WHERE delivery_id IN (
               SELECT delivery_id FROM alert_deliveries
               WHERE status = 'pending' AND ($all OR next_attempt_at <= $now) AND NOT list_contains($skip, delivery_id)
               ORDER BY next_attempt_at, delivery_id LIMIT $n)
           RETURNING delivery_id, alert_id, channel, attempts""",
        {"lease": lease_until, "now": now, "n": limit, "skip": list(skip), "all": ignore_schedule},
    )
    if not rows:
        return []
    payloads = dict(
        db.execute(
            "SELECT alert_id, CAST(payload AS VARCHAR) FROM alerts WHERE list_contains($ids, alert_id)",
            {"ids": sorted({r[1] for r in rows})},
        )
    )
    return [Claimed(r[0], r[1], r[2], r[3], payloads[r[1]]) for r in sorted(rows)]


def record_results(db: Database, results: Sequence[Result], now: datetime) -> None:
    """Write each attempt's outcome and refresh the alerts' delivery summary, in one transaction."""
    if not results:
        return
    with db.transaction():
        for r in results:
            db.execute(
                """UPDATE alert_deliveries SET status = $status, next_attempt_at = $next,
                       attempts = attempts + $counted,
                       last_attempt_at = CASE WHEN $counted = 1 THEN $now ELSE last_attempt_at END,
                       last_status = CASE WHEN $counted = 1 THEN $last_status ELSE last_status END,
                       last_error = CASE WHEN $counted = 1 THEN $last_error ELSE last_error END,
                       delivered_at = CASE WHEN $status = 'delivered' THEN $now ELSE delivered_at END
                   WHERE delivery_id = $id""",
                {
                    "id": r.delivery_id,
                    "status": r.status,
                    "next": r.next_attempt_at,
                    "counted": int(r.counted),
                    "now": now,
                    "last_status": r.last_status,
                    "last_error": r.last_error,
                },
            )
        refresh_delivery(db, sorted({r.alert_id for r in results}))


def disable_endpoint(db: Database, channel: str, reason: str, now: datetime) -> None:
    """Stop sending to `channel`: recorded in `alert_endpoints`, its pending rows become `disabled`."""
    with db.transaction():
        db.execute(
            """INSERT INTO alert_endpoints (channel, disabled_at, disabled_reason, updated_at)
               VALUES ($c, $now, $reason, $now)
               ON CONFLICT (channel) DO UPDATE SET disabled_at = $now, disabled_reason = $reason, updated_at = $now""",
            {"c": channel, "now": now, "reason": reason},
        )
        ids = [
            r[0]
            for r in db.execute(
                "UPDATE alert_deliveries SET status = 'disabled', next_attempt_at = NULL, "
                "last_error = coalesce(last_error, $reason) WHERE channel = $c AND status = 'pending' "
                "RETURNING alert_id",
                {"c": channel, "reason": reason},
            )
        ]
        if ids:
            refresh_delivery(db, sorted(set(ids)))


def enable_endpoint(db: Database, channel: str, now: datetime) -> bool:
    """Send to `channel` again (new alerts only); False when it was not disabled."""
    rows = db.execute(
        "UPDATE alert_endpoints SET disabled_at = NULL, disabled_reason = NULL, updated_at = $now "
        "WHERE channel = $c AND disabled_at IS NOT NULL RETURNING channel",
        {"c": channel, "now": now},
    )
    return bool(rows)


def endpoints(db: Database) -> list[dict[str, Any]]:
    """Every channel that has outbox rows or endpoint state, with its counts and whether it is disabled."""
    return frame(
        db,
        """WITH channels AS (SELECT channel FROM alert_deliveries UNION SELECT channel FROM alert_endpoints)
           SELECT c.channel, e.disabled_at, e.disabled_reason,
                  count(d.delivery_id) FILTER (WHERE d.status = 'pending') AS pending,
                  count(d.delivery_id) FILTER (WHERE d.status = 'delivered') AS delivered,
                  count(d.delivery_id) FILTER (WHERE d.status IN ('failed', 'disabled')) AS undelivered,
                  max(d.last_attempt_at) AS last_attempt_at
           FROM channels c LEFT JOIN alert_endpoints e USING (channel) LEFT JOIN alert_deliveries d USING (channel)
           GROUP BY ALL ORDER BY c.channel""",
    ).to_dicts()
