"""Who is calling and what they may do: keys -> callers, roles -> permissions, teams -> scope.

Roles and their permissions:

| role       | read (spend, findings, forecasts, budgets, alerts) | sql | manage budgets | ingest | manage keys |
|------------|----------------------------------------------------|-----|----------------|--------|-------------|
| `admin`    | every team                                         | yes | yes            | yes    | yes         |
| `finance`  | every team                                         |     | yes            |        |             |
| `owner`    | its teams only                                     |     | its teams only |        |             |
| `engineer` | every team, or its teams when scoped               | yes |                |        |             |

Scope rules, for every route (`Caller.teams` is None for a key that sees every team):
  - list routes filter to the caller's teams; rows without a team (company-wide findings, ...) are not
    shown to a scoped key;
  - a filter naming a team outside the scope is `OutOfScope` (403), whether that team exists or not;
  - a single object of another team is `NotFound` (404), exactly as an object that does not exist;
  - SQL runs over snapshots holding only the scope's rows (`finops.store.sandbox`).
Every route declares what it needs with `requires(...)` or `public()`; a test walks `app.routes`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from finops.api.errors import Forbidden, OutOfScope, Unauthenticated
from finops.errors import NotFound
from finops.store.db import Database
from finops.store.keys import ApiKey, Role, find_key, parse_token, verify_token

__all__ = [
    "ROLE_PERMISSIONS",
    "Caller",
    "KeyCache",
    "Permission",
    "authenticate",
    "caller_of",
    "public",
    "requires",
]


class Permission(StrEnum):
    READ = "read"
    SQL = "sql"
    MANAGE_BUDGETS = "manage_budgets"
    INGEST = "ingest"
    MANAGE_KEYS = "manage_keys"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.FINANCE: frozenset({Permission.READ, Permission.MANAGE_BUDGETS}),
    Role.OWNER: frozenset({Permission.READ, Permission.MANAGE_BUDGETS}),
    Role.ENGINEER: frozenset({Permission.READ, Permission.SQL}),
}

_WHAT = {
    Permission.READ: "read spend data",
    Permission.SQL: "run SQL",
    Permission.MANAGE_BUDGETS: "manage budgets",
    Permission.INGEST: "push usage records",
    Permission.MANAGE_KEYS: "manage API keys",
}


@dataclass(frozen=True)
class Caller:
    """The key behind a request: its role and the teams it may see (None: every team)."""

    key_id: str
    role: Role
    teams: frozenset[str] | None
    name: str | None = None

    @property
    def scoped(self) -> bool:
        return self.teams is not None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def team_filter(self, requested: Sequence[str] | None) -> list[str] | None:
        """The teams a list query filters on (None: no team filter).

        A scoped caller gets its teams when it asks for none, and `OutOfScope` when it names any other
        team, whether or not that team exists (the message does not repeat the name)."""
        wanted = sorted({t for t in requested or () if t})
        if self.teams is None:
            return wanted or None
        if any(t not in self.teams for t in wanted):
            raise OutOfScope(
                f"This key reads only the teams it was created for ({', '.join(sorted(self.teams))}); "
                "the team filter names another team. Ask an admin for a key with that team.",
            )
        return wanted or sorted(self.teams)

    def can_see(self, team: str | None) -> bool:
        return self.teams is None or (team is not None and team in self.teams)

    def visible(self, team: str | None, what: str) -> None:
        """For routes on one object: another team's object is `NotFound`, like one that does not exist."""
        if not self.can_see(team):
            raise NotFound(f"No {what} with that id.")

    def visible_rows(self, rows: Iterable[Any], team_of: Callable[[Any], str | None]) -> list[Any]:
        return [r for r in rows if self.can_see(team_of(r))]


class KeyCache:
    """Keys by id for a few seconds, so most requests do not query the database to authenticate.

    Keys created or revoked through this process call `invalidate()`, so revocation through the API is
    immediate; a change made another way is seen within `ttl_s`."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def cached(self, key_id: str) -> ApiKey | None:
        """A key seen less than `ttl_s` ago (no database access)."""
        with self._lock:
            cached = self._keys.get(key_id)
        return cached[1] if cached is not None and time.monotonic() - cached[0] < self.ttl_s else None

    def load(self, db: Database, key_id: str) -> ApiKey | None:
        key = find_key(db, key_id)
        with self._lock:
            if key is None:
                self._keys.pop(key_id, None)
            else:
                self._keys[key_id] = (time.monotonic(), key)
        return key

    def invalidate(self) -> None:
        with self._lock:
            self._keys.clear()


bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fo_...`")

_MISSING = (
    "This route needs an API key: send `Authorization: Bearer <key>`. An admin creates keys with "
    "`finops keys create --role ROLE`."
)
_INVALID = "The API key is not valid: it is unknown, revoked, or mistyped."


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    """The caller of a request, from its bearer key; 401 when there is none or it is not valid."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated(_MISSING)
    token = credentials.credentials.strip()
    key_id = parse_token(token)
    if key_id is None:
        raise Unauthenticated(_INVALID)
    state = request.app.state.finops
    key = state.keys.cached(key_id) or await anyio.to_thread.run_sync(_lookup, state, key_id)
    if key is None or not verify_token(key, token):
        raise Unauthenticated(_INVALID)
    return _caller(key)


async def caller_of(state: Any, authorization: str) -> Caller | None:
    """The caller of an `Authorization` header value (the key read from the key cache, else from the
    database in a worker thread, as `authenticate` does); None when it is not a valid bearer key, whatever
    the reason: the normal path then answers with its 401."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    key_id = parse_token(token) if scheme.lower() == "bearer" else None
    if key_id is None:
        return None
    key = state.keys.cached(key_id) or await anyio.to_thread.run_sync(_lookup, state, key_id)
    if key is None or not verify_token(key, token):
        return None
    return _caller(key)


def _caller(key: ApiKey) -> Caller:
    return Caller(key.key_id, key.role, frozenset(key.teams) if key.teams is not None else None, key.name)


def _lookup(state: Any, key_id: str) -> ApiKey | None:
    with state.database() as db:
        key: ApiKey | None = state.keys.load(db, key_id)
        return key


def requires(permission: Permission | None) -> DependsParam:
    """The dependency a route declares: the caller, checked for `permission` (None: any valid key)."""

    async def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if permission is not None and not caller.can(permission):
            allowed = ", ".join(r.value for r, perms in ROLE_PERMISSIONS.items() if permission in perms)
            raise Forbidden(
                f"{_article(caller.role.value)} {caller.role.value} key cannot {_WHAT[permission]}; "
                f"that needs a key with role {allowed}.",
                required=permission.value,
            )
        return caller

    check.finops_access = permission or "authenticated"  # type: ignore[attr-defined]
    check.__name__ = f"requires_{permission or 'key'}"
    marker: DependsParam = Depends(check)
    return marker


def _article(word: str) -> str:
    return "An" if word[:1] in "aeiou" else "A"


def public() -> DependsParam:
    """The dependency a route without authentication declares (health checks)."""

    async def no_key() -> None:
        return None

    no_key.finops_access = "public"  # type: ignore[attr-defined]
    marker: DependsParam = Depends(no_key)
    return marker
