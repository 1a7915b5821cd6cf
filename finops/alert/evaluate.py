"""`alert_step`: every active budget's periods as of `as_of` -> new alerts in the ledger and their outbox rows.

Order of operations (one call per pipeline run):
  1. which periods: the budget's current period, plus any earlier period not yet closed (late or restated
     data within `closed_period_grace_days`, or a period that ended while nothing ran: the catch-up run
     evaluates it once, with its full spend, and closes it); a budget no run has evaluated yet gets the
     periods still open since its last change, and a custom one its range if it was open when the budget
     was set (`periods_to_evaluate`);
  2. measure: spend to date of every (budget, period) in one SQL pass over `spend_daily` (tag budgets join
     spend lines to their usage records' tags), the first day of history, and the newest forecast;
  3. decide (`finops.alert.machine`) and write, under `LEDGER_LOCK` and in one transaction: alerts are
     inserted `ON CONFLICT DO NOTHING` on their stable id, so a second evaluator racing this one, or a
     rerun over restated data, adds nothing twice; each new alert queues one outbox row per channel;
  4. findings above `finding_floor_usd` alert the channels of their team's budgets, once per finding id;
  5. record the evaluation in `budget_periods` and close periods past their grace days.
Nothing here sends anything: delivery drains the outbox separately (`finops.alert.deliver`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from finops.alert import store
from finops.alert.budgets import Budget, list_budgets
from finops.alert.locks import LEDGER_LOCK
from finops.alert.machine import Fired, Measures, Rules, Transition, transitions
from finops.alert.payload import Context, finding_alert, transition_alert
from finops.alert.periods import Period, custom_period, periods_between
from finops.alert.settings import AlertSettings, load_alert_settings
from finops.store.db import Database

__all__ = ["alert_step", "periods_to_evaluate"]


_FORECAST_MAX_AGE = timedelta(days=3)
_BASIS_COLUMN = {"point": "forecast_usd", "lo80": "lo80_usd", "hi80": "hi80_usd"}
_SCALE = Decimal("1e-12")


@dataclass
class _Plan:
    budget: Budget
    period: Period
    as_of: datetime  # clipped to the period's end
    stop_day: date  # spend days [period.start, stop_day) count
    actual_usd: Decimal = Decimal(0)
    history_days: int = 0
    forecast: dict[str, Any] | None = None
    context: Context | None = None

    @property
    def ended(self) -> bool:
        return self.as_of >= self.period.end_at


def alert_step(db: Database, as_of: datetime, run_id: int, *, settings: AlertSettings | None = None) -> int:
    """Evaluate every budget as of `as_of`, record alerts once each, queue deliveries; alerts fired."""
    settings = settings or load_alert_settings()
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    budgets = list_budgets(db)
    if not budgets:
        return 0
    records: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in store.period_records(db):
        records[record["budget_id"]].append(record)
    grace = timedelta(days=settings.closed_period_grace_days)
    plans = [
        _plan(budget, period, as_of)
        for budget in budgets
        for period in periods_to_evaluate(budget, as_of, records[budget.budget_id], grace=grace)
    ]
    _measure(db, plans, settings)
    rules = Rules(settings.rearm_pct, settings.forecast_min_history_days, settings.forecast_min_threshold_pct)
    now = datetime.now(UTC)
    with LEDGER_LOCK, db.transaction():
        alerts: list[dict[str, Any]] = []
        channels: dict[str, list[str]] = {}
        for plan in plans:
            for t in _decide(db, plan, rules, settings, as_of):
                alerts.append(_row(transition_alert(_context(db, plan, settings), t, as_of), plan, run_id, now))
                channels[alerts[-1]["alert_id"]] = _recipients(db, plan.budget, t)
        for alert, recipients in _finding_alerts(db, plans, as_of, run_id, now, settings):
            alerts.append(alert)
            channels[alert["alert_id"]] = recipients
        inserted = store.insert_alerts(db, alerts, channels, now)
        kept = set(inserted)
        store.mark_recovered(db, [a["recovers"] for a in alerts if a["recovers"] and a["alert_id"] in kept], as_of)
        for plan in plans:
            store.record_period(
                db,
                budget_id=plan.budget.budget_id,
                period=plan.period.label,
                start=plan.period.start,
                end=plan.period.end,
                as_of=plan.as_of,
                actual_usd=plan.actual_usd,
                forecast_usd=_forecast_value(plan, "point"),
            )
            if as_of >= plan.period.end_at + timedelta(days=settings.closed_period_grace_days):
                store.close_period(db, plan.budget.budget_id, plan.period.label, as_of)
    return len(inserted)


def periods_to_evaluate(
    budget: Budget, as_of: datetime, records: list[dict[str, Any]], *, grace: timedelta
) -> list[Period]:
    """The budget's current period unless it was closed, earlier periods evaluated before but not closed yet,
    and the periods since the last one evaluated (the gap of a downtime), oldest first; for a budget never
    evaluated in its present form, `_never_evaluated`."""
    current = budget.period_at(as_of)
    # only periods of the budget's present kind count (an update may have turned a monthly budget quarterly)
    records = [r for r in records if (p := budget.period_at(_midnight(r["period_start"]))) and p.label == r["period"]]
    closed = {r["period"] for r in records if r["closed_at"] is not None}
    found: set[Period] = {current} if current is not None else set()
    if records:
        unclosed = [r["period_start"] for r in records if r["closed_at"] is None]
        first = min(unclosed) if unclosed else max(r["period_end"] for r in records)
        found.update(periods_between(budget.period_kind, first, as_of, custom=budget.custom_range))
    else:
        found.update(_never_evaluated(budget, as_of, grace))
    return sorted(p for p in found if p.label not in closed and p.start_at <= as_of)


def _never_evaluated(budget: Budget, as_of: datetime, grace: timedelta) -> list[Period]:
    """The periods of a budget no run has evaluated in its present form (no `budget_periods` row of its kind):
    those still open at `as_of` (in progress, or ended less than `grace` ago), from the period of the budget's
    last change (`updated_at`) on; and a custom range that was still open when the budget was set.

    So a month budget set on Nov 20 and first evaluated on Dec 1 after a downtime gets November checked, but a
    budget set long ago and evaluated for the first time today (a replayed history, the demo) does not alert
    about months long closed. A custom budget differs because no run records its range before it begins:
    a range that passed during a downtime, or that ended within the grace days before the budget was set,
    had no record to catch up from; its budget names that one range, so it is evaluated once, then closed."""
    if budget.period_kind != "custom":
        since = budget.updated_at.astimezone(UTC).date()
        return [p for p in periods_between(budget.period_kind, since, as_of) if as_of < p.end_at + grace]
    if budget.custom_range is None:
        return []
    period = custom_period(*budget.custom_range)
    if as_of < period.start_at:
        return []
    closes_at = period.end_at + grace
    return [period] if as_of < closes_at or budget.updated_at < closes_at else []


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _plan(budget: Budget, period: Period, as_of: datetime) -> _Plan:
    moment = min(as_of, period.end_at)
    stop = min(period.end, moment.date() + timedelta(days=1))
    return _Plan(budget, period, moment, stop)


def _measure(db: Database, plans: list[_Plan], settings: AlertSettings) -> None:
    """Spend to date and history for every plan (one query for team and feature budgets), and forecasts."""
    scoped = [(i, p) for i, p in enumerate(plans) if p.budget.tag is None]
    if scoped:
        scopes = pl.DataFrame(
            {
                "key": [i for i, _ in scoped],
                "team": [p.budget.team for _, p in scoped],
                "feature": [p.budget.feature for _, p in scoped],
                "start_day": [p.period.start for _, p in scoped],
                "stop_day": [p.stop_day for _, p in scoped],
            },
            schema={
                "key": pl.Int64,
                "team": pl.String,
                "feature": pl.String,
                "start_day": pl.Date,
                "stop_day": pl.Date,
            },
        )
        for row in store.scope_spend(db, scopes).iter_rows(named=True):
            plan = plans[row["key"]]
            plan.actual_usd = row["actual_usd"]
            plan.history_days = (plan.as_of.date() - row["first_day"]).days if row["first_day"] else 0
    for plan in plans:
        tag = plan.budget.tag_pair
        if tag is not None:
            plan.actual_usd = store.tag_spend(db, plan.budget.team, tag, plan.period.start, plan.stop_day)
        elif not plan.ended and plan.budget.team is not None:
            plan.forecast = store.latest_forecast(
                db,
                team=plan.budget.team,
                feature=plan.budget.feature,
                period=plan.period.label,
                since=max(plan.period.start_at - timedelta(days=1), plan.as_of - _FORECAST_MAX_AGE),
                as_of=plan.as_of,
            )


def _forecast_value(plan: _Plan, basis: str) -> Decimal | None:
    if plan.forecast is None or plan.forecast.get(_BASIS_COLUMN[basis]) is None:
        return None
    return Decimal(str(plan.forecast[_BASIS_COLUMN[basis]])).quantize(_SCALE)


def _decide(db: Database, plan: _Plan, rules: Rules, settings: AlertSettings, as_of: datetime) -> list[Transition]:
    fired = [Fired(**r) for r in store.fired_alerts(db, plan.budget.budget_id, plan.period.label)]
    measures = Measures(
        actual_usd=plan.actual_usd,
        forecast_value_usd=_forecast_value(plan, settings.forecast_basis),
        history_days=plan.history_days,
        period_ended=plan.ended,
    )
    return transitions(plan.budget.amount_usd, plan.budget.thresholds, measures, fired, rules, as_of)


def _recipients(db: Database, budget: Budget, t: Transition) -> list[str]:
    """The budget's channels; for a recovery, only those of them the recovered alert was sent to: a channel
    added since hears of the next crossing, not of the end of one it never heard of, and a removed one hears
    nothing more."""
    current = [str(c) for c in budget.channels]
    if t.recovers is None:
        return current
    told = set(store.alert_channels(db, t.recovers))
    return [c for c in current if c in told]


def _context(db: Database, plan: _Plan, settings: AlertSettings) -> Context:
    """The plan's figures and drivers (queried once, and only for plans that alert)."""
    if plan.context is not None:
        return plan.context
    b = plan.budget
    drivers = store.scope_drivers(
        db,
        team=b.team,
        feature=b.feature,
        tag=b.tag_pair,
        start=plan.period.start,
        stop=plan.stop_day,
        as_of=plan.as_of,
        limit=settings.top_drivers,
    )
    plan.context = Context(b, plan.period, plan.as_of, plan.actual_usd, plan.forecast, drivers)
    return plan.context


def _row(payload: dict[str, Any], plan: _Plan, run_id: int, now: datetime) -> dict[str, Any]:
    kind = payload["kind"]
    return {
        "alert_id": payload["alert_id"],
        "dedup_key": payload["dedup_key"],
        "budget_id": plan.budget.budget_id,
        "kind": kind,
        "condition_kind": payload.get("condition"),
        "threshold_pct": payload.get("threshold_pct"),
        "period": plan.period.label,
        "period_start": plan.period.start,
        "period_end": plan.period.end,
        "episode": payload.get("episode", 1),
        "recovers": payload.get("recovers"),
        "finding_id": (payload.get("finding") or {}).get("finding_id"),
        "fired_at": datetime.fromisoformat(payload["fired_at"]),
        "created_at": now,
        "run_id": run_id,
        "state": "closed" if kind == "recovery" else "open",
        "state_changed_at": now,
        "delivery": "none",
        "amount_usd": plan.budget.amount_usd,
        "actual_usd": plan.actual_usd,
        "forecast_usd": _forecast_value(plan, "point"),
        "message": payload["message"],
        "payload": payload,
    }


def _finding_alerts(
    db: Database, plans: list[_Plan], as_of: datetime, run_id: int, now: datetime, settings: AlertSettings
) -> list[tuple[dict[str, Any], list[str]]]:
    """One alert per new finding above the floor, to every channel of the budgets that cover its team (and
    feature); filed under the team-wide budget when there is one, else the lowest-numbered."""
    current = [p for p in plans if not p.ended and p.budget.tag is None and p.budget.team is not None]
    if not current:
        return []
    findings = store.unalerted_findings(
        db, floor=settings.finding_floor_usd, since=as_of - timedelta(days=settings.finding_lookback_days), as_of=as_of
    )
    made = []
    for finding in findings:
        covering = sorted(
            (p for p in current if p.budget.team == finding["team"] and p.budget.feature in (None, finding["feature"])),
            key=lambda p: (p.budget.feature is not None, p.budget.budget_id),
        )
        if not covering:
            continue
        primary = covering[0]
        recipients = list(dict.fromkeys(str(c) for p in covering for c in p.budget.channels))
        payload = finding_alert(_context(db, primary, settings), finding, [p.budget.budget_id for p in covering], as_of)
        made.append((_row(payload, primary, run_id, now), recipients))
    return made
