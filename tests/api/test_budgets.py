"""`/v1/budgets`: who sees and manages which budgets, redacted channels, exact money, one-sentence errors.

Planted (conftest): 1 bravo month 31337.4242, 2 alpha month 100, 3 a tag across every team (no team),
4 alpha quarter 500, 5 alpha/chat month 1, 6 bravo/zzqfeature month.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ALPHA_SLACK, CANARIES, Api

REDACTED_SLACK = "slack:https://hooks.slack.test/..."


def _ids(body: list[dict[str, Any]]) -> list[int]:
    return [b["budget_id"] for b in body]


def test_admin_lists_every_budget_with_channels_in_clear(api: Api) -> None:
    body = api.client.get("/v1/budgets", headers=api.headers("admin")).json()
    assert _ids(body)[:6] == [1, 2, 3, 4, 5, 6]
    assert next(b for b in body if b["budget_id"] == 5)["channels"] == ["email:alpha@example.com", ALPHA_SLACK]


def test_owner_lists_only_its_teams_budgets_redacted(api: Api) -> None:
    body = api.client.get("/v1/budgets", headers=api.headers("owner")).json()
    assert [b for b in body if b["team"] != "alpha"] == []
    assert _ids(body)[:3] == [2, 4, 5]
    chat = next(b for b in body if b["budget_id"] == 5)
    assert chat == {
        "budget_id": 5,
        "team": "alpha",
        "feature": "chat",
        "tag": None,
        "scope": "team=alpha/feature=chat",
        "period_kind": "month",
        "period_start": None,
        "period_end": None,
        "amount_usd": "1.000000",
        "thresholds": [50, 80, 100],
        "channels": ["email:alpha@example.com", REDACTED_SLACK],
        "active": True,
        "created_at": "2026-10-20T00:00:00Z",
        "updated_at": "2026-10-20T00:00:00Z",
    }


@pytest.mark.parametrize("who", ["finance", "engineer", "engineer_alpha", "owner"])
def test_every_role_but_admin_gets_redacted_channels(api: Api, who: str) -> None:
    response = api.client.get("/v1/budgets/5", headers=api.headers(who))
    assert response.status_code == 200
    assert response.json()["channels"] == ["email:alpha@example.com", REDACTED_SLACK]
    assert "alphasecret" not in api.client.get("/v1/budgets", headers=api.headers(who)).text


def test_unscoped_readers_see_the_budget_of_no_team(api: Api) -> None:
    for who in ("finance", "engineer"):
        assert 3 in _ids(api.client.get("/v1/budgets", headers=api.headers(who)).json())


def test_team_filter_outside_the_scope_is_403(api: Api) -> None:
    response = api.client.get("/v1/budgets", params={"team": "bravo"}, headers=api.headers("owner"))
    assert response.status_code == 403
    assert response.json()["code"] == "out_of_scope"
    assert "bravo" not in response.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_teams_budget_is_the_same_404_as_a_missing_one(api: Api, method: str) -> None:
    body = {"team": "alpha", "amount_usd": "5"} if method == "PUT" else None
    answers = {}
    for budget_id in (1, 3, 6, 999):
        response = api.client.request(method, f"/v1/budgets/{budget_id}", json=body, headers=api.headers("owner"))
        assert response.status_code == 404
        answers[budget_id] = response.json()
    assert answers[999] == {
        "detail": "No budget 999; GET /v1/budgets lists the budgets this key can see.",
        "code": "not_found",
        "budget_id": 999,
    }
    for budget_id in (1, 3, 6):
        assert answers[budget_id] == {
            "detail": f"No budget {budget_id}; GET /v1/budgets lists the budgets this key can see.",
            "code": "not_found",
            "budget_id": budget_id,
        }


@pytest.mark.parametrize("team", ["bravo", "no-such-team", None])
def test_owner_cannot_create_a_budget_of_another_team_or_none(api: Api, team: str | None) -> None:
    body = {"team": team, "tag": "project=x", "amount_usd": "10"}
    response = api.client.post("/v1/budgets", json=body, headers=api.headers("owner"))
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This key manages only the budgets of its teams (alpha); the budget names another team or none. "
        "A budget of another team, or a tag budget across every team, needs a finance or admin key.",
        "code": "out_of_scope",
    }


def test_engineer_cannot_manage_budgets(api: Api) -> None:
    response = api.client.post(
        "/v1/budgets", json={"team": "alpha", "amount_usd": "5"}, headers=api.headers("engineer")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert api.client.delete("/v1/budgets/2", headers=api.headers("engineer_alpha")).status_code == 403


def test_owner_creates_replaces_and_deletes_its_budget(api: Api) -> None:
    create = {
        "team": "alpha",
        "feature": "search",
        "amount_usd": "250.50",
        "thresholds": [100, 80],
        "channels": ["slack:https://hooks.slack.test/services/T1/B1/searchsecret"],
    }
    created = api.client.post("/v1/budgets", json=create, headers=api.headers("owner"))
    assert created.status_code == 201, created.text
    budget = created.json()
    budget_id = budget["budget_id"]
    assert (budget["scope"], budget["amount_usd"], budget["thresholds"]) == (
        "team=alpha/feature=search",
        "250.500000",
        [80, 100],
    )
    assert budget["channels"] == [REDACTED_SLACK]

    # PUT back what GET showed, with a new amount: the redacted channel keeps the stored URL
    shown = api.client.get(f"/v1/budgets/{budget_id}", headers=api.headers("owner")).json()
    replace = {k: shown[k] for k in ("team", "feature", "tag", "period_kind", "thresholds", "channels")}
    replaced = api.client.put(
        f"/v1/budgets/{budget_id}", json=replace | {"amount_usd": "300"}, headers=api.headers("owner")
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["amount_usd"] == "300.000000"
    as_admin = api.client.get(f"/v1/budgets/{budget_id}", headers=api.headers("admin")).json()
    assert as_admin["channels"] == ["slack:https://hooks.slack.test/services/T1/B1/searchsecret"]

    # channels omitted on PUT: kept; a new channel list replaces them
    api.client.put(
        f"/v1/budgets/{budget_id}",
        json={"team": "alpha", "feature": "search", "amount_usd": "300"},
        headers=api.headers("owner"),
    )
    assert (
        api.client.get(f"/v1/budgets/{budget_id}", headers=api.headers("admin")).json()["channels"]
        == as_admin["channels"]
    )
    api.client.put(
        f"/v1/budgets/{budget_id}",
        json={"team": "alpha", "feature": "search", "amount_usd": "300", "channels": []},
        headers=api.headers("owner"),
    )
    assert api.client.get(f"/v1/budgets/{budget_id}", headers=api.headers("admin")).json()["channels"] == []

    deleted = api.client.delete(f"/v1/budgets/{budget_id}", headers=api.headers("owner"))
    assert deleted.status_code == 200
    assert deleted.json()["active"] is False
    assert api.client.delete(f"/v1/budgets/{budget_id}", headers=api.headers("owner")).json()["active"] is False
    assert budget_id not in _ids(api.client.get("/v1/budgets", headers=api.headers("owner")).json())
    listed = api.client.get("/v1/budgets", params={"include_deleted": True}, headers=api.headers("owner")).json()
    assert budget_id in _ids(listed)
    again = api.client.put(
        f"/v1/budgets/{budget_id}", json={"team": "alpha", "amount_usd": "1"}, headers=api.headers("owner")
    )
    assert again.status_code == 404
    assert again.json()["detail"] == f"Budget {budget_id} was deleted; create a new one instead."


def test_owner_cannot_move_its_budget_to_another_team(api: Api) -> None:
    response = api.client.put("/v1/budgets/4", json={"team": "bravo", "amount_usd": "5"}, headers=api.headers("owner"))
    assert response.status_code == 403
    assert response.json()["code"] == "out_of_scope"
    assert api.client.get("/v1/budgets/4", headers=api.headers("admin")).json()["team"] == "alpha"


def test_money_is_exact(api: Api) -> None:
    body = {"team": "alpha", "feature": "exact", "amount_usd": "12345678901234.123456"}
    created = api.client.post("/v1/budgets", json=body, headers=api.headers("finance")).json()
    assert created["amount_usd"] == "12345678901234.123456"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"amount_usd": "0"},
            f"Amount '0' is not a positive number of dollars below {10**15:,}; expected e.g. 12000 or 799.50.",
        ),
        (
            {"amount_usd": "-5"},
            f"Amount '-5' is not a positive number of dollars below {10**15:,}; expected e.g. 12000 or 799.50.",
        ),
        (
            {"amount_usd": "1.0000001"},
            "Amount '1.0000001' has more than 6 decimals; round it to the cent, e.g. 799.50.",
        ),
        ({"thresholds": [0]}, "Threshold '0' is not a whole percent from 1 to 1000; expected e.g. 50,80,100."),
        ({"thresholds": [1001]}, "Threshold '1001' is not a whole percent from 1 to 1000; expected e.g. 50,80,100."),
        ({"thresholds": []}, "No thresholds given; expected percents such as 50,80,100."),
        (
            {"channels": ["pager:123"]},
            "Channel 'pager:123' is not one of webhook:..., slack:..., email:...; e.g. slack:https://hooks.slack.com/services/...",
        ),
        (
            {"period_kind": "custom"},
            "A custom period needs a start and an end (UTC days, end exclusive: --start and --end, or period_start "
            "and period_end in the API).",
        ),
        (
            {"period_kind": "custom", "period_start": "2026-11-01", "period_end": "9999-12-31"},
            "Custom period 2026-11-01 to 9999-12-31 is outside the days budgets cover: from 2000-01-01 to 2200-01-01.",
        ),
        ({"feature": "f", "tag": "a=b"}, "A budget is per feature or per tag, not both; drop the feature or the tag."),
    ],
)
def test_bad_budget_is_400_with_one_sentence(api: Api, body: dict[str, Any], detail: str) -> None:
    full = {"team": "alpha", "feature": "bad", "amount_usd": "10"} | body
    response = api.client.post("/v1/budgets", json=full, headers=api.headers("owner"))
    assert response.status_code == 400
    assert response.json() == {"detail": detail, "code": "invalid_input"}


def test_unknown_team_is_400_for_finance_and_allowed_as_a_new_team(api: Api) -> None:
    body = {"team": "gamma", "amount_usd": "10"}
    response = api.client.post("/v1/budgets", json=body, headers=api.headers("finance"))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Team 'gamma' has no spend yet (known teams: alpha, bravo")
    created = api.client.post("/v1/budgets", json=body | {"new_team": True}, headers=api.headers("finance"))
    assert created.status_code == 201
    assert created.json()["team"] == "gamma"


def test_a_scoped_keys_own_team_needs_no_spend(api: Api) -> None:
    key = api.client.post("/v1/keys", json={"role": "owner", "teams": ["delta"]}, headers=api.headers("admin")).json()
    response = api.client.post(
        "/v1/budgets", json={"team": "delta", "amount_usd": "10"}, headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert response.status_code == 201, response.text


def test_a_second_budget_of_the_same_scope_is_400_naming_the_first(api: Api) -> None:
    response = api.client.post("/v1/budgets", json={"team": "alpha", "amount_usd": "10"}, headers=api.headers("owner"))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Budget 2 already covers this scope and period; update it instead.",
        "code": "invalid_input",
        "budget_id": 2,
    }


def test_request_shape_errors_are_422_without_echoing_the_body(api: Api) -> None:
    secret = "https://hooks.slack.test/services/T9/B9/shapesecret"
    body = {"team": "alpha", "amount_usd": "10", "channels": [f"slack:{secret}"], "channel": secret}
    response = api.client.post("/v1/budgets", json=body, headers=api.headers("owner"))
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"type": "extra_forbidden", "loc": ["body", "channel"], "msg": "Extra inputs are not permitted"}],
        "code": "invalid_request",
    }
    missing = api.client.post("/v1/budgets", json={"channels": [f"slack:{secret}"]}, headers=api.headers("owner"))
    assert missing.status_code == 422
    assert "shapesecret" not in missing.text
    assert api.client.get("/v1/budgets/abc", headers=api.headers("owner")).status_code == 422
    assert api.client.get(f"/v1/budgets/{2**63}", headers=api.headers("admin")).status_code == 422


def test_sql_sees_budget_edits_at_once(api: Api) -> None:
    def count() -> int:
        sql = {"sql": "SELECT count(*) FROM budgets WHERE feature = 'sqlcheck'"}
        answer = api.client.post("/v1/sql", json=sql, headers=api.headers("engineer")).json()
        assert "rows" in answer, answer
        rows: list[list[int]] = answer["rows"]
        return rows[0][0]

    assert count() == 0
    body = {"team": "alpha", "feature": "sqlcheck", "amount_usd": "10"}
    assert api.client.post("/v1/budgets", json=body, headers=api.headers("finance")).status_code == 201
    assert count() == 1


def test_alpha_never_sees_bravo_through_the_budget_routes(api: Api) -> None:
    seen = []
    for who in ("owner", "engineer_alpha"):
        for path in ("/v1/budgets", "/v1/budgets/1", "/v1/budgets/3", "/v1/budgets/6"):
            seen.append(api.client.get(path, params={"include_deleted": True}, headers=api.headers(who)).text)
        seen.append(api.client.delete("/v1/budgets/1", headers=api.headers(who)).text)
    text = " ".join(seen)
    assert [c for c in CANARIES if c in text] == []
    assert "zzqhook" in api.client.get("/v1/budgets/1", headers=api.headers("admin")).text


def test_sql_shows_channels_redacted_even_to_unscoped_engineers(api: Api) -> None:
    sql = {"sql": "SELECT channels FROM budgets WHERE team = 'bravo' ORDER BY budget_id"}
    answer = api.client.post("/v1/sql", json=sql, headers=api.headers("engineer")).json()

    assert answer["rows"] and all(c == "webhook:https://zzqhook.test/..." for (row,) in answer["rows"] for c in row)


def test_one_redacted_channel_sent_back_keeps_one_of_two_on_the_same_host_5(api: Api) -> None:
    hooks = ["webhook:https://h.example.com/a?token=1", "webhook:https://h.example.com/b?token=2"]
    body = {"team": "alpha", "feature": "two-hooks", "amount_usd": "5000", "thresholds": [100]}
    created = api.client.post(
        "/v1/budgets", json=body | {"channels": [*hooks, ALPHA_SLACK]}, headers=api.headers("admin")
    ).json()
    url = f"/v1/budgets/{created['budget_id']}"
    shown = api.client.get(url, headers=api.headers("owner")).json()["channels"]
    assert shown == ["webhook:https://h.example.com/...", "webhook:https://h.example.com/...", REDACTED_SLACK]

    # the owner drops one of the two webhooks (and the Slack channel): one redacted entry keeps one, the first
    kept = api.client.put(url, json=body | {"channels": shown[:1]}, headers=api.headers("owner"))
    assert kept.status_code == 200, kept.text
    assert kept.json()["channels"] == ["webhook:https://h.example.com/..."]
    assert api.client.get(url, headers=api.headers("admin")).json()["channels"] == hooks[:1]

    # sent back twice, it stands for more channels than the budget holds: refused, never stored as a URL
    twice = api.client.put(url, json=body | {"channels": shown[:2]}, headers=api.headers("owner"))
    assert twice.status_code == 400
    assert twice.json()["detail"] == (
        "Channel 'webhook:https://h.example.com/...' is sent more times than the budget holds channels it can "
        "stand for (1): each redacted channel keeps one stored channel; send a new channel's full URL to add it."
    )
    assert api.client.get(url, headers=api.headers("admin")).json()["channels"] == hooks[:1]


def test_a_channel_sent_in_full_leaves_the_redacted_entry_for_the_other_5(api: Api) -> None:
    hooks = ["webhook:https://h.example.com/a?token=1", "webhook:https://h.example.com/b?token=2"]
    body = {"team": "alpha", "feature": "full-and-redacted", "amount_usd": "10", "thresholds": [100]}
    url = "/v1/budgets/" + str(
        api.client.post("/v1/budgets", json=body | {"channels": hooks}, headers=api.headers("admin")).json()[
            "budget_id"
        ]
    )

    sent = [hooks[1], "webhook:https://h.example.com/..."]
    assert api.client.put(url, json=body | {"channels": sent}, headers=api.headers("owner")).status_code == 200
    assert api.client.get(url, headers=api.headers("admin")).json()["channels"] == [hooks[1], hooks[0]]
