"""API keys: created random, shown once, stored as the SHA-256 of the key, looked up by their public id.

A key reads `fo_<key_id>_<secret>`: `key_id` (12 hex digits) finds the row, the whole string's SHA-256
is compared in constant time with the stored hash. The secret carries 256 random bits, so a plain
SHA-256 (no salt, no slow hash) is enough: there is nothing to guess from a hash of a random token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from finops.errors import InputError, NotFound
from finops.store.db import Database

__all__ = [
    "ApiKey",
    "NewKey",
    "Role",
    "create_key",
    "find_key",
    "list_keys",
    "parse_token",
    "revoke_key",
    "verify_token",
]

TOKEN_PREFIX = "fo_"
_TOKEN = re.compile(r"^fo_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
_TEAM = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


class Role(StrEnum):
    """What a key may do (the permissions of each role are in `finops.api.auth`)."""

    ADMIN = "admin"
    FINANCE = "finance"
    OWNER = "owner"
    ENGINEER = "engineer"


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    name: str | None
    role: Role
    teams: tuple[str, ...] | None  # None: every team
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just created: `token` is the only time the secret is seen."""

    key: ApiKey
    token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return match["key_id"] if match else None


def verify_token(key: ApiKey, token: str) -> bool:
    """True when `token` is this key's secret and the key is not revoked (constant-time compare)."""
    return hmac.compare_digest(key.secret_sha256, _hash(token)) and key.active


def check_scope(role: Role, teams: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The stored team scope for a role: owners need teams, admin and finance take none."""
    cleaned = tuple(sorted({t for t in teams or ()}))
    for team in cleaned:
        if not _TEAM.match(team):
            raise InputError("A team name must be 1 to 200 characters without control characters.")
    if role in (Role.ADMIN, Role.FINANCE) and cleaned:
        raise InputError(f"A {role} key sees every team; --team applies to owner and engineer keys only.")
    if role is Role.OWNER and not cleaned:
        raise InputError("An owner key needs at least one team (--team TEAM, repeatable).")
    return cleaned or None


def create_key(db: Database, role: Role | str, teams: list[str] | None = None, name: str | None = None) -> NewKey:
    """Create a key; returns it with its token (shown once, stored only as a hash)."""
    try:
        role = Role(role)
    except ValueError:
        raise InputError(f"Unknown role '{role}'. Valid roles are: {', '.join(r.value for r in Role)}.") from None
    scope = check_scope(role, teams)
    if name is not None and len(name) > 200:
        raise InputError("A key name is at most 200 characters.")
    key_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(key_id, name, role, scope, _hash(token), datetime.now(UTC), None)
    db.execute(
        "INSERT INTO api_keys (key_id, name, role, teams, secret_sha256, created_at) "
        "VALUES ($key_id, $name, $role, $teams, $hash, $created_at)",
        {
            "key_id": key.key_id,
            "name": name,
            "role": role.value,
            "teams": list(scope) if scope else None,
            "hash": key.secret_sha256,
            "created_at": key.created_at,
        },
    )
    return NewKey(key, token)


_SELECT = "SELECT key_id, name, role, teams, secret_sha256, created_at, revoked_at FROM api_keys"


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, role, teams, digest, created_at, revoked_at = row
    return ApiKey(
        str(key_id),
        name if isinstance(name, str) else None,
        Role(str(role)),
        tuple(teams) if isinstance(teams, list) else None,
        str(digest),
        created_at,  # type: ignore[arg-type]
        revoked_at,  # type: ignore[arg-type]
    )


def list_keys(db: Database, *, include_revoked: bool = True) -> list[ApiKey]:
    where = "" if include_revoked else " WHERE revoked_at IS NULL"
    return [_key(row) for row in db.execute(f"{_SELECT}{where} ORDER BY created_at, key_id")]


def find_key(db: Database, key_id: str) -> ApiKey | None:
    row = db.fetchone(f"{_SELECT} WHERE key_id = $key_id", {"key_id": key_id})
    return _key(row) if row else None


def revoke_key(db: Database, key_id: str) -> ApiKey:
    """Revoke a key (idempotent); an unknown id is `NotFound`."""
    key = find_key(db, key_id)
    if key is None:
        raise NotFound(f"No API key with id '{key_id}'. List the keys with `finops keys list`.", key_id=key_id)
    if key.active:
        db.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $key_id", {"key_id": key_id})
        key = find_key(db, key_id)
        assert key is not None
    return key
