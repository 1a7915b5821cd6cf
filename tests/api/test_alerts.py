"""`/v1/alerts`: alerts scoped through their budget's team, filters, limits, redacted delivery channels.

Planted (conftest): alr_alpha_open and alr_alpha_old on alpha's budget 2, alr_bravo on bravo's budget 1,
alr_global on budget 3 (a tag across every team); deliveries of alr_alpha_open to an e-mail address and a
Slack URL holding `alphasecret`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ALPHA_SLACK, CANARIES, Api


def _alerts(api: Api, who: str, **params: Any) -> list[str]:
    response = api.client.get("/v1/alerts", params=params, headers=api.headers(who))
    assert response.status_code == 200, response.text
    return [a["alert_id"] for a in response.json()["rows"]]


def test_keys_that_see_every_team_list_every_alert_newest_first(api: Api) -> None:
    expected = ["alr_global", "alr_bravo", "alr_alpha_open", "alr_alpha_old"]
    assert _alerts(api, "admin") == expected
    assert _alerts(api, "finance") == expected
    assert _alerts(api, "engineer") == expected


@pytest.mark.parametrize("who", ["owner", "engineer_alpha"])
def test_a_scoped_key_lists_only_its_teams_alerts(api: Api, who: str) -> None:
    assert _alerts(api, who) == ["alr_alpha_open", "alr_alpha_old"]


def test_an_alert_row_in_full(api: Api) -> None:
    body = api.client.get("/v1/alerts", params={"status": "open"}, headers=api.headers("owner")).json()
    assert body == {
        "rows": [
            {
                "alert_id": "alr_alpha_open",
                "budget_id": 2,
                "team": "alpha",
                "feature": None,
                "tag": None,
                "kind": "actual",
                "condition_kind": "actual",
                "threshold_pct": 100,
                "period": "2026-10",
                "period_start": "2026-10-01",
                "period_end": "2026-11-01",
                "episode": 1,
                "recovers": None,
                "finding_id": None,
                "fired_at": "2026-10-15T00:00:00Z",
                "state": "open",
                "state_changed_at": "2026-10-15T00:00:00Z",
                "delivery": "failed",
                "amount_usd": "100.000000",
                "actual_usd": "120.500000000000",
                "forecast_usd": None,
                "message": "team=alpha: 100% reached",
            }
        ],
        "limit": 100,
        "truncated": False,
        "offset": 0,
        "next_offset": None,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "open"}, ["alr_global", "alr_bravo", "alr_alpha_open"]),
        ({"status": ["recovered", "closed"]}, ["alr_alpha_old"]),
        ({"kind": "forecast"}, ["alr_bravo", "alr_alpha_old"]),
        ({"delivery": "pending"}, ["alr_global", "alr_bravo"]),
        ({"budget_id": 2}, ["alr_alpha_open", "alr_alpha_old"]),
        ({"team": "bravo"}, ["alr_bravo"]),
        ({"status": "open", "team": ["alpha", "bravo"]}, ["alr_bravo", "alr_alpha_open"]),
    ],
)
def test_filters(api: Api, params: dict[str, Any], expected: list[str]) -> None:
    assert _alerts(api, "admin", **params) == expected


def test_another_teams_budget_id_filter_finds_nothing(api: Api) -> None:
    assert _alerts(api, "owner", budget_id=1) == []
    assert _alerts(api, "owner", budget_id=3) == []


def test_team_filter_outside_the_scope_is_403(api: Api) -> None:
    response = api.client.get("/v1/alerts", params={"team": "bravo"}, headers=api.headers("owner"))
    assert response.status_code == 403
    assert response.json()["code"] == "out_of_scope"


def test_limit_truncates_and_is_capped(api: Api) -> None:
    body = api.client.get("/v1/alerts", params={"limit": 1}, headers=api.headers("admin")).json()
    assert ([a["alert_id"] for a in body["rows"]], body["truncated"]) == (["alr_global"], True)
    everything = api.client.get("/v1/alerts", headers=api.headers("admin")).json()["rows"]
    pages, offset = [], 0
    while offset is not None:
        page = api.client.get("/v1/alerts", params={"limit": 1, "offset": offset}, headers=api.headers("admin")).json()
        pages += page["rows"]
        offset = page["next_offset"]
    assert pages == everything and len(everything) > 1
    too_many = api.client.get("/v1/alerts", params={"limit": 10**9}, headers=api.headers("admin"))
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "invalid_input"


@pytest.mark.parametrize("params", [{"status": "firing"}, {"kind": "x"}, {"delivery": "sent"}, {"limit": 0}])
def test_unknown_filter_values_are_422(api: Api, params: dict[str, Any]) -> None:
    assert api.client.get("/v1/alerts", params=params, headers=api.headers("admin")).status_code == 422


def test_one_alert_with_its_payload_and_deliveries_redacted_for_an_owner(api: Api) -> None:
    response = api.client.get("/v1/alerts/alr_alpha_open", headers=api.headers("owner"))
    assert response.status_code == 200
    body = response.json()
    assert body["payload"] == {"budget": {"budget_id": 2}, "drivers": {"feature": [{"feature": "team=alpha"}]}}
    assert body["deliveries"] == [
        {
            "channel": "email:alpha@example.com",
            "status": "delivered",
            "attempts": 3,
            "next_attempt_at": None,
            "last_attempt_at": None,
            "last_status": None,
            "last_error": None,
            "delivered_at": None,
        },
        {
            "channel": "slack:https://hooks.slack.test/...",
            "status": "failed",
            "attempts": 3,
            "next_attempt_at": None,
            "last_attempt_at": None,
            "last_status": None,
            "last_error": "could not connect: https://hooks.slack.test/... refused",
            "delivered_at": None,
        },
    ]
    assert "alphasecret" not in response.text


def test_admin_sees_delivery_channels_in_clear(api: Api) -> None:
    body = api.client.get("/v1/alerts/alr_alpha_open", headers=api.headers("admin")).json()
    assert [d["channel"] for d in body["deliveries"]] == ["email:alpha@example.com", ALPHA_SLACK]
    assert body["deliveries"][1]["last_error"] == f"could not connect: {ALPHA_SLACK[6:]} refused"


@pytest.mark.parametrize("who", ["owner", "engineer_alpha"])
def test_another_teams_alert_is_the_same_404_as_a_missing_one(api: Api, who: str) -> None:
    bodies = []
    for alert_id in ("alr_bravo", "alr_global", "alr_nope", "zzqfeature"):
        response = api.client.get(f"/v1/alerts/{alert_id}", headers=api.headers(who))
        assert response.status_code == 404
        bodies.append(response.json())
    assert (
        bodies
        == [{"detail": "No alert with that id; GET /v1/alerts lists the alerts this key can see.", "code": "not_found"}]
        * 4
    )


def test_alpha_never_sees_bravo_through_the_alert_routes(api: Api) -> None:
    seen = []
    for who in ("owner", "engineer_alpha"):
        seen.append(api.client.get("/v1/alerts", params={"limit": 1000}, headers=api.headers(who)).text)
        for params in ({"budget_id": 1}, {"budget_id": 3}, {"status": "open"}, {"kind": "forecast"}):
            seen.append(api.client.get("/v1/alerts", params=params, headers=api.headers(who)).text)
        for alert_id in ("alr_alpha_open", "alr_bravo", "alr_global"):
            seen.append(api.client.get(f"/v1/alerts/{alert_id}", headers=api.headers(who)).text)
    text = " ".join(seen)
    assert [c for c in CANARIES if c in text] == []
    bravo = api.client.get("/v1/alerts/alr_bravo", headers=api.headers("owner_bravo"))
    assert bravo.status_code == 200
    assert "zzqsubject" in bravo.text
    assert "zzqhook.test/x" not in bravo.text  # bravo's own owner gets its webhook's path redacted
