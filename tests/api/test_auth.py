"""Every route declares who may call it; roles get what the table in `finops.api.auth` says; 401 bodies."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from finops.api import create_app
from finops.api.auth import ROLE_PERMISSIONS, Permission
from finops.settings import load_settings
from finops.store.keys import Role
from tests.api.conftest import Api

DOCS_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _access(dependant: Dependant) -> set[Any]:
    found: set[Any] = set()
    for dep in dependant.dependencies:
        marker = getattr(dep.call, "finops_access", None)
        if marker is not None:
            found.add(marker)
        found |= _access(dep)
    return found


def test_every_route_declares_its_access() -> None:
    app = create_app(load_settings(db="unused.duckdb"))
    undeclared = []
    seen = 0
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            seen += 1
            if len(_access(route.dependant)) != 1:
                undeclared.append(f"{sorted(route.methods)} {route.path}")
        elif getattr(route, "path", None) not in DOCS_ROUTES:
            undeclared.append(f"{type(route).__name__} {getattr(route, 'path', '?')}")
    assert seen >= 9
    assert undeclared == []


def test_role_permissions_match_the_design() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)
    assert ROLE_PERMISSIONS[Role.FINANCE] == {Permission.READ, Permission.MANAGE_BUDGETS}
    assert ROLE_PERMISSIONS[Role.OWNER] == {Permission.READ, Permission.MANAGE_BUDGETS}
    assert ROLE_PERMISSIONS[Role.ENGINEER] == {Permission.READ, Permission.SQL}


CALLS = {
    "spend": ("get", "/v1/spend", {}),
    "findings": ("get", "/v1/findings", {}),
    "sql": ("post", "/v1/sql", {"json": {"sql": "SELECT 1 AS one"}}),
    "keys": ("get", "/v1/keys", {}),
    "ingest": ("post", "/v1/ingest/gateway", {"content": b"", "headers": {"content-type": "application/x-ndjson"}}),
}
ALLOWED = {
    "admin": {"spend", "findings", "sql", "keys", "ingest"},
    "finance": {"spend", "findings"},
    "owner": {"spend", "findings"},
    "engineer": {"spend", "findings", "sql"},
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_role_may_call_route_or_gets_403(api: Api, role: str, call: str) -> None:
    method, path, kwargs = CALLS[call]
    headers = {**api.headers(role), **kwargs.pop("headers", {})} if "headers" in kwargs else api.headers(role)
    kwargs = {k: v for k, v in CALLS[call][2].items() if k != "headers"}
    response = getattr(api.client, method)(path, headers=headers, **kwargs)
    if call in ALLOWED[role]:
        assert response.status_code < 400, response.text
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


def test_missing_key_is_401_with_the_whole_body(api: Api) -> None:
    response = api.client.get("/v1/spend")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "detail": "This route needs an API key: send `Authorization: Bearer <key>`. An admin creates keys with "
        "`finops keys create --role ROLE`.",
        "code": "unauthenticated",
    }


@pytest.mark.parametrize(
    "token",
    ["nonsense", "fo_000000000000_" + "a" * 43, "Basic abc"],
)
def test_bad_key_is_401_with_one_message(api: Api, token: str) -> None:
    response = api.client.get("/v1/spend", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {
        "detail": "The API key is not valid: it is unknown, revoked, or mistyped.",
        "code": "unauthenticated",
    }


def test_right_id_wrong_secret_is_401(api: Api) -> None:
    token = api.keys["admin"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert api.client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_forbidden_body_names_the_roles_that_may(api: Api) -> None:
    response = api.client.post("/v1/sql", json={"sql": "SELECT 1"}, headers=api.headers("owner"))
    assert response.json() == {
        "detail": "An owner key cannot run SQL; that needs a key with role admin, engineer.",
        "code": "forbidden",
        "required": "sql",
    }


def test_healthz_needs_no_key(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_me_tells_role_and_teams(api: Api) -> None:
    body = api.client.get("/v1/me", headers=api.headers("owner")).json()
    assert (body["role"], body["teams"]) == ("owner", ["alpha"])
