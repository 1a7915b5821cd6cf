"""Keys: created random and shown once, stored hashed, listed without secrets, revoked at once."""

from __future__ import annotations

import hashlib

import pytest

from finops.errors import InputError
from finops.store.db import Database
from finops.store.keys import create_key, find_key, list_keys, parse_token, revoke_key
from tests.api.conftest import Api
from tests.helpers import rows


def test_key_is_stored_as_its_hash_only(api: Api) -> None:
    response = api.client.post("/v1/keys", json={"role": "engineer", "name": "ci"}, headers=api.headers("admin"))
    assert response.status_code == 201
    body = response.json()
    token = body["key"]
    assert parse_token(token) == body["key_id"]
    listed = api.client.get("/v1/keys", headers=api.headers("admin")).json()
    mine = [k for k in listed if k["key_id"] == body["key_id"]]
    assert mine == [{k: v for k, v in body.items() if k != "key"}]
    assert token not in api.client.get("/v1/keys", headers=api.headers("admin")).text
    assert (
        hashlib.sha256(token.encode()).hexdigest() not in api.client.get("/v1/keys", headers=api.headers("admin")).text
    )


def test_revoked_key_stops_at_once(api: Api) -> None:
    token = api.client.post("/v1/keys", json={"role": "finance"}, headers=api.headers("admin")).json()["key"]
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/spend", headers=headers).status_code == 200
    key_id = parse_token(token)
    revoked = api.client.delete(f"/v1/keys/{key_id}", headers=api.headers("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.client.get("/v1/spend", headers=headers).status_code == 401


def test_revoking_an_unknown_key_is_404(api: Api) -> None:
    response = api.client.delete("/v1/keys/000000000000", headers=api.headers("admin"))
    assert response.status_code == 404
    assert response.json() == {
        "detail": "No API key with id '000000000000'. List the keys with `finops keys list`.",
        "code": "not_found",
        "key_id": "000000000000",
    }


def test_owner_key_needs_a_team(api: Api) -> None:
    response = api.client.post("/v1/keys", json={"role": "owner"}, headers=api.headers("admin"))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "An owner key needs at least one team (--team TEAM, repeatable).",
        "code": "invalid_input",
    }


def test_store_round_trip(db: Database) -> None:
    new = create_key(db, "owner", ["b", "a", "a"], "lead")
    assert new.key.teams == ("a", "b")
    stored = rows(db, "SELECT * FROM api_keys")
    assert new.token not in str(stored)
    assert stored[0]["secret_sha256"] == hashlib.sha256(new.token.encode()).hexdigest()
    assert find_key(db, new.key.key_id) == new.key
    assert revoke_key(db, new.key.key_id).revoked_at is not None
    assert list_keys(db, include_revoked=False) == []
    with pytest.raises(InputError, match="sees every team"):
        create_key(db, "finance", ["a"])
