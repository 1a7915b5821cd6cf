"""GET /v1/findings: overlapping windows, costliest first, evidence as JSON; scoped keys see their teams only."""

from __future__ import annotations

from finops.api.models import FindingRow
from tests.api.conftest import Api

OCTOBER = {"start": "2026-10-01", "end": "2026-11-01"}


def test_unscoped_key_sees_every_finding_costliest_first(api: Api) -> None:
    body = api.client.get("/v1/findings", params=OCTOBER, headers=api.headers("finance")).json()
    assert [r["finding_id"] for r in body["rows"]] == ["f-bravo", "f-global", "f-alpha"]
    alpha = body["rows"][2]
    assert alpha["excess_cost_usd"] == "12.500000000000"
    assert alpha["evidence"] == {"request_ids": ["team=alpha/feature=chat-1"]}
    assert alpha["window_start"] == "2026-10-05T00:00:00Z"


def test_owner_sees_its_team_and_not_company_wide_findings(api: Api) -> None:
    body = api.client.get("/v1/findings", params=OCTOBER, headers=api.headers("owner")).json()
    assert [r["finding_id"] for r in body["rows"]] == ["f-alpha"]


def test_window_outside_the_range_is_left_out(api: Api) -> None:
    params = {"start": "2026-10-06", "end": "2026-10-07"}
    assert api.client.get("/v1/findings", params=params, headers=api.headers("admin")).json()["rows"] == []


def test_kind_filter(api: Api) -> None:
    params = {**OCTOBER, "kind": "retry_storm"}
    assert api.client.get("/v1/findings", params=params, headers=api.headers("admin")).json()["rows"] == []


def test_a_kind_or_severity_no_finding_can_have_is_400(api: Api) -> None:
    for params in ({"kind": "retry_storms"}, {"severity": "urgent"}):
        response = api.client.get("/v1/findings", params={**OCTOBER, **params}, headers=api.headers("admin"))
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "invalid_input" and body["parameter"] in params
        assert "is not one of" in body["detail"]


def test_a_finding_whose_excess_is_unknown_is_served_with_null() -> None:
    row = {
        "finding_id": "f-unpriced", "kind": "retry_chain", "detector": "retries", "team": "alpha", "feature": "chat",
        "provider": None, "model": "private-llm", "subject": "trace=t1", "window_start": "2026-10-05T00:00:00Z",
        "window_end": "2026-10-05T00:05:00Z", "trace_id": "t1", "request_id": None, "metric": "attempts",
        "observed": 6.0, "expected": 1.0, "excess_cost_usd": None, "score": 0.9, "severity": "high",
        "evidence": {"request_ids": ["a"]}, "details": {"note": "the wasted dollars are unknown"},
        "detected_at": "2026-10-05T00:10:00Z",
    }  # fmt: skip

    assert FindingRow.model_validate(row).model_dump(mode="json")["excess_cost_usd"] is None
