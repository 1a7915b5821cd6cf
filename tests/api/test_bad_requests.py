"""Request bodies a client gets wrong: clear 4xx in the one error shape (or FastAPI's 422), never a 5xx."""

from __future__ import annotations

import duckdb
import pytest

from tests.api.conftest import Api


def test_malformed_json_is_422_naming_the_problem(api: Api) -> None:
    headers = {**api.headers("engineer"), "content-type": "application/json"}
    response = api.client.post("/v1/sql", content=b'{"sql": "SELECT 1"', headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_a_body_that_is_not_json_is_415(api: Api) -> None:
    response = api.client.post(
        "/v1/sql", content=b"SELECT 1", headers={**api.headers("engineer"), "content-type": "text/plain"}
    )

    assert response.status_code == 415
    assert set(response.json()) >= {"detail", "code"}


def test_an_oversized_body_is_413_with_the_setting_named(api: Api) -> None:
    sql = "SELECT 1 -- " + "x" * (api.settings.api_max_body_bytes + 1)

    response = api.client.post("/v1/sql", json={"sql": sql}, headers=api.headers("engineer"))

    assert response.status_code == 413
    body = response.json()
    assert set(body) >= {"detail", "code"} and "FINOPS_API_MAX_BODY_BYTES" in body["detail"]


def test_unknown_body_fields_and_wrong_types_are_422(api: Api) -> None:
    for body in ({"sql": 1}, {"query": "SELECT 1"}, ["SELECT 1"]):
        response = api.client.post("/v1/sql", json=body, headers=api.headers("engineer"))
        assert response.status_code == 422, (body, response.text)


def test_text_utf8_cannot_carry_is_422_not_500(api: Api) -> None:
    # a JSON string may escape a lone surrogate; FastAPI's 422 echoes the input, which UTF-8 cannot encode
    headers = {**api.headers("admin"), "content-type": "application/json"}
    for path, body in (
        ("/v1/sql", b'{"sql": "select \'\\ud800\'", "max_rows": "x"}'),
        ("/v1/keys", b'{"role": "engineer", "name": "\\ud800", "teams": 5}'),
    ):
        response = api.client.post(path, content=body, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "invalid_request"


def test_unknown_paths_and_methods_keep_the_error_shape(api: Api) -> None:
    missing = api.client.get("/v1/nothing-here", headers=api.headers("admin"))
    wrong_method = api.client.delete("/v1/spend", headers=api.headers("admin"))

    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    assert "allow" in {k.lower() for k in wrong_method.headers}


def test_a_pushed_body_is_named_as_the_push_not_as_the_servers_temporary_file(api: Api) -> None:
    headers = {**api.headers("admin"), "content-type": "application/vnd.apache.parquet"}

    response = api.client.post("/v1/ingest/gateway", content=b"not parquet at all", headers=headers)

    assert response.status_code == 400, response.text
    assert "finops-push" not in response.text and "api:" in response.json()["detail"]


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (
            duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate data of size 16.0 MiB"),
            "out_of_memory",
            "FINOPS_MEMORY_LIMIT",
        ),
        (
            duckdb.TransactionException(
                'TransactionContext Error: Failed to commit: Could not write file "s.wal": No space left on device'
            ),
            "disk_full",
            "disk is full",
        ),
        (OSError(28, "No space left on device"), "disk_full", "disk is full"),
        (
            duckdb.IOException('IO Error: Could not write file "s.duckdb": Permission denied'),
            "storage_error",
            "could not read or write",
        ),
    ],
)
def test_the_machines_limits_are_503_with_retry_after_not_a_500(
    api: Api, monkeypatch: pytest.MonkeyPatch, error: Exception, code: str, says: str
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("finops.api.routes.spend.spend_page", fail)
    response = api.client.get("/v1/spend?group_by=team", headers=api.headers("admin"))

    assert (response.status_code, response.json()["code"]) == (503, code)
    assert says in response.json()["detail"] and response.headers["retry-after"] == "30"
    assert "s.wal" not in response.text  # the server's paths stay in its log


def test_a_single_valued_parameter_given_twice_is_422_not_the_last_one_silently(api: Api) -> None:
    repeated = api.client.get("/v1/forecasts?team=search&team=support", headers=api.headers("admin"))
    listed = api.client.get("/v1/spend?group_by=team&team=search&team=support", headers=api.headers("admin"))

    assert (repeated.status_code, repeated.json()["code"]) == (422, "invalid_request")
    [error] = repeated.json()["detail"]
    assert (error["loc"], error["input"]) == (["query", "team"], ["search", "support"])
    assert listed.status_code == 200


def test_a_non_finite_json_number_is_422_not_500(api: Api) -> None:
    headers = {**api.headers("admin"), "content-type": "application/json"}
    for path, body in (
        ("/v1/sql", b'{"sql": "SELECT 1", "max_rows": 1e400}'),
        ("/v1/sql", b'{"sql": "SELECT 1", "max_rows": NaN}'),
        ("/v1/keys", b'{"role": NaN}'),
    ):
        response = api.client.post(path, content=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (422, "invalid_request"), (path, response.text)


def test_push_rejects_name_the_routes_parameters_and_an_fx_rate_can_be_pushed(api: Api) -> None:
    headers = {**api.headers("admin"), "content-type": "application/x-ndjson"}
    naive = (
        '{"request_id": "push-n1", "ts": "2026-11-14 10:00:00", "model": "gpt-4o", "input_tokens": 1, '
        '"output_tokens": 1}'
    )
    euro = (
        '{"request_id": "push-e1", "ts": "2026-11-14T10:00:00Z", "model": "gpt-4o", "input_tokens": 1, '
        '"output_tokens": 1, "cost_usd": "1.5", "currency": "EUR"}'
    )

    refused = api.client.post("/v1/ingest/gateway?name=fx", content=f"{naive}\n{euro}\n", headers=headers).json()
    converted = api.client.post("/v1/ingest/gateway?name=fx&fx_rate=EUR=1.08", content=euro, headers=headers)
    bad_rate = api.client.post("/v1/ingest/gateway?fx_rate=EUR", content=euro, headers=headers)

    messages = [s["message"] for s in refused["samples"]]
    assert any("with ?timezone=" in m for m in messages) and any("?fx_rate=EUR=" in m for m in messages), messages
    assert not any("--" in m for m in messages)
    stored = api.client.post(
        "/v1/sql",
        json={"sql": "SELECT message FROM rejected_usage WHERE source_file = 'api:fx'"},
        headers=api.headers("admin"),
    ).json()["rows"]
    assert stored and not any("--" in row[0] for row in stored)
    assert (converted.status_code, converted.json()["accepted"]) == (200, 1)
    assert bad_rate.status_code == 400 and "fx_rate 'EUR' is not CODE=RATE" in bad_rate.json()["detail"]


@pytest.mark.parametrize(
    "query",
    ["/v1/spend?group_by=team&project=ads-app", "/v1/spend?teams=ads", "/v1/findings?user=u1", "/v1/alerts?x=1"],
)
def test_a_query_parameter_the_route_does_not_read_is_422_not_ignored(api: Api, query: str) -> None:
    # hunt E 2: ignored, project= answered the company's total as if it were one project's
    response = api.client.get(query, headers=api.headers("admin"))

    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")
    [error] = response.json()["detail"]
    assert error["type"] == "unknown_parameter" and "its query parameters are:" in error["msg"]


def test_push_ingest_refuses_an_unknown_query_parameter_before_reading_the_body(api: Api) -> None:
    headers = {**api.headers("admin"), "content-type": "application/x-ndjson"}

    response = api.client.post("/v1/ingest/gateway?timezon=UTC", content=b"{}\n", headers=headers)

    assert (response.status_code, response.json()["detail"][0]["loc"]) == (422, ["query", "timezon"])


@pytest.mark.parametrize(("path", "role"), [("/healthz", None), ("/v1/spend?group_by=team", "admin")])
def test_head_is_the_get_without_its_body(api: Api, path: str, role: str | None) -> None:
    headers = api.headers(role) if role else {}

    head, get = api.client.head(path, headers=headers), api.client.get(path, headers=headers)

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == get.headers["content-type"]
    assert api.client.head("/v1/spend").status_code == 401  # the same auth as GET
