"""What an alert says about its threshold: a forecast alert's projected date is the day the forecast reaches its
own threshold's amount, or it says that the path stays under it (hunt B bug 4)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from finops.alert.render import detail_lines, slack_body
from finops.store.db import Database
from tests.alert.conftest import NOV, alert_settings, at, budget, evaluate, put_forecast, put_spend


def _payloads(db: Database, basis: str = "point") -> dict[tuple[str, int], dict[str, Any]]:
    """Budget $100 with thresholds 50, 100, 150 and 190 %; $60 spent by Nov 11 00:00; forecast $180 (hi80 $198).
    The payloads by (kind, threshold)."""
    budget(db, amount="100", thresholds=(50, 100, 150, 190))
    for n in range(1, 15):
        put_spend(db, NOV - timedelta(days=n), "support", "1")  # two weeks of history
    for n in range(10):
        put_spend(db, NOV + timedelta(days=n), "support", "6")
    put_forecast(db, "support", "2026-11", at(NOV + timedelta(days=10)), "180")
    evaluate(db, at(NOV + timedelta(days=10)), alert_settings(forecast_basis=basis))
    found = db.execute("SELECT kind, threshold_pct, CAST(payload AS VARCHAR) FROM alerts")
    return {(kind, pct): json.loads(text) for kind, pct, text in found}


def test_a_forecast_alert_dates_the_crossing_of_its_own_threshold_4(db: Database) -> None:
    payloads = _payloads(db)

    assert sorted(payloads) == [("actual", 50), ("forecast", 100), ("forecast", 150)]  # $180 is under 190 %
    # $60 by Nov 11, $120 more over the 20 days left: $100 after 40/120 of them, $150 after 90/120
    assert {k: (p["projected_breach_date"], p["projected_breach_usd"]) for k, p in payloads.items()} == {
        ("actual", 50): ("2026-11-17", "100.000000"),  # an actual alert gives the budget's breach date
        ("forecast", 100): ("2026-11-17", "100.000000"),
        ("forecast", 150): ("2026-11-26", "150.000000"),
    }
    alert = payloads[("forecast", 150)]
    assert alert["message"].endswith("$60.00 spent so far; projected to reach $150.00 on 2026-11-26")
    assert "Projected breach date: 2026-11-26 (spend reaching $150.00)" in detail_lines(alert)
    assert json.loads(slack_body(alert))["text"] == alert["message"]


def test_a_forecast_alert_whose_path_stays_under_its_threshold_says_so_4(db: Database) -> None:
    alert = _payloads(db, basis="hi80")[("forecast", 190)]  # hi80 $198 crosses 190 %; the point path never does

    assert alert["projected_breach_date"] is None
    assert alert["message"].endswith(
        "$60.00 spent so far; the forecast's daily path stays under $190.00 through 2026-11-30"
    )
    assert "Projected breach date: none in the period (the forecast's daily path stays under $190.00)" in detail_lines(
        alert
    )


def test_money_in_a_payload_is_plain_decimal_text_never_an_exponent(db: Database) -> None:
    # hunt F 7: a forecast alert on the 1st said "actual_usd": "0E-12"
    budget(db, amount="100", thresholds=(100,))
    for n in range(1, 15):
        put_spend(db, NOV - timedelta(days=n), "support", "5")
    put_forecast(db, "support", "2026-11", at(NOV), "150")
    evaluate(db, at(NOV))
    [text] = [r[0] for r in db.execute("SELECT CAST(payload AS VARCHAR) FROM alerts")]

    payload = json.loads(text)
    assert payload["kind"] == "forecast" and payload["actual_usd"] == "0.000000000000"
    assert "E-" not in text and "E+" not in text
