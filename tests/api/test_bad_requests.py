"""Request bodies a client gets wrong: clear 4xx in the one error shape (or FastAPI's 422), never a 5xx."""

from __future__ import annotations

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
