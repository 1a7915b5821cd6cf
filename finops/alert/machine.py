"""The alert state machine: given a budget's measures for one period and the alerts already fired for it, which
alerts to fire and which to recover. Pure: no I/O, no clock.

Each (budget, period, kind, threshold) is a condition, `kind` being `actual` (spend to date) or `forecast`
(the period-end forecast). A condition is *armed* until it fires and *firing* until it recovers:

    armed  --value >= threshold-->  firing       fire an alert of episode n (its dedup key names the episode)
    firing --value <  rearm-->      armed        a recovery notice; the fired alert's state becomes `recovered`
                                                 (its cause: the budget raised since the alert, spend revised down)
    firing --otherwise-->           firing       nothing: the same crossing never fires twice

`rearm` is `rearm_pct` (90 % by default) of the threshold amount: the hysteresis that keeps a value hovering
around a threshold from flapping. A forecast condition also needs `forecast_min_history_days` of history and
a forecast row; it fires only while the actual is still under the threshold (after that the actual alert
speaks), only for thresholds of at least `forecast_min_threshold_pct`, and not for a period that has ended.
A condition with no value this time (no forecast yet) keeps its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

__all__ = ["Condition", "Fired", "Measures", "Rules", "Transition", "transitions"]

Condition = Literal["actual", "forecast"]


@dataclass(frozen=True)
class Measures:
    """What was measured for one (budget, period)."""

    actual_usd: Decimal
    forecast_value_usd: Decimal | None  # the figure compared (point, lo80 or hi80); None: no usable forecast
    history_days: int
    period_ended: bool


@dataclass(frozen=True)
class Fired:
    """An actual or forecast alert already in the ledger for this (budget, period)."""

    alert_id: str
    kind: Condition
    threshold_pct: int
    episode: int
    state: str  # open | recovered | closed
    amount_usd: Decimal | None = None  # the budget's amount when it fired
    actual_usd: Decimal | None = None  # spend to date when it fired
    fired_at: datetime | None = None  # the moment of the evaluation that fired it


@dataclass(frozen=True)
class Rules:
    rearm_pct: Decimal
    forecast_min_history_days: int
    forecast_min_threshold_pct: int


@dataclass(frozen=True)
class Transition:
    """Fire (`recovers` is None) or recover (`recovers` is the open alert's id) one condition."""

    kind: Condition
    threshold_pct: int
    episode: int
    value_usd: Decimal
    target_usd: Decimal
    recovers: str | None = None
    raised_from_usd: Decimal | None = None  # a recovery after the budget was raised: its amount when it fired
    spend_revised: bool = False  # a recovery after spend to date went down (restated or late-revised data)

    @property
    def is_recovery(self) -> bool:
        return self.recovers is not None


def transitions(
    amount_usd: Decimal,
    thresholds: Sequence[int],
    measures: Measures,
    fired: Sequence[Fired],
    rules: Rules,
    as_of: datetime | None = None,
) -> list[Transition]:
    """Every transition this evaluation (of the moment `as_of`) makes, actual conditions first, thresholds
    ascending. A condition with an alert fired after `as_of` (a replay of an earlier moment, `run --as-of`)
    makes none: that alert stands as it is, neither recovered by the earlier, lower spend nor fired again."""
    found: list[Transition] = []
    forecast_ok = (
        not measures.period_ended
        and measures.forecast_value_usd is not None
        and measures.history_days >= rules.forecast_min_history_days
    )
    for kind in ("actual", "forecast"):
        for pct in sorted(thresholds):
            if kind == "forecast" and (not forecast_ok or pct < rules.forecast_min_threshold_pct):
                continue
            target = amount_usd * pct / 100
            rearm = target * rules.rearm_pct / 100
            value = measures.actual_usd if kind == "actual" else measures.forecast_value_usd
            assert value is not None
            mine = [f for f in fired if f.kind == kind and f.threshold_pct == pct]
            if as_of is not None and any(f.fired_at is not None and f.fired_at > as_of for f in mine):
                continue
            open_alert = next((f for f in mine if f.state == "open"), None)
            episode = max((f.episode for f in mine), default=0)
            if open_alert is None:
                fires = value >= target and (kind == "actual" or measures.actual_usd < target)
                if fires:
                    found.append(Transition(kind, pct, episode + 1, value, target))
            elif value < rearm and (kind == "actual" or measures.actual_usd < target):
                found.append(_recovery(open_alert, amount_usd, measures, value, target))
    return found


def _recovery(alert: Fired, amount_usd: Decimal, measures: Measures, value: Decimal, target: Decimal) -> Transition:
    """The recovery of `alert`, with its cause: the budget raised since it fired, spend revised down, or both."""
    raised = alert.amount_usd is not None and amount_usd > alert.amount_usd
    revised = alert.actual_usd is not None and measures.actual_usd < alert.actual_usd
    return Transition(
        alert.kind,
        alert.threshold_pct,
        alert.episode,
        value,
        target,
        recovers=alert.alert_id,
        raised_from_usd=alert.amount_usd if raised else None,
        spend_revised=revised,
    )
