"""What an alert says: its JSON payload (what a webhook receives under `data`) and its one-line message.

Money travels as exact decimal strings (`"9812.400000000000"`); the message rounds to cents for people.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from finops.alert.budgets import Budget
from finops.alert.machine import Transition
from finops.alert.periods import Period

__all__ = ["Context", "alert_id", "breach_date", "finding_alert", "money", "transition_alert"]

_WORD = {"month": "monthly", "quarter": "quarterly", "custom": "custom-period"}
_CENT = Decimal("0.01")


def money(value: Decimal | None) -> str:
    """`$12,000.00` for people (exact values stay in the payload)."""
    if value is None:
        return "n/a"
    return f"${value.quantize(_CENT, rounding=ROUND_HALF_UP):,}"


def alert_id(dedup_key: str, budget: Budget) -> str:
    """Stable per alert (the `webhook-id`): the dedup key, salted with the budget's creation time so a rebuilt
    database's budget 1 does not reuse the ids a receiver already saw."""
    digest = hashlib.sha256(f"{dedup_key}|{budget.created_at.isoformat()}".encode()).hexdigest()
    return f"alr_{digest[:26]}"


@dataclass(frozen=True)
class Context:
    """Everything measured for one (budget, period) that an alert reports."""

    budget: Budget
    period: Period
    as_of: datetime  # the evaluation time, clipped to the period's end for an ended period
    actual_usd: Decimal
    forecast: dict[str, Any] | None  # forecast_usd, lo80_usd, ..., method, as_of, breach_date
    drivers: dict[str, list[dict[str, Any]]]

    @property
    def forecast_usd(self) -> Decimal | None:
        return _dec(self.forecast.get("forecast_usd")) if self.forecast else None


def _dec(value: object) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def breach_date(ctx: Context, target_usd: Decimal) -> date | None:
    """The UTC day spend is projected to reach `target_usd`; None when already reached or not projected to be
    within the period. With the forecast's daily path (`daily_forecast_usd` from `forecast_start`): the first day
    its cumulative total reaches the target; otherwise the forecast's remaining spend spread evenly."""
    forecast = ctx.forecast_usd
    if ctx.forecast is None or forecast is None or ctx.actual_usd >= target_usd or forecast < target_usd:
        return None
    daily = ctx.forecast.get("daily_forecast_usd") or []
    base, start = _dec(ctx.forecast.get("actual_to_date_usd")), ctx.forecast.get("forecast_start")
    if daily and base is not None and isinstance(start, date):
        total = base
        for offset, amount in enumerate(daily):
            total += _dec(amount) or Decimal(0)
            if total >= target_usd:
                return start + timedelta(days=offset)
        return None
    remaining_s = Decimal((ctx.period.end_at - ctx.as_of).total_seconds())
    if remaining_s <= 0 or forecast <= ctx.actual_usd:
        return None
    seconds = (target_usd - ctx.actual_usd) / (forecast - ctx.actual_usd) * remaining_s
    return (ctx.as_of + timedelta(seconds=float(seconds))).date()


def _base(
    ctx: Context, key: str, kind: str, fired_at: datetime, *, breach_usd: Decimal | None = None
) -> dict[str, Any]:
    """The fields every alert carries; `projected_breach_date` is the day spend is projected to reach
    `breach_usd` (default: the budget's amount), which `projected_breach_usd` names."""
    b = ctx.budget
    breach_usd = b.amount_usd if breach_usd is None else breach_usd
    forecast = None
    if ctx.forecast is not None:
        forecast = {
            k: (_text(_dec(v)) if k.endswith("_usd") and v is not None else _iso(v) if isinstance(v, date) else v)
            for k, v in ctx.forecast.items()
            if k not in ("daily_forecast_usd", "budget_id", "breach_date")
        }
        if ctx.forecast.get("budget_id") == b.budget_id:  # the forecast stage's breach date is for one budget
            forecast["breach_date"] = _iso(ctx.forecast.get("breach_date"))
    breach = breach_date(ctx, breach_usd)
    return {
        "alert_id": alert_id(key, b),
        "dedup_key": key,
        "kind": kind,
        "fired_at": fired_at.isoformat(),
        "as_of": ctx.as_of.isoformat(),
        "budget": {
            "budget_id": b.budget_id,
            "scope": b.scope,
            "team": b.team,
            "feature": b.feature,
            "tag": b.tag,
            "period_kind": b.period_kind,
            "amount_usd": _text(b.amount_usd),
            "thresholds": list(b.thresholds),
        },
        "period": {"label": ctx.period.label, "start": ctx.period.start.isoformat(), "end": ctx.period.end.isoformat()},
        "actual_usd": _text(ctx.actual_usd),
        "actual_pct": _text((ctx.actual_usd * 100 / b.amount_usd).quantize(Decimal("0.1"))),
        "forecast": forecast,
        "projected_breach_date": breach.isoformat() if breach else None,
        "projected_breach_usd": _text(breach_usd),
        "drivers": {name: [_jsonable(r) for r in rows] for name, rows in ctx.drivers.items()},
    }


def _text(value: Decimal) -> str:
    """Money as exact decimal text on every surface: `0.000000000000`, never `0E-12` (str of a Decimal)."""
    return format(value, "f")


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, date | datetime) else (None if value is None else str(value))


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (_text(v) if isinstance(v, Decimal) else _iso(v) if isinstance(v, date | datetime) else v)
        for k, v in row.items()
    }


def transition_alert(ctx: Context, t: Transition, fired_at: datetime) -> dict[str, Any]:
    """The payload of a fired or recovered condition."""
    b, p = ctx.budget, ctx.period
    kind = "recovery" if t.is_recovery else t.kind
    key = f"budget={b.budget_id}/{kind}{'/' + t.kind if t.is_recovery else ''}/{t.threshold_pct}/{p.label}/{t.episode}"
    # a forecast condition is about its threshold's amount: its date is when the path reaches that amount
    payload = _base(ctx, key, kind, fired_at, breach_usd=t.target_usd if t.kind == "forecast" else None)
    payload |= {
        "condition": t.kind,
        "threshold_pct": t.threshold_pct,
        "threshold_usd": _text(t.target_usd),
        "episode": t.episode,
        "recovers": t.recovers,
    }
    word = _WORD[b.period_kind]
    interval = _interval(ctx)
    breach = payload["projected_breach_date"]
    if kind == "actual":
        message = (
            f"{b.scope}: {t.threshold_pct}% of the {word} budget reached in {p.label}: {money(ctx.actual_usd)} of "
            f"{money(b.amount_usd)} spent"
            + (f"; forecast {money(ctx.forecast_usd)}{interval}" if ctx.forecast_usd is not None else "")
            + (f"; breach projected {breach}" if breach else "")
        )
    elif kind == "forecast":
        message = (
            f"{b.scope}: forecast to reach {t.threshold_pct}% of the {word} budget in {p.label}: "
            f"{money(t.value_usd)}{interval} against {money(t.target_usd)}; {money(ctx.actual_usd)} spent so far; "
            + (
                f"projected to reach {money(t.target_usd)} on {breach}"
                if breach
                else f"the forecast's daily path stays under {money(t.target_usd)} through {p.end - timedelta(days=1)}"
            )
        )
    elif t.kind == "actual":
        message = (
            f"{b.scope}: back under {t.threshold_pct}% of the {word} budget for {p.label}: "
            f"{money(ctx.actual_usd)} of {money(b.amount_usd)}{_cause(t, b.amount_usd)}"
        )
    else:
        message = (
            f"{b.scope}: forecast back under {t.threshold_pct}% of the {word} budget for {p.label}: "
            f"{money(t.value_usd)} against {money(t.target_usd)}{_cause(t, b.amount_usd)}"
        )
    if t.is_recovery:
        payload["cause"] = {
            "budget_raised_from_usd": None if t.raised_from_usd is None else _text(t.raised_from_usd),
            "spend_revised": t.spend_revised,
        }
    payload["message"] = message
    return payload


def _cause(t: Transition, amount_usd: Decimal) -> str:
    """Why a condition recovered, when it is known: the budget raised since its alert, spend to date revised
    down, or both (a forecast that fell by itself needs no cause)."""
    if t.raised_from_usd is not None:
        raised = f" after the budget was raised from {money(t.raised_from_usd)} to {money(amount_usd)}"
        return raised + (" and spend data was revised" if t.spend_revised else "")
    return " after revised spend data" if t.spend_revised else ""


def _interval(ctx: Context) -> str:
    if ctx.forecast is None or ctx.forecast.get("lo80_usd") is None or ctx.forecast.get("hi80_usd") is None:
        return ""
    return f" (80%: {money(_dec(ctx.forecast['lo80_usd']))}-{money(_dec(ctx.forecast['hi80_usd']))})"


def finding_alert(ctx: Context, finding: dict[str, Any], budget_ids: list[int], fired_at: datetime) -> dict[str, Any]:
    """The payload of a finding reported to its team's budget channels (once per finding id)."""
    key = f"finding/{finding['finding_id']}"
    payload = _base(ctx, key, "finding", fired_at)
    where = "/".join(str(finding[k]) for k in ("team", "feature") if finding.get(k))
    on = f" ({finding['model']})" if finding.get("model") else ""
    payload |= {"finding": _jsonable(finding), "budget_ids": budget_ids, "threshold_pct": None}
    payload["message"] = (
        f"{where}: {finding['kind']}{on} cost {money(finding['excess_cost_usd'])} more than expected "
        f"({finding['severity']}, {_iso(finding['window_start'])} to {_iso(finding['window_end'])}); "
        f"{money(ctx.actual_usd)} of the {money(ctx.budget.amount_usd)} {_WORD[ctx.budget.period_kind]} budget spent"
    )
    return payload
