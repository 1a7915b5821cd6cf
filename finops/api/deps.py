"""Dependencies as `Annotated` aliases: what a handler receives, and what each route requires.

`DbDep` is a cursor of the request's own (see `finops.api.state`), `SettingsDep` the app's settings,
`CallerDep` the authenticated caller. The role aliases both authenticate and declare the permission
the route needs: `Reader`, `SqlUser`, `BudgetManager`, `Ingester`, `KeyAdmin`, `AnyKey`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from finops.api.auth import Caller, Permission, authenticate, requires
from finops.api.state import AppState
from finops.settings import Settings
from finops.store.db import Database

__all__ = [
    "AnyKey",
    "BudgetManager",
    "CallerDep",
    "DbDep",
    "Ingester",
    "KeyAdmin",
    "Reader",
    "SettingsDep",
    "SqlUser",
    "StateDep",
]


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.finops
    return state


async def get_state(request: Request) -> AppState:
    return _state(request)


async def get_settings(request: Request) -> Settings:
    return _state(request).settings


async def get_db(request: Request) -> AsyncIterator[Database]:
    with _state(request).database() as db:
        yield db


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
CallerDep = Annotated[Caller, Depends(authenticate)]

AnyKey = Annotated[Caller, requires(None)]
Reader = Annotated[Caller, requires(Permission.READ)]
SqlUser = Annotated[Caller, requires(Permission.SQL)]
BudgetManager = Annotated[Caller, requires(Permission.MANAGE_BUDGETS)]
Ingester = Annotated[Caller, requires(Permission.INGEST)]
KeyAdmin = Annotated[Caller, requires(Permission.MANAGE_KEYS)]
