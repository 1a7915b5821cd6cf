"""`GET /healthz` (no key) and `GET /v1/me` (who this key is)."""

from __future__ import annotations

from fastapi import APIRouter

from finops import __version__
from finops.api.auth import public
from finops.api.deps import AnyKey
from finops.api.models import Health, Me
from finops.api.routing import BodyLimitedRoute

router = APIRouter(route_class=BodyLimitedRoute)


@router.get("/healthz", response_model=Health, tags=["health"], dependencies=[public()])
async def healthz() -> Health:
    """Liveness: the process answers. No key needed, no data shown."""
    return Health(version=__version__)


@router.get("/v1/me", response_model=Me, tags=["keys"])
async def me(caller: AnyKey) -> Me:
    """The role and teams of the key making the request."""
    return Me(
        key_id=caller.key_id,
        name=caller.name,
        role=caller.role,
        teams=sorted(caller.teams) if caller.teams is not None else None,
    )
