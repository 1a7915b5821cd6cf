"""Reads and writes of the alert stage: budgets, spend per budget scope, forecasts, drivers and the ledger.

All SQL of `finops.alert` lives here and in `finops.alert.outbox`; values are bound (`$name`), never
formatted into the text. Spend is aggregated in SQL, for all budgets of a run at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from finops.alert.locks import LEDGER_LOCK
from finops.store.db import Database
from finops.store.spend import frame, registered

__all__ = [
    "alert_channels",
    "budget_id_for_scope",
    "close_period",
    "deactivate_budget",
    "fetch_budget",
    "fetch_budgets",
    "fired_alerts",
    "insert_alerts",
    "insert_budget",
    "known_teams",
    "latest_forecast",
    "period_records",
    "record_period",
    "scope_drivers",
    "scope_spend",
    "tag_spend",
    "unalerted_findings",
    "update_budget",
]

_BUDGET_COLUMNS = (
    "budget_id, team, feature, tag, period_kind, period_start, period_end, amount_usd, thresholds, channels, "
    "active, created_at, updated_at"
)


def _dicts(db: Database, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return frame(db, sql, params).to_dicts()


# ------------------------------------------------------------------------------------------ budgets


def known_teams(db: Database) -> list[str]:
    """Teams seen in spend or in ingested usage (not priced yet), and teams that already have a budget."""
    rows = db.execute(
        "SELECT team FROM spend_daily UNION SELECT team FROM usage_events WHERE team IS NOT NULL "
        "UNION SELECT team FROM budgets WHERE team IS NOT NULL ORDER BY 1"
    )
    return [r[0] for r in rows]


def budget_id_for_scope(db: Database, scope: dict[str, object]) -> int | None:
    """The active budget with exactly this scope and period, if any."""
    return db.scalar(  # type: ignore[no-any-return]
        """SELECT budget_id FROM budgets
           WHERE active AND team IS NOT DISTINCT FROM $team AND feature IS NOT DISTINCT FROM $feature
             AND tag IS NOT DISTINCT FROM $tag AND period_kind = $period_kind
             AND period_start IS NOT DISTINCT FROM $period_start AND period_end IS NOT DISTINCT FROM $period_end
           ORDER BY budget_id LIMIT 1""",
        scope,
    )


def insert_budget(db: Database, row: dict[str, object], now: datetime) -> int:
    budget_id = int(db.scalar("SELECT nextval('budget_id_seq')"))
    db.execute(
        """INSERT INTO budgets (budget_id, team, feature, tag, period_kind, period_start, period_end, amount_usd,
                                thresholds, channels, active, created_at, updated_at)
           VALUES ($id, $team, $feature, $tag, $period_kind, $period_start, $period_end, $amount_usd,
                   $thresholds, $channels, true, $now, $now)""",
        {**row, "id": budget_id, "now": now},
    )
    return budget_id


def update_budget(db: Database, budget_id: int, row: dict[str, object], now: datetime) -> None:
    db.execute(
        """UPDATE budgets SET team = $team, feature = $feature, tag = $tag, period_kind = $period_kind,
                  period_start = $period_start, period_end = $period_end, amount_usd = $amount_usd,
                  thresholds = $thresholds, channels = $channels, updated_at = $now
           WHERE budget_id = $id""",
        {**row, "id": budget_id, "now": now},
    )


def deactivate_budget(db: Database, budget_id: int, now: datetime) -> None:
    """No more evaluation; its open alerts close (delivery of queued ones goes on)."""
    with LEDGER_LOCK, db.transaction():
        db.execute(
            "UPDATE budgets SET active = false, deleted_at = $now, updated_at = $now WHERE budget_id = $id",
            {"id": budget_id, "now": now},
        )
        db.execute(
            "UPDATE alerts SET state = 'closed', state_changed_at = $now WHERE budget_id = $id AND state = 'open'",
            {"id": budget_id, "now": now},
        )


def fetch_budget(db: Database, budget_id: int) -> dict[str, Any] | None:
    rows = _dicts(db, f"SELECT {_BUDGET_COLUMNS} FROM budgets WHERE budget_id = $id", {"id": budget_id})
    return rows[0] if rows else None


def fetch_budgets(db: Database, *, team: str | None, include_inactive: bool) -> list[dict[str, Any]]:
    return _dicts(
        db,
        f"""SELECT {_BUDGET_COLUMNS} FROM budgets
            WHERE (active OR $all) AND ($team IS NULL OR team = $team) ORDER BY budget_id""",
        {"all": include_inactive, "team": team},
    )


# -------------------------------------------------------------------------------- spend per scope


def scope_spend(db: Database, scopes: pl.DataFrame) -> pl.DataFrame:
    """Per scope row (`key`, `team`, `feature` or NULL, `start_day`, `stop_day`): spend of its days
    [start_day, stop_day) as `actual_usd` (0 when none), and the first day with spend before `stop_day`
    (`first_day`, for the forecast history rule). One pass over `spend_daily` for every budget."""
    with registered(db, "_alert_scopes", scopes):
        return frame(
            db,
            """SELECT s.key,
                      coalesce(sum(d.cost_usd) FILTER (WHERE d.charge_day >= s.start_day), 0)
                          ::DECIMAL(38,12) AS actual_usd,
                      min(d.charge_day) AS first_day
               FROM _alert_scopes s LEFT JOIN spend_daily d
                 ON d.team = s.team AND (s.feature IS NULL OR d.feature = s.feature) AND d.charge_day < s.stop_day
               GROUP BY s.key""",
        )


def _tag_filter(tag: tuple[str, str]) -> dict[str, str]:
    # keys are letters, digits and _.:/@- (budgets.parse_tag), so quoting the key makes a plain JSON path
    return {"tag_path": f'$."{tag[0]}"', "tag_value": tag[1]}


_TAGGED_LINES = """
    FROM spend_lines l JOIN usage_events u ON u.key_hash = l.usage_key
    WHERE l.line_type <> 'provider_usage' AND l.charge_day >= $start AND l.charge_day < $stop
      AND ($team IS NULL OR l.team = $team) AND json_extract_string(u.tags, $tag_path) = $tag_value"""


def tag_spend(db: Database, team: str | None, tag: tuple[str, str], start: date, stop: date) -> Decimal:
    """Spend of usage lines whose usage record carries the tag (GPU and bill lines have no tags)."""
    value = db.scalar(
        "SELECT coalesce(sum(l.cost_usd), 0)::DECIMAL(38,12)" + _TAGGED_LINES,
        {"team": team, "start": start, "stop": stop, **_tag_filter(tag)},
    )
    return Decimal(value)


def scope_drivers(
    db: Database,
    *,
    team: str | None,
    feature: str | None,
    tag: tuple[str, str] | None,
    start: date,
    stop: date,
    as_of: datetime,
    limit: int,
) -> dict[str, list[dict[str, Any]]]:
    """The top features and models by spend in [start, stop), and the costliest findings of the scope that
    overlap the period up to `as_of`."""
    drivers: dict[str, list[dict[str, Any]]] = {}
    for column in ("feature", "model"):  # fixed identifiers, never user input
        if tag is None:
            sql = f"""SELECT {column} AS name, sum(cost_usd)::DECIMAL(38,12) AS cost_usd FROM spend_daily
                      WHERE team = $team AND ($feature IS NULL OR feature = $feature)
                        AND charge_day >= $start AND charge_day < $stop
                      GROUP BY ALL HAVING sum(cost_usd) IS NOT NULL ORDER BY cost_usd DESC, name LIMIT $n"""
            params: dict[str, Any] = {"team": team, "feature": feature}
        else:
            sql = (
                f"SELECT l.{column} AS name, sum(l.cost_usd)::DECIMAL(38,12) AS cost_usd"
                + _TAGGED_LINES
                + " GROUP BY ALL HAVING sum(l.cost_usd) IS NOT NULL ORDER BY cost_usd DESC, name LIMIT $n"
            )
            params = {"team": team, **_tag_filter(tag)}
        drivers[f"{column}s"] = _dicts(db, sql, {**params, "start": start, "stop": stop, "n": limit})
    drivers["findings"] = (
        _dicts(
            db,
            """SELECT finding_id, kind, severity, feature, model, window_start, window_end,
                      excess_cost_usd::DECIMAL(38,12) AS excess_cost_usd
               FROM findings
               WHERE team = $team AND ($feature IS NULL OR feature = $feature)
                 AND window_end > $start AND window_start < $as_of
               ORDER BY excess_cost_usd DESC, finding_id LIMIT $n""",
            {"team": team, "feature": feature, "start": start, "as_of": as_of, "n": limit},
        )
        if team is not None and tag is None
        else []
    )
    return drivers


# -------------------------------------------------------------------------------------- forecasts


def _forecast_columns(db: Database) -> set[str]:
    return {
        r[0]
        for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'forecasts' "
            "AND table_schema = 'main'"
        )
    }


_FORECAST_WANTED = (
    "forecast_usd",
    "lo80_usd",
    "hi80_usd",
    "lo95_usd",
    "hi95_usd",
    "method",
    "note",
    "as_of",
    "history_days",
    "breach_date",
    "budget_id",
    "forecast_start",
    "actual_to_date_usd",
    "daily_forecast_usd",
)


def latest_forecast(
    db: Database, *, team: str, feature: str | None, period: str, since: datetime, as_of: datetime
) -> dict[str, Any] | None:
    """The newest forecast of the scope and period made in [since, as_of]; None when there is none (or no
    `forecasts` table yet). Optional columns the table lacks come back as None."""
    columns = _forecast_columns(db)
    if not {"team", "feature", "period", "as_of", "forecast_usd"} <= columns:
        return None
    select = ", ".join(c if c in columns else f"NULL AS {c}" for c in _FORECAST_WANTED)  # fixed names only
    rows = _dicts(
        db,
        f"""SELECT {select} FROM forecasts
            WHERE team = $team AND feature IS NOT DISTINCT FROM $feature AND period = $period
              AND as_of >= $since AND as_of <= $as_of
            ORDER BY as_of DESC LIMIT 1""",
        {"team": team, "feature": feature, "period": period, "since": since, "as_of": as_of},
    )
    return rows[0] if rows else None


# ----------------------------------------------------------------------------------------- ledger


def period_records(db: Database) -> list[dict[str, Any]]:
    return _dicts(db, "SELECT budget_id, period, period_start, period_end, closed_at FROM budget_periods ORDER BY ALL")


def fired_alerts(db: Database, budget_id: int, period: str) -> list[dict[str, Any]]:
    """Actual and forecast alerts of one (budget, period): the state machine's memory."""
    return _dicts(
        db,
        """SELECT alert_id, kind, threshold_pct, episode, state, amount_usd, actual_usd, fired_at FROM alerts
           WHERE budget_id = $b AND period = $p AND kind IN ('actual', 'forecast') ORDER BY fired_at, alert_id""",
        {"b": budget_id, "p": period},
    )


def alert_channels(db: Database, alert_id: str) -> list[str]:
    """The channels an alert was queued for (whatever became of the delivery), in queue order."""
    rows = db.execute(
        "SELECT channel FROM alert_deliveries WHERE alert_id = $id ORDER BY delivery_id", {"id": alert_id}
    )
    return [r[0] for r in rows]


def unalerted_findings(db: Database, *, floor: Decimal, since: datetime, as_of: datetime) -> list[dict[str, Any]]:
    """Findings of a known team whose excess cost reaches `floor`, that ended after `since` and began before
    `as_of`, and that no alert reported yet."""
    return _dicts(
        db,
        """SELECT finding_id, kind, detector, team, feature, provider, model, subject, window_start, window_end,
                  trace_id, request_id, excess_cost_usd::DECIMAL(38,12) AS excess_cost_usd, severity, score,
                  CAST(evidence AS VARCHAR) AS evidence
           FROM findings f
           WHERE team IS NOT NULL AND excess_cost_usd >= $floor AND window_end > $since AND window_start < $as_of
             AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.kind = 'finding' AND a.finding_id = f.finding_id)
           ORDER BY window_start, finding_id""",
        {"floor": floor, "since": since, "as_of": as_of},
    )


_ALERT_COLUMNS = (
    "alert_id",
    "dedup_key",
    "budget_id",
    "kind",
    "condition_kind",
    "threshold_pct",
    "period",
    "period_start",
    "period_end",
    "episode",
    "recovers",
    "finding_id",
    "fired_at",
    "created_at",
    "run_id",
    "state",
    "state_changed_at",
    "delivery",
    "amount_usd",
    "actual_usd",
    "forecast_usd",
    "message",
    "payload",
)

_ALERT_SCHEMA = {
    "alert_id": pl.String,
    "dedup_key": pl.String,
    "budget_id": pl.Int64,
    "kind": pl.String,
    "condition_kind": pl.String,
    "threshold_pct": pl.Int32,
    "period": pl.String,
    "period_start": pl.Date,
    "period_end": pl.Date,
    "episode": pl.Int32,
    "recovers": pl.String,
    "finding_id": pl.String,
    "fired_at": pl.Datetime("us", "UTC"),
    "created_at": pl.Datetime("us", "UTC"),
    "run_id": pl.Int64,
    "state": pl.String,
    "state_changed_at": pl.Datetime("us", "UTC"),
    "delivery": pl.String,
    "amount_usd": pl.Decimal(38, 6),
    "actual_usd": pl.Decimal(38, 12),
    "forecast_usd": pl.Decimal(38, 12),
    "message": pl.String,
    "payload": pl.String,
}


def insert_alerts(
    db: Database, alerts: Sequence[dict[str, Any]], channels: Mapping[str, Sequence[str]], now: datetime
) -> list[str]:
    """Insert alerts whose `alert_id` is new (a duplicate is skipped, never an error) and queue one outbox row
    per channel for each inserted alert (`disabled` at once for an endpoint that answered 410). Returns the
    ids inserted. Run inside the caller's transaction."""
    if not alerts:
        return []
    rows = [{**a, "payload": json.dumps(a["payload"], default=str)} for a in alerts]
    data = pl.DataFrame(rows, schema=_ALERT_SCHEMA)  # type: ignore[arg-type]
    with registered(db, "_new_alerts", data):
        inserted = [
            r[0]
            for r in db.execute(
                f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) "
                f"SELECT {', '.join(_ALERT_COLUMNS[:-1])}, CAST(payload AS JSON) FROM _new_alerts "
                "ON CONFLICT DO NOTHING RETURNING alert_id"
            )
        ]
    new = set(inserted)
    queued = [(a["alert_id"], c) for a in alerts if a["alert_id"] in new for c in channels.get(a["alert_id"], ())]
    outbox = pl.DataFrame(
        [{"ord": i, "alert_id": a, "channel": c} for i, (a, c) in enumerate(queued)],
        schema={"ord": pl.Int64, "alert_id": pl.String, "channel": pl.String},
    )
    if outbox.height:
        with registered(db, "_new_outbox", outbox):
            db.execute(
                """INSERT INTO alert_deliveries (delivery_id, alert_id, channel, status, attempts, next_attempt_at,
                                                 created_at)
                   SELECT nextval('delivery_id_seq'), o.alert_id, o.channel,
                          CASE WHEN e.disabled_at IS NULL THEN 'pending' ELSE 'disabled' END, 0, $now, $now
                   FROM _new_outbox o LEFT JOIN alert_endpoints e USING (channel)
                   ORDER BY o.ord
                   ON CONFLICT DO NOTHING""",
                {"now": now},
            )
    if inserted:
        refresh_delivery(db, inserted)
    return inserted


def refresh_delivery(db: Database, alert_ids: Sequence[str]) -> None:
    """Set `alerts.delivery` from the alert's outbox rows: none, pending, delivered (all), or failed."""
    db.execute(
        """UPDATE alerts SET delivery = s.delivery FROM (
               SELECT a.alert_id,
                      CASE WHEN count(d.delivery_id) = 0 THEN 'none'
                           WHEN count(*) FILTER (WHERE d.status = 'pending') > 0 THEN 'pending'
                           WHEN count(*) FILTER (WHERE d.status = 'delivered') = count(d.delivery_id) THEN 'delivered'
                           ELSE 'failed' END AS delivery
               FROM alerts a LEFT JOIN alert_deliveries d USING (alert_id)
               WHERE list_contains($ids, a.alert_id) GROUP BY a.alert_id) s
           WHERE alerts.alert_id = s.alert_id AND alerts.delivery <> s.delivery""",
        {"ids": list(alert_ids)},
    )


def mark_recovered(db: Database, alert_ids: Sequence[str], at: datetime) -> None:
    if alert_ids:
        db.execute(
            "UPDATE alerts SET state = 'recovered', state_changed_at = $at "
            "WHERE list_contains($ids, alert_id) AND state = 'open'",
            {"ids": list(alert_ids), "at": at},
        )


def record_period(
    db: Database,
    *,
    budget_id: int,
    period: str,
    start: date,
    end: date,
    as_of: datetime,
    actual_usd: Decimal,
    forecast_usd: Decimal | None,
) -> None:
    """Count one evaluation of (budget, period)."""
    db.execute(
        """INSERT INTO budget_periods AS p (budget_id, period, period_start, period_end, evaluations, first_as_of,
                                           last_as_of, actual_usd, forecast_usd)
           VALUES ($b, $p, $start, $end, 1, $as_of, $as_of, $actual, $forecast)
           ON CONFLICT (budget_id, period) DO UPDATE SET evaluations = p.evaluations + 1, last_as_of = $as_of,
               actual_usd = $actual, forecast_usd = $forecast""",
        {
            "b": budget_id,
            "p": period,
            "start": start,
            "end": end,
            "as_of": as_of,
            "actual": actual_usd,
            "forecast": forecast_usd,
        },
    )


def close_period(db: Database, budget_id: int, period: str, at: datetime) -> None:
    """The period is over (past its grace days): its open alerts close, and it is not evaluated again."""
    db.execute(
        "UPDATE budget_periods SET closed_at = $at WHERE budget_id = $b AND period = $p AND closed_at IS NULL",
        {"b": budget_id, "p": period, "at": at},
    )
    db.execute(
        "UPDATE alerts SET state = 'closed', state_changed_at = $at "
        "WHERE budget_id = $b AND period = $p AND state = 'open'",
        {"b": budget_id, "p": period, "at": at},
    )


# ----------------------------------------------------------------------------------------- listing


def select_alerts(
    db: Database,
    *,
    states: Sequence[str] | None,
    kinds: Sequence[str] | None,
    deliveries: Sequence[str] | None,
    budget_id: int | None,
    teams: Sequence[str] | None,
    alert_id: str | None,
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Alerts, newest first, with their budget's scope; every filter is optional."""
    return _dicts(
        db,
        """SELECT a.alert_id, a.dedup_key, a.budget_id, b.team, b.feature, b.tag, a.kind, a.condition_kind,
                  a.threshold_pct, a.period, a.period_start, a.period_end, a.episode, a.recovers, a.finding_id,
                  a.fired_at, a.created_at, a.state, a.state_changed_at, a.delivery, a.amount_usd, a.actual_usd,
                  a.forecast_usd, a.message, CAST(a.payload AS VARCHAR) AS payload
           FROM alerts a LEFT JOIN budgets b USING (budget_id)
           WHERE ($states IS NULL OR list_contains($states, a.state))
             AND ($kinds IS NULL OR list_contains($kinds, a.kind))
             AND ($deliveries IS NULL OR list_contains($deliveries, a.delivery))
             AND ($budget IS NULL OR a.budget_id = $budget)
             AND ($teams IS NULL OR list_contains($teams, b.team))
             AND ($alert_id IS NULL OR a.alert_id = $alert_id)
           ORDER BY a.fired_at DESC, a.created_at DESC, a.alert_id LIMIT $limit OFFSET $offset""",
        {
            "states": list(states) if states else None,
            "kinds": list(kinds) if kinds else None,
            "deliveries": list(deliveries) if deliveries else None,
            "budget": budget_id,
            "teams": list(teams) if teams is not None else None,
            "alert_id": alert_id,
            "limit": limit,
            "offset": offset,
        },
    )


def select_deliveries(db: Database, alert_id: str) -> list[dict[str, Any]]:
    return _dicts(
        db,
        """SELECT channel, status, attempts, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at
           FROM alert_deliveries WHERE alert_id = $id ORDER BY delivery_id""",
        {"id": alert_id},
    )
