"""GET /v1/spend: groups from the rollup or the cost lines, exact decimal strings, scoped, paged; bad input 4xx."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api.conftest import Api

OCTOBER = {"start": "2026-10-01", "end": "2026-11-01"}


def test_spend_by_team_from_the_rollup(api: Api) -> None:
    body = api.client.get("/v1/spend", params={**OCTOBER, "group_by": "team"}, headers=api.headers("finance")).json()
    assert body["source"] == "spend_daily"
    result = {r["team"]: (r["cost_usd"], r["requests"]) for r in body["rows"]}
    expected = {"alpha": ("0.600000000000", 60), "bravo": (str(Decimal("313.370042") * 60) + "000000", 60)}
    assert result == expected
    assert body["totals"]["cost_usd"] == str(Decimal("0.6") + Decimal("313.370042") * 60) + "000000"
    assert set(body["rows"][0]) == {"team", *body["totals"]}


def test_owner_sees_only_its_team(api: Api) -> None:
    body = api.client.get(
        "/v1/spend", params={**OCTOBER, "group_by": "team,feature,month"}, headers=api.headers("owner")
    ).json()
    assert [(r["team"], r["feature"], r["month"], r["cost_usd"]) for r in body["rows"]] == [
        ("alpha", "chat", "2026-10-01", "0.600000000000")
    ]
    assert body["totals"]["requests"] == 60


def test_user_and_project_read_the_cost_lines(api: Api) -> None:
    body = api.client.get(
        "/v1/spend", params={**OCTOBER, "group_by": "project,user", "team": "alpha"}, headers=api.headers("admin")
    ).json()
    assert body["source"] == "spend"
    assert [(r["project"], r["user"], r["requests"]) for r in body["rows"]] == [
        ("alpha-app", f"alice{i}", 15) for i in range(4)
    ]


def test_pages_follow_next_offset(api: Api) -> None:
    params = {**OCTOBER, "group_by": "day", "team": "alpha", "limit": 10}
    first = api.client.get("/v1/spend", params=params, headers=api.headers("admin")).json()
    assert len(first["rows"]) == 10 and first["next_offset"] == 10
    last = api.client.get("/v1/spend", params={**params, "offset": 10}, headers=api.headers("admin")).json()
    assert [r["day"] for r in last["rows"]] == [f"2026-10-{d}" for d in range(11, 16)]
    assert last["next_offset"] is None


def test_empty_range_has_no_rows_and_zero_money(api: Api) -> None:
    # nothing spent is a known $0 (hunt E 6); NULL money means rows whose price is unknown
    body = api.client.get(
        "/v1/spend", params={"start": "2020-01-01", "end": "2020-02-01"}, headers=api.headers("admin")
    ).json()
    assert body["rows"] == []
    assert (body["totals"]["cost_usd"], body["totals"]["gpu_seconds"], body["totals"]["requests"]) == ("0", "0", 0)


@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        (
            {"start": "2026-11-01", "end": "2026-10-01"},
            400,
            {
                "detail": "start 2026-11-01 is not before end 2026-10-01; expected start < end (end is exclusive: "
                "start=2026-10-01&end=2026-11-01 is October).",
                "code": "invalid_input",
                "start": "2026-11-01",
                "end": "2026-10-01",
            },
        ),
        (
            {"group_by": "team,teem"},
            400,
            {
                "detail": "group_by item 2 is not a dimension. Valid values are: day, week, month, team, feature, "
                "project, provider, model, kind, user (comma-separated, e.g. group_by=team,feature).",
                "code": "invalid_input",
                "parameter": "group_by",
            },
        ),
        (
            {"limit": str(10**40)},
            400,
            {
                "detail": "limit is above the most rows one page returns (10000); page with offset, or raise "
                "FINOPS_API_MAX_ROWS.",
                "code": "invalid_input",
                "limit": 10000,
            },
        ),
        (
            {"team": "bravo"},
            403,
            {
                "detail": "This key reads only the teams it was created for (alpha); the team filter names another "
                "team. Ask an admin for a key with that team.",
                "code": "out_of_scope",
            },
        ),
    ],
)
def test_bad_spend_request_gets_a_clear_error(api: Api, params: dict[str, str], status: int, expected: object) -> None:
    response = api.client.get("/v1/spend", params=params, headers=api.headers("owner"))
    assert (response.status_code, response.json()) == (status, expected)


def test_out_of_scope_is_the_same_for_a_team_that_does_not_exist(api: Api) -> None:
    real = api.client.get("/v1/spend", params={"team": "bravo"}, headers=api.headers("owner"))
    made_up = api.client.get("/v1/spend", params={"team": "no-such-team"}, headers=api.headers("owner"))
    assert (real.status_code, real.json()) == (made_up.status_code, made_up.json())


@pytest.mark.parametrize("params", [{"start": "yesterday"}, {"limit": "0"}, {"kind": "cash"}, {"offset": "-1"}])
def test_request_shape_errors_keep_fastapis_422(api: Api, params: dict[str, str]) -> None:
    response = api.client.get("/v1/spend", params=params, headers=api.headers("admin"))
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_zero_dollars_are_written_in_plain_notation() -> None:
    from finops.api.models import SpendTotals

    zero = SpendTotals(cost_usd=Decimal("0E-12"), requests=1, input_tokens=0, cached_input_tokens=0,
                       cache_write_tokens=0, output_tokens=0, reasoning_tokens=0, unpriced_requests=0,
                       gpu_seconds=Decimal("0E-3"))  # fmt: skip

    assert zero.model_dump(mode="json")["cost_usd"] == "0.000000000000"
    assert zero.model_dump(mode="json")["gpu_seconds"] == "0.000"


def test_every_page_names_the_data_version_it_was_read_under(api: Api) -> None:
    # hunt E 4: a run between two offset pages repeated one group and lost another, and nothing showed it
    spend = api.client.get("/v1/spend?group_by=team&limit=1", headers=api.headers("admin")).json()
    findings = api.client.get("/v1/findings?start=2026-09-01&end=2026-12-01", headers=api.headers("admin")).json()

    assert spend["data_version"] == findings["data_version"] == 1  # the seeded database's one run


def test_a_filter_written_as_a_comma_list_that_matches_nothing_says_how_to_list(api: Api) -> None:
    # hunt E 2: team=ads,search answered an empty page, as if nothing had been spent
    response = api.client.get("/v1/spend?group_by=team&team=alpha,bravo", headers=api.headers("admin"))

    assert (response.status_code, response.json()["code"]) == (400, "invalid_input")
    assert response.json()["detail"] == (
        "No spend has team 'alpha,bravo'; team takes one value per parameter: team=alpha&team=bravo."
    )
