"""`/v1/keys`: create (shown once), list and revoke API keys. Admin keys only."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from finops.api.deps import DbDep, KeyAdmin, StateDep
from finops.api.models import CreatedKey, KeyCreate, KeyInfo
from finops.api.routing import BodyLimitedRoute
from finops.store.keys import create_key, list_keys, revoke_key

router = APIRouter(route_class=BodyLimitedRoute, tags=["keys"])

KeyId = Path(pattern="^[0-9a-f]{12}$", description="The 12 hex digits after `fo_` in the key.")


@router.post("/v1/keys", response_model=CreatedKey, status_code=status.HTTP_201_CREATED)
def post_key(body: KeyCreate, caller: KeyAdmin, db: DbDep, state: StateDep) -> CreatedKey:
    """Create a key. The response holds the key itself, once: it is stored only as a hash."""
    with state.write_lock:
        new = create_key(db, body.role, body.teams, body.name)
    return CreatedKey.of_new(new)


@router.get("/v1/keys", response_model=list[KeyInfo])
def get_keys(caller: KeyAdmin, db: DbDep) -> list[KeyInfo]:
    """Every key, revoked ones included, without secrets."""
    return [KeyInfo.of(k) for k in list_keys(db)]


@router.delete("/v1/keys/{key_id}", response_model=KeyInfo)
def delete_key(caller: KeyAdmin, db: DbDep, state: StateDep, key_id: str = KeyId) -> KeyInfo:
    """Revoke a key: it stops working at once. Revoking twice is harmless."""
    with state.write_lock:
        key = revoke_key(db, key_id)
    state.keys.invalidate()
    return KeyInfo.of(key)
