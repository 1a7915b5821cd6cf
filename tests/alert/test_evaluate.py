"""`alert_step` over spend and forecasts in the database: each threshold once, forecasts before breaches, nothing on a
flat team, hysteresis, recovery, restated data, findings, catch-up after downtime, two evaluators at once."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from decimal import Decimal

from finops.alert import alert_step
from finops.alert.budgets import BudgetSpec, delete_budget, update_budget
from finops.jobs import shared_database
from finops.store.db import Database
from tests.alert.conftest import (
    NOV,
    alert_settings,
    alerts,
    at,
    budget,
    evaluate,
    put_forecast,
    put_spend,
    restate_spend,
)
from tests.helpers import rows

OCT = date(2026, 10, 1)


def day(n: int, month: date = NOV) -> date:
    """The n-th day (1-based) of `month`."""
    return month + timedelta(days=n - 1)


def test_each_threshold_fires_once_as_spend_grows_through_the_month(db: Database) -> None:
    budget(db, amount="100")
    fired_on: dict[int, int] = {}
    for n in range(1, 31):
        put_spend(db, day(n), "support", "4")
        evaluate(db, at(day(n) + timedelta(days=1)))
        for a in alerts(db):
            fired_on.setdefault(a["threshold_pct"], n)

    assert [(a["kind"], a["threshold_pct"], a["episode"]) for a in alerts(db)] == [
        ("actual", 50, 1),
        ("actual", 80, 1),
        ("actual", 100, 1),
    ]
    assert fired_on == {50: 13, 80: 20, 100: 25}  # $52, $80, $100


def test_a_replay_of_an_earlier_moment_neither_recovers_nor_refires_later_alerts(db: Database) -> None:
    # hunt F 1: `run --as-of` back to the 3rd sent "back under ... after revised spend data" for alerts of the
    # 15th, and the run back at the 15th fired every crossing again as episode 2
    budget(db, amount="100")
    for n in range(1, 16):
        put_spend(db, day(n), "support", "10")
    evaluate(db, at(day(15)))  # $140 spent: 50, 80 and 100 % fire

    assert evaluate(db, at(day(3))) == 0  # $20 by then: nothing happens to alerts fired later
    assert evaluate(db, at(day(15))) == 0  # back where it was: the same crossings, no new alerts

    assert sorted((a["kind"], a["threshold_pct"], a["episode"], a["state"]) for a in alerts(db)) == [
        ("actual", 50, 1, "open"),
        ("actual", 80, 1, "open"),
        ("actual", 100, 1, "open"),
    ]
    for n in range(5, 15):  # a real revision, evaluated at a later moment ($50 by the 16th): recoveries
        restate_spend(db, day(n), "support", "0")
    evaluate(db, at(day(16)))
    assert sorted(a["threshold_pct"] for a in alerts(db, "kind = 'recovery'")) == [80, 100]


def test_a_flat_team_under_its_budget_gets_no_alert(db: Database) -> None:
    budget(db, amount="100")
    for n in range(1, 31):
        put_spend(db, day(n), "support", "1.5")
        put_forecast(db, "support", "2026-11", at(day(n) + timedelta(days=1)), "45")
        evaluate(db, at(day(n) + timedelta(days=1)))

    assert alerts(db) == []


def test_the_forecast_alert_comes_before_the_actual_breach_on_a_growing_team(db: Database) -> None:
    budget(db, amount="250")
    for n in range(1, 32):
        put_spend(db, day(n, OCT), "support", "3")  # a month of history
    for n in range(1, 31):
        put_spend(db, day(n), "support", str(2 + n // 2))
        actual = sum(Decimal(2 + k // 2) for k in range(1, n + 1))
        put_forecast(db, "support", "2026-11", at(day(n) + timedelta(days=1)), actual + Decimal(2 + n // 2) * (30 - n))
        evaluate(db, at(day(n) + timedelta(days=1)))

    found = {(a["kind"], a["threshold_pct"]): a for a in alerts(db)}
    assert set(found) == {("actual", 50), ("actual", 80), ("actual", 100), ("forecast", 100)}
    assert found[("forecast", 100)]["fired_at"] < found[("actual", 100)]["fired_at"]
    assert "forecast to reach 100% of the monthly budget in 2026-11" in found[("forecast", 100)]["message"]


def test_no_forecast_alert_without_the_minimum_history(db: Database) -> None:
    budget(db, amount="100")
    for n in range(1, 6):
        put_spend(db, day(n), "support", "5")
    put_forecast(db, "support", "2026-11", at(day(6)), "150")

    assert evaluate(db, at(day(6)), alert_settings(forecast_min_history_days=14)) == 0
    assert evaluate(db, at(day(6)), alert_settings(forecast_min_history_days=5)) == 1


def test_forecast_hysteresis_rearms_only_clearly_under(db: Database) -> None:
    budget(db, amount="1000", thresholds=(100,))
    put_spend(db, day(1, OCT), "support", "10")  # history
    put_spend(db, day(1), "support", "100")
    for n, forecast in enumerate(("1050", "980", "1030", "950", "899", "1010"), start=2):
        put_forecast(db, "support", "2026-11", at(day(n)), forecast)
        evaluate(db, at(day(n)))

    assert [(a["kind"], a["condition_kind"], a["episode"], a["state"]) for a in alerts(db)] == [
        ("forecast", "forecast", 1, "recovered"),
        ("recovery", "forecast", 1, "closed"),
        ("forecast", "forecast", 2, "open"),
    ]


def test_restated_spend_recovers_and_re_evaluates_without_duplicates(db: Database) -> None:
    budget(db, amount="100")
    put_spend(db, day(1), "support", "85")
    assert evaluate(db, at(day(2))) == 2  # 50 % and 80 %
    assert evaluate(db, at(day(2))) == 0  # the same data again: nothing

    restate_spend(db, day(1), "support", "78")  # revised down, still above 72 (90 % of 80): no flapping
    assert evaluate(db, at(day(2), 6)) == 0

    restate_spend(db, day(1), "support", "60")  # clearly under 80 %, still over 50 %
    assert evaluate(db, at(day(2), 12)) == 1
    assert evaluate(db, at(day(2), 13)) == 0
    [recovery] = alerts(db, "kind = 'recovery'")
    assert (recovery["threshold_pct"], recovery["condition_kind"]) == (80, "actual")
    assert "back under 80% of the monthly budget for 2026-11: $60.00 of $100.00" in recovery["message"]

    restate_spend(db, day(1), "support", "85")  # late usage pushes it over again: a new episode, once
    assert evaluate(db, at(day(2), 18)) == 1
    assert evaluate(db, at(day(2), 19)) == 0
    assert [(a["kind"], a["threshold_pct"], a["episode"], a["state"]) for a in alerts(db)] == [
        ("actual", 50, 1, "open"),
        ("actual", 80, 1, "recovered"),
        ("recovery", 80, 1, "closed"),
        ("actual", 80, 2, "open"),
    ]


def _finding(db: Database, finding_id: str, team: str, excess: str, feature: str = "chat") -> None:
    db.execute(
        """INSERT INTO findings (finding_id, kind, detector, team, feature, model, subject, window_start, window_end,
                                metric, observed, expected, excess_cost_usd, score, severity, evidence, first_run_id,
                                last_run_id, detected_at)
           VALUES ($id, 'retry_storm', 'retries', $team, $feature, 'gpt-4o', 'team=' || $team, $start, $end,
                   'retry_share', 0.6, 0.05, $excess, 0.9, 'high', '{"trace_ids": ["t1"]}', 1, 1, $end)""",
        {
            "id": finding_id,
            "team": team,
            "feature": feature,
            "excess": Decimal(excess),
            "start": at(day(3), 9),
            "end": at(day(3), 11),
        },
    )


def test_a_finding_above_the_floor_alerts_the_teams_budget_channels_once(db: Database) -> None:
    put_spend(db, day(3), "support", "20")
    team_budget = budget(db, amount="1000", channels=["webhook:http://127.0.0.1:1/a"])
    budget(db, amount="200", feature="chat", channels=["webhook:http://127.0.0.1:1/a", "email:chat@example.com"])
    budget(db, team="platform", amount="1000", channels=["webhook:http://127.0.0.1:1/p"])
    _finding(db, "f-storm", "support", "120")
    _finding(db, "f-small", "support", "10")  # under the $50 floor
    _finding(db, "f-nobudget", "research", "500")  # no budget covers research

    assert evaluate(db, at(day(4))) == 1
    assert evaluate(db, at(day(5))) == 0

    [alert] = alerts(db)
    assert (alert["kind"], alert["finding_id"], alert["budget_id"]) == ("finding", "f-storm", team_budget.budget_id)
    assert alert["message"].startswith("support/chat: retry_storm (gpt-4o) cost $120.00 more than expected (high")
    channels = rows(db, "SELECT channel FROM alert_deliveries ORDER BY channel")
    assert [c["channel"] for c in channels] == ["email:chat@example.com", "webhook:http://127.0.0.1:1/a"]


def test_an_alert_carries_budget_actual_forecast_breach_date_and_drivers(db: Database) -> None:
    budget(db, amount="100", thresholds=(50,))
    put_spend(db, day(1, OCT), "support", "1")
    for n in range(1, 11):
        put_spend(db, day(n), "support", "4", feature="chat", model="gpt-4o")
        put_spend(db, day(n), "support", "2", feature="search", model="claude-sonnet-4-5")
    _finding(db, "f-storm", "support", "30")
    put_forecast(db, "support", "2026-11", at(day(11)), "180")

    evaluate(db, at(day(11)))

    payload = json.loads(db.scalar("SELECT CAST(payload AS VARCHAR) FROM alerts WHERE kind = 'actual'"))
    assert payload["budget"] == {
        "budget_id": 1,
        "scope": "team=support",
        "team": "support",
        "feature": None,
        "tag": None,
        "period_kind": "month",
        "amount_usd": "100.000000",
        "thresholds": [50],
    }
    assert (payload["actual_usd"], payload["actual_pct"], payload["threshold_usd"]) == (
        "60.000000000000",
        "60.0",
        "50.000000",
    )
    forecast = payload["forecast"]
    assert (forecast["forecast_usd"], forecast["lo80_usd"], forecast["hi80_usd"]) == (
        "180.000000000000",
        "162.000000000000",
        "198.000000000000",
    )
    # $60 by Nov 11 00:00, $120 more over the 20 days left: $100 is reached after 40/120 of them
    assert payload["projected_breach_date"] == "2026-11-17"
    assert [d["name"] for d in payload["drivers"]["features"]] == ["chat", "search"]
    assert [d["name"] for d in payload["drivers"]["models"]] == ["gpt-4o", "claude-sonnet-4-5"]
    assert [(f["finding_id"], f["kind"]) for f in payload["drivers"]["findings"]] == [("f-storm", "retry_storm")]


def test_catch_up_after_downtime_evaluates_the_missed_period_once(db: Database) -> None:
    budget(db, amount="100")
    for n in range(1, 32):
        put_spend(db, day(n, OCT), "support", "3")  # $93 in October: 80 % crossed on Oct 27
    for n in range(1, 20):
        put_spend(db, day(n), "support", "1")
    evaluate(db, at(day(10, OCT)))  # $27: nothing yet; then the scheduler is down until Nov 20

    assert evaluate(db, at(day(20))) == 2  # October's 50 % and 80 %, once
    assert evaluate(db, at(day(20), 1)) == 0

    assert [(a["period"], a["threshold_pct"]) for a in alerts(db)] == [("2026-10", 50), ("2026-10", 80)]
    periods = rows(db, "SELECT period, evaluations, actual_usd, closed_at IS NOT NULL AS closed FROM budget_periods")
    assert sorted((p["period"], p["evaluations"], p["actual_usd"], p["closed"]) for p in periods) == [
        ("2026-10", 2, Decimal(93), True),  # Oct 10, then the catch-up; closed, never evaluated again
        ("2026-11", 2, Decimal(19), False),
    ]
    assert alerts(db, "state = 'open'") == []  # October's alerts closed with it


def test_late_data_for_last_month_is_still_evaluated_within_the_grace_days(db: Database) -> None:
    budget(db, amount="100")
    put_spend(db, day(30), "support", "45")
    evaluate(db, at(day(30), 12))
    put_spend(db, day(30), "support", "10")  # arrives on Dec 1 for Nov 30

    assert evaluate(db, at(date(2026, 12, 2))) == 1
    assert [(a["period"], a["threshold_pct"], a["state"]) for a in alerts(db)] == [("2026-11", 50, "open")]
    evaluate(db, at(date(2026, 12, 5)))  # past the 3 grace days: closed
    assert [(a["period"], a["state"]) for a in alerts(db)] == [("2026-11", "closed")]


def test_feature_quarter_and_custom_budgets_count_their_own_spend(db: Database) -> None:
    put_spend(db, day(5), "support", "60", feature="chat")
    put_spend(db, day(5), "support", "60", feature="search")
    put_spend(db, day(15, OCT), "support", "30", feature="chat")
    budget(db, amount="100", feature="chat")
    budget(db, amount="200", period_kind="quarter")
    budget(db, amount="50", period_kind="custom", period_start=day(1), period_end=day(5))  # Nov 1-4 only

    evaluate(db, at(day(6)))

    assert [(a["budget_id"], a["period"], a["threshold_pct"]) for a in alerts(db)] == [
        (1, "2026-11", 50),  # $60 of chat's $100
        (2, "2026-Q4", 50),  # $150 of $200 since October 1
    ]


def test_updated_amount_re_evaluates_and_a_deleted_budget_stops(db: Database) -> None:
    b = budget(db, amount="100")
    put_spend(db, day(1), "support", "85")
    assert evaluate(db, at(day(2))) == 2

    update_budget(db, b.budget_id, BudgetSpec(amount_usd="1000", team="support"))
    assert evaluate(db, at(day(2), 1)) == 2  # $85 is clearly under 50 % and 80 % of $1000: two recoveries

    delete_budget(db, b.budget_id)
    put_spend(db, day(2), "support", "2000")
    assert evaluate(db, at(day(3))) == 0


def test_two_evaluators_at_once_record_each_alert_once(db: Database) -> None:
    budget(db, amount="100", channels=["webhook:http://127.0.0.1:1/a"])
    put_spend(db, day(1), "support", "150")
    provide = shared_database(db)
    start = threading.Barrier(4)
    counts: list[int] = []
    errors: list[BaseException] = []

    def evaluator() -> None:
        try:
            with provide() as cursor_db:
                start.wait()
                counts.append(alert_step(cursor_db, at(day(2)), 0, settings=alert_settings()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(counts) == [0, 0, 0, 3]
    assert db.scalar("SELECT count(*) FROM alerts") == 3
    assert db.scalar("SELECT count(*) FROM alert_deliveries") == 3


def test_a_custom_period_that_passed_while_nothing_ran_is_caught_up_once(db: Database) -> None:
    b = budget(
        db,
        amount="45",
        thresholds=(100,),
        period_kind="custom",
        period_start=day(10),
        period_end=day(16),
        now=at(day(1)),
    )
    for n in range(1, 21):
        put_spend(db, day(n), "support", "8")
    evaluate(db, at(day(9)))  # before the range; then the scheduler is down until after it ended

    assert evaluate(db, at(day(16), 6)) == 1  # $48 of $45, once
    assert evaluate(db, at(day(17))) == 0
    [alert] = alerts(db)
    assert (alert["budget_id"], alert["period"], alert["threshold_pct"]) == (b.budget_id, "2026-11-10/2026-11-16", 100)
    assert "100% of the custom-period budget reached in 2026-11-10/2026-11-16: $48.00 of $45.00" in alert["message"]
    evaluate(db, at(day(20)))  # past the 3 grace days: closed
    assert [a["state"] for a in alerts(db)] == ["closed"]


def test_a_custom_budget_set_within_the_grace_days_after_its_range_is_evaluated(db: Database) -> None:
    for n in range(10, 22):
        put_spend(db, day(n), "support", "25")
    budget(
        db,
        amount="100",
        thresholds=(100,),
        period_kind="custom",
        period_start=day(10),
        period_end=day(22),
        now=at(day(22), 10),
    )

    assert evaluate(db, at(day(22), 10)) == 1
    assert [(a["period"], a["threshold_pct"]) for a in alerts(db)] == [("2026-11-10/2026-11-22", 100)]


def test_a_custom_budget_set_after_its_range_closed_is_not_evaluated(db: Database) -> None:
    for n in range(1, 5):
        put_spend(db, day(n), "support", "50")
    budget(db, amount="100", period_kind="custom", period_start=day(1), period_end=day(5), now=at(day(20)))

    assert evaluate(db, at(day(20))) == 0
    assert rows(db, "SELECT * FROM budget_periods") == []


def test_a_month_that_passed_while_nothing_ran_since_the_budget_was_set_is_caught_up(db: Database) -> None:
    budget(db, amount="100", thresholds=(100,), now=at(day(20, OCT)))
    for n in range(20, 32):
        put_spend(db, day(n, OCT), "support", "10")

    assert evaluate(db, at(day(1), 6)) == 1  # the first run since Oct 20: October's $120, once
    assert [(a["period"], a["threshold_pct"]) for a in alerts(db)] == [("2026-10", 100)]


def test_a_month_budget_first_evaluated_long_after_it_was_set_checks_only_open_months(db: Database) -> None:
    budget(db, amount="100", thresholds=(100,), now=at(day(14, date(2026, 9, 1))))  # as the demo sets its budgets
    for n in range(1, 32):
        put_spend(db, day(n, OCT), "support", "10")  # October: $310, closed since Nov 4
    put_spend(db, day(1), "support", "120")

    assert evaluate(db, at(day(16))) == 1
    assert [(a["period"], a["threshold_pct"]) for a in alerts(db)] == [("2026-11", 100)]
