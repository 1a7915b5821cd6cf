"""A key of team alpha never sees a byte of team bravo: every route of the OpenAPI document is called with
bravo's names in path, query and body, and SQL tries every door; no canary of bravo may come back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import CANARIES, Api

BRAVO_NAMES = ["bravo", "zzqfeature", "zzquser", "zzqproject"]
SQL_ATTEMPTS = [
    "SELECT * FROM spend",
    "SELECT * FROM usage",
    "SELECT * FROM spend_daily",
    "SELECT * FROM findings",
    "SELECT * FROM unpriced_usage",
    "SELECT * FROM budgets",
    "SELECT * FROM alerts",
    "SELECT * FROM spend WHERE team = 'bravo' OR feature = 'zzqfeature'",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM information_schema.columns",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM rejected_usage",
    "SELECT * FROM ingest_batches",
    "SELECT * FROM reconciliation",
    "SELECT * FROM snapshot_0.main.spend",
    "SELECT sum(cost_usd), count(DISTINCT team) FROM spend",
]


def _blob_attempts(api: Api) -> list[str]:
    snapshots = api.settings.sql_snapshot_dir
    return [
        f"SELECT * FROM read_blob('{api.settings.db}')",
        f"SELECT * FROM read_blob('{snapshots}/*/*.duckdb')",
        f"SELECT * FROM glob('{snapshots}/**')",
        f"SELECT * FROM read_text('{snapshots}/*/spend.*.duckdb')",
    ]


def _names_slot(schema: dict[str, Any]) -> bool:
    """A free string (or list of them): where a team, feature or user name goes. Enums, dates and numbers
    are not (sending a name there is a 422 that echoes the caller's own input)."""
    if schema.get("type") == "array":
        return _names_slot(schema.get("items", {}))
    return schema.get("type") == "string" and "format" not in schema and "enum" not in schema


def _value(schema: dict[str, Any], name: str) -> Any:
    """Bravo's names wherever a free string or a list of them goes; nothing elsewhere."""
    kind = schema.get("type")
    options = schema.get("anyOf") or []
    if kind is None and options:
        kinds = {o.get("type") for o in options}
        if "array" in kinds:
            return BRAVO_NAMES if any(_names_slot(o) for o in options) else None
        if "string" in kinds and not any("format" in o or "enum" in o for o in options):
            return BRAVO_NAMES[0] if name != "group_by" else "team,feature"
        return None
    if kind == "array":
        return BRAVO_NAMES if _names_slot(schema) else None
    if kind == "string" and "format" not in schema and "enum" not in schema:
        return "team,user" if name == "group_by" else BRAVO_NAMES[1]
    return None


def _requests(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    spec = api.client.get("/openapi.json").json()
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            url = path
            query: dict[str, Any] = {"start": "2026-10-01", "end": "2026-11-01"}
            for param in operation.get("parameters", []):
                value = _value(param.get("schema", {}), param["name"])
                if param["in"] == "path":
                    url = url.replace("{" + param["name"] + "}", str(value or "bravo"))
                elif param["in"] == "query" and value is not None:
                    query[param["name"]] = value
            kwargs: dict[str, Any] = {"params": query}
            if "requestBody" in operation:
                if path == "/v1/sql":
                    for sql in SQL_ATTEMPTS + _blob_attempts(api):
                        calls.append((method, url, {"params": query, "json": {"sql": sql}}))
                    continue
                if path.startswith("/v1/ingest"):
                    kwargs["content"] = b'{"request_id": "x", "team": "bravo", "feature": "zzqfeature"}\n'
                    kwargs["headers"] = {"content-type": "application/x-ndjson"}
                else:
                    kwargs["json"] = {"role": "owner", "teams": BRAVO_NAMES, "name": "zzqfeature", "team": "bravo"}
            calls.append((method, url, kwargs))
    return calls


@pytest.mark.parametrize("who", ["owner", "engineer_alpha"])
def test_no_route_shows_another_teams_canary(api: Api, who: str) -> None:
    calls = _requests(api)
    paths = {url for _, url, _ in calls}
    assert {"/v1/spend", "/v1/findings", "/v1/sql"} <= paths
    # an unscoped query first, so the full snapshots exist on disk next to the scoped ones
    api.client.post("/v1/sql", json={"sql": "SELECT count(*) FROM spend, usage"}, headers=api.headers("admin"))
    leaks = []
    for method, url, kwargs in calls:
        headers = {**api.headers(who), **kwargs.pop("headers", {})}
        response = api.client.request(method.upper(), url, headers=headers, **kwargs)
        assert response.status_code < 500, (url, response.text)
        text = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        found = [c for c in CANARIES if c in text]
        if found:
            leaks.append((method, url, kwargs.get("json"), found))
    assert leaks == []


def test_scoped_sql_sees_its_own_rows(api: Api) -> None:
    body = api.client.post(
        "/v1/sql", json={"sql": "SELECT team, count(*) FROM spend GROUP BY 1"}, headers=api.headers("engineer_alpha")
    ).json()
    assert body["rows"] == [["alpha", 60]]
    tables = api.client.post(
        "/v1/sql",
        json={"sql": "SELECT table_name FROM information_schema.tables ORDER BY 1"},
        headers=api.headers("engineer_alpha"),
    ).json()["rows"]
    assert {"spend", "usage", "findings"} <= {t[0] for t in tables}
    assert not {"rejected_usage", "ingest_batches", "reconciliation", "api_keys"} & {t[0] for t in tables}


def test_the_canaries_are_really_there_for_bravo(api: Api) -> None:
    """The test above would pass on an empty database: check bravo's own key sees its canaries."""
    spend = api.client.get(
        "/v1/spend",
        params={"start": "2026-10-01", "end": "2026-11-01", "group_by": "feature,user"},
        headers=api.headers("owner_bravo"),
    ).text
    findings = api.client.get(
        "/v1/findings", params={"start": "2026-10-01", "end": "2026-11-01"}, headers=api.headers("owner_bravo")
    ).text
    raw = api.client.post("/v1/sql", json={"sql": "SELECT * FROM rejected_usage"}, headers=api.headers("engineer")).text
    usage = api.client.post(
        "/v1/sql",
        json={
            "sql": "SELECT u.request_id, u.trace_id, u.reported_cost_usd, u.project, s.cost_usd "
            "FROM usage u JOIN spend s USING (request_id)"
        },
        headers=api.headers("engineer"),
    ).text
    seen = spend + findings + raw + usage
    assert [c for c in CANARIES if c not in seen and c not in ("zzqhook", "zzqglobal")] == []
