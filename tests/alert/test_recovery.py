"""Recovery notices: the cause they give (the budget raised, spend revised, or both) and who receives them (the
channels the recovered alert went to, not channels added since) (hunt B bug 6)."""

from __future__ import annotations

import json
from decimal import Decimal

from finops.alert.budgets import BudgetSpec, update_budget
from finops.alert.machine import Fired, Measures, Rules, transitions
from finops.store.db import Database
from tests.alert.conftest import NOV, alerts, at, budget, evaluate, put_spend, restate_spend
from tests.helpers import rows

HOOK_A = "webhook:http://127.0.0.1:1/a"
HOOK_B = "webhook:http://127.0.0.1:1/b"
RULES = Rules(rearm_pct=Decimal(90), forecast_min_history_days=14, forecast_min_threshold_pct=100)


def _recovery(db: Database) -> dict[str, object]:
    [found] = alerts(db, "kind = 'recovery'")
    return found


def _cause(db: Database) -> dict[str, object]:
    payload = db.scalar("SELECT CAST(payload AS VARCHAR) FROM alerts WHERE kind = 'recovery'")
    return json.loads(payload)["cause"]  # type: ignore[no-any-return]


def test_a_raised_budget_is_named_as_the_cause_6(db: Database) -> None:
    b = budget(db, amount="100", thresholds=(80,))
    put_spend(db, NOV, "support", "85")
    assert evaluate(db, at(NOV, 6)) == 1

    update_budget(db, b.budget_id, BudgetSpec(amount_usd="1000", team="support"))
    assert evaluate(db, at(NOV, 7)) == 1

    assert _recovery(db)["message"] == (
        "team=support: back under 80% of the monthly budget for 2026-11: $85.00 of $1,000.00 after the budget was "
        "raised from $100.00 to $1,000.00"
    )
    assert _cause(db) == {"budget_raised_from_usd": "100.000000", "spend_revised": False}


def test_revised_spend_is_named_only_when_spend_went_down_6(db: Database) -> None:
    budget(db, amount="100", thresholds=(80,))
    put_spend(db, NOV, "support", "85")
    evaluate(db, at(NOV, 6))

    restate_spend(db, NOV, "support", "60")
    assert evaluate(db, at(NOV, 7)) == 1

    assert _recovery(db)["message"].endswith(": $60.00 of $100.00 after revised spend data")  # type: ignore[union-attr]
    assert _cause(db) == {"budget_raised_from_usd": None, "spend_revised": True}


def test_both_causes_together_6(db: Database) -> None:
    b = budget(db, amount="100", thresholds=(80,))
    put_spend(db, NOV, "support", "85")
    evaluate(db, at(NOV, 6))

    restate_spend(db, NOV, "support", "80")
    update_budget(db, b.budget_id, BudgetSpec(amount_usd="200", team="support"))
    evaluate(db, at(NOV, 7))

    assert _recovery(db)["message"].endswith(  # type: ignore[union-attr]
        "$80.00 of $200.00 after the budget was raised from $100.00 to $200.00 and spend data was revised"
    )


def test_the_machine_gives_the_cause_of_each_recovery_6() -> None:
    fired = [Fired("a", "actual", 80, 1, "open", amount_usd=Decimal(100), actual_usd=Decimal(85))]

    def cause(amount: str, actual: str) -> tuple[Decimal | None, bool]:
        [t] = transitions(Decimal(amount), (80,), Measures(Decimal(actual), None, 30, False), fired, RULES)
        return t.raised_from_usd, t.spend_revised

    assert cause("1000", "90") == (Decimal(100), False)  # raised; spend grew, as it does
    assert cause("100", "60") == (None, True)
    assert cause("1000", "60") == (Decimal(100), True)


def test_a_recovery_goes_only_to_channels_the_alert_went_to_6(db: Database) -> None:
    b = budget(db, amount="100", thresholds=(50, 80), channels=[HOOK_A])
    put_spend(db, NOV, "support", "85")
    assert evaluate(db, at(NOV, 6)) == 2  # 50 % and 80 %, to A

    # B is added (A stays) and the budget raised: the 80 % alert recovers, and only A hears of it
    update_budget(db, b.budget_id, BudgetSpec(amount_usd="150", team="support", channels=[HOOK_A, HOOK_B]))
    assert evaluate(db, at(NOV, 7)) == 1
    recovery = _recovery(db)
    sent = rows(db, "SELECT channel FROM alert_deliveries WHERE alert_id = $id", {"id": recovery["alert_id"]})
    assert [r["channel"] for r in sent] == [HOOK_A]

    # A is removed: the 50 % recovery goes nowhere (B never heard of the 50 % alert); it is recorded only
    update_budget(db, b.budget_id, BudgetSpec(amount_usd="1000", team="support", channels=[HOOK_B]))
    assert evaluate(db, at(NOV, 8)) == 1
    [second] = [a for a in alerts(db, "kind = 'recovery'") if a["alert_id"] != recovery["alert_id"]]
    assert (second["threshold_pct"], second["delivery"]) == (50, "none")
