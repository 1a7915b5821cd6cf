"""`GET /v1/forecasts`: the newest forecast of a scope and period, its budget and breach date, per key scope.

Planted (conftest), all made at 2026-10-20 unless said: alpha October (also an older one at 10-19), alpha/chat
October against budget 5 ($1, breach stored as 2026-10-28), alpha 2026-Q4, bravo and bravo/zzqfeature
October, the company October. Alpha's actual spend is $0.04 a day, October 1 to 15.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api.conftest import CANARIES, Api


def _forecast(api: Api, who: str, **params: Any) -> dict[str, Any]:
    response = api.client.get("/v1/forecasts", params=params, headers=api.headers(who))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_teams_newest_forecast_in_full(api: Api) -> None:
    assert _forecast(api, "owner", period="2026-10") == {
        "team": "alpha",
        "feature": None,
        "scope": "team",
        "period": "2026-10",
        "period_kind": "month",
        "period_start": "2026-10-01",
        "period_end": "2026-11-01",
        "as_of": "2026-10-20T00:00:00Z",
        "forecast_start": "2026-10-20",
        "data_through": None,  # a row written before the column existed
        "history_days": 19,
        "actual_to_date_usd": "0.600000000000",
        "remaining_days": 12,
        "remaining_usd": "0.600000000000",
        "forecast_usd": "1.200000000000",
        "lo80_usd": "1.080000000000",
        "hi80_usd": "1.320000000000",
        "lo95_usd": "0.960000000000",
        "hi95_usd": "1.440000000000",
        "daily_forecast_usd": ["0.050000000000"] * 12,
        "method": "seasonal_naive",
        "note": "newest",
        "budget_id": 2,
        "budget_usd": "100.000000",
        "breach_date": None,
    }


def test_as_of_picks_the_newest_forecast_made_by_then(api: Api) -> None:
    older = _forecast(api, "finance", team="alpha", period="2026-10", as_of="2026-10-19T12:00:00Z")
    assert (older["note"], older["as_of"], older["forecast_usd"]) == ("older", "2026-10-19T00:00:00Z", "1.210000000000")
    assert _forecast(api, "finance", team="alpha", as_of="2026-10-20T08:00:00")["note"] == "newest"  # month of as_of


def test_a_feature_forecast_carries_the_stored_breach_date(api: Api) -> None:
    body = _forecast(api, "owner", team="alpha", feature="chat", period="2026-10")
    assert (body["scope"], body["budget_id"], body["budget_usd"], body["breach_date"]) == (
        "feature",
        5,
        "1.000000",
        "2026-10-28",
    )


def test_a_quarter(api: Api) -> None:
    body = _forecast(api, "owner", period="2026-q4")
    assert (body["period"], body["period_kind"], body["period_end"], body["budget_id"]) == (
        "2026-Q4",
        "quarter",
        "2027-01-01",
        4,
    )


def test_the_breach_date_follows_the_budget_as_it_is_now(api: Api) -> None:
    """Budget 5 changed after the forecast: the date is found again on the stored daily path (0.6 spent, then
    0.05 a day from 10-20), or in the actual days (0.04 a day from 10-01) when the budget was already spent."""

    def breach(amount: str) -> tuple[str | None, str | None]:
        put = {"team": "alpha", "feature": "chat", "amount_usd": amount}
        assert api.client.put("/v1/budgets/5", json=put, headers=api.headers("finance")).status_code == 200
        body = _forecast(api, "owner", feature="chat", period="2026-10")
        return body["budget_usd"], body["breach_date"]

    assert breach("0.8") == ("0.800000", "2026-10-24")  # 0.6 + 5 x 0.05 = 0.85 > 0.8
    assert breach("0.85") == ("0.850000", "2026-10-25")  # reaching the amount is not exceeding it
    assert breach("0.1") == ("0.100000", "2026-10-03")  # 0.04 x 3 = 0.12 > 0.1
    assert breach("5") == ("5.000000", None)  # never within October
    assert breach("1") == ("1.000000", "2026-10-28")  # the forecast's own amount again
    assert api.client.delete("/v1/budgets/5", headers=api.headers("finance")).status_code == 200
    body = _forecast(api, "owner", feature="chat", period="2026-10")  # no budget any more: none shown
    assert (body["budget_id"], body["budget_usd"], body["breach_date"]) == (None, None, None)


def test_a_key_that_sees_every_team_gets_the_company_without_a_team(api: Api) -> None:
    body = _forecast(api, "engineer", period="2026-10")
    assert (body["scope"], body["team"], body["feature"], body["budget_id"]) == ("company", None, None, None)


def test_bravos_owner_reads_bravo(api: Api) -> None:
    body = _forecast(api, "owner_bravo", period="2026-10")
    assert (body["team"], body["forecast_usd"], body["budget_id"]) == ("bravo", "35097.864704000000", 1)


@pytest.mark.parametrize("who", ["owner", "engineer_alpha"])
def test_another_team_is_403_whether_it_exists_or_not(api: Api, who: str) -> None:
    for team in ("bravo", "no-such-team"):
        response = api.client.get("/v1/forecasts", params={"team": team, "period": "2026-10"}, headers=api.headers(who))
        assert response.status_code == 403
        assert response.json()["code"] == "out_of_scope"
        assert team not in response.text


@pytest.mark.parametrize(
    "period", ["2026-13", "2026-1", "bravo", "2026-Q5", "2026-11-10/2026-11-01", "9999-12", "0000-01"]
)
def test_a_bad_period_is_400(api: Api, period: str) -> None:
    response = api.client.get("/v1/forecasts", params={"period": period}, headers=api.headers("owner"))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "period is not a month (YYYY-MM), a quarter (YYYY-Qn) or a custom budget period "
        "(YYYY-MM-DD/YYYY-MM-DD, end exclusive); e.g. period=2026-11.",
        "code": "invalid_input",
        "parameter": "period",
    }


def test_an_as_of_past_the_last_utc_time_is_400(api: Api) -> None:
    params = {"team": "alpha", "as_of": "9999-12-31T23:59:59-05:00"}
    response = api.client.get("/v1/forecasts", params=params, headers=api.headers("admin"))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "as_of is outside the times finops reads (years 1 to 9999 in UTC); expected e.g. "
        "2026-11-01T00:00:00Z.",
        "code": "invalid_input",
        "parameter": "as_of",
    }


def test_no_forecast_is_404_naming_the_period(api: Api) -> None:
    response = api.client.get("/v1/forecasts", params={"period": "2025-01"}, headers=api.headers("owner"))
    assert response.status_code == 404
    assert response.json() == {
        "detail": "No forecast of this scope for 2025-01. `finops run` (and the scheduler) forecast every team with "
        "spend, every feature with a budget, and the company, for the current month, quarter and custom budget "
        "periods.",
        "code": "not_found",
        "period": "2025-01",
    }
    unknown = api.client.get(
        "/v1/forecasts", params={"team": "nosuch", "period": "2026-10"}, headers=api.headers("admin")
    )
    assert unknown.status_code == 404


def test_the_period_defaults_to_the_current_utc_month(api: Api) -> None:
    response = api.client.get("/v1/forecasts", headers=api.headers("owner"))
    assert response.status_code == 404  # nothing planted for the real current month
    assert response.json()["period"] == datetime.now(UTC).strftime("%Y-%m")


def test_a_key_of_several_teams_names_one(api: Api) -> None:
    key = api.client.post("/v1/keys", json={"role": "owner", "teams": ["alpha", "gamma"]}, headers=api.headers("admin"))
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    response = api.client.get("/v1/forecasts", params={"period": "2026-10"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"] == "This key sees several teams (alpha, gamma); name one with team=."
    named = api.client.get("/v1/forecasts", params={"period": "2026-10", "team": "alpha"}, headers=headers)
    assert named.json()["note"] == "newest"


def test_a_feature_needs_a_team_for_a_key_that_sees_every_team(api: Api) -> None:
    response = api.client.get("/v1/forecasts", params={"feature": "chat"}, headers=api.headers("admin"))
    assert response.status_code == 400
    assert response.json()["detail"] == "A feature forecast is per team; add team= to the feature."


def test_alpha_never_sees_bravo_or_the_company_forecast(api: Api) -> None:
    seen = []
    for who in ("owner", "engineer_alpha"):
        for params in ({"period": "2026-10"}, {"period": "2026-10", "feature": "zzqfeature"}, {"team": "bravo"}):
            seen.append(api.client.get("/v1/forecasts", params=params, headers=api.headers(who)).text)
    text = " ".join(seen)
    assert [c for c in CANARIES if c in text] + [c for c in ("zzqglobal", "zzqsubject") if c in text] == []
