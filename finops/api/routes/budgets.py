"""`/v1/budgets`: list, read, create, replace and delete budgets per team / feature / tag and period.

Who may do what: every reading key lists and reads the budgets of the teams it sees (a budget of no team, a
tag across every team, only for keys that see every team); finance and admin keys manage every budget, an
owner key only budgets of its own teams (a budget naming another team, or no team, is 403 `out_of_scope`;
another team's budget is the same 404 as one that does not exist). Webhook and Slack URLs are secrets:
every key but admin gets channels redacted, and a redacted channel sent back on PUT keeps one stored channel
(`_channels`).

The 422 bodies of these routes leave out FastAPI's `input` (the values sent): a budget body carries webhook
URLs, which are secrets, and an error body is the kind of response that ends up in logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from finops.alert.budgets import (
    Budget,
    BudgetSpec,
    Channel,
    create_budget,
    delete_budget,
    get_budget,
    list_budgets,
    update_budget,
)
from finops.api.auth import Caller
from finops.api.deps import BudgetManager, DbDep, Reader, StateDep
from finops.api.errors import OutOfScope
from finops.api.models import BudgetInfo, BudgetWrite, redact_channel
from finops.api.routing import BodyLimitedRoute
from finops.errors import InputError, NotFound
from finops.store.db import Database
from finops.store.keys import Role


class _NoInputEchoRoute(BodyLimitedRoute):
    """`BodyLimitedRoute` whose request-validation errors omit the `input` each error would echo."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def without_input(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
                raise RequestValidationError(errors) from None

        return without_input


router = APIRouter(route_class=_NoInputEchoRoute, tags=["budgets"])

BudgetId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The budget's id (`budget_id`).")]
Names = Annotated[list[str] | None, Query(max_length=100)]


@router.get("/v1/budgets", response_model=list[BudgetInfo])
def get_budgets(caller: Reader, db: DbDep, team: Names = None, include_deleted: bool = False) -> list[BudgetInfo]:
    """The budgets of the teams this key sees (of `team` when given), by id; deleted ones on request."""
    teams = caller.team_filter(team)
    budgets = list_budgets(db, include_inactive=include_deleted)
    shown = [b for b in budgets if caller.can_see(b.team) and (teams is None or b.team in teams)]
    return [_info(b, caller) for b in shown]


@router.get("/v1/budgets/{budget_id}", response_model=BudgetInfo)
def get_one_budget(caller: Reader, db: DbDep, budget_id: BudgetId) -> BudgetInfo:
    """One budget, deleted ones included (`active` false)."""
    return _info(_visible(db, caller, budget_id), caller)


@router.post("/v1/budgets", response_model=BudgetInfo, status_code=status.HTTP_201_CREATED)
def post_budget(body: BudgetWrite, caller: BudgetManager, state: StateDep) -> BudgetInfo:
    """Create a budget; one with the same scope and period already active is a 400 naming it."""
    spec = _spec(body, caller, stored=())
    with state.write_lock, state.database() as db:
        budget = create_budget(db, spec)
    state.changed()
    return _info(budget, caller)


@router.put("/v1/budgets/{budget_id}", response_model=BudgetInfo)
def put_budget(body: BudgetWrite, caller: BudgetManager, state: StateDep, budget_id: BudgetId) -> BudgetInfo:
    """Replace an active budget's fields (its id, creation time and alerts stay); omitted `channels` keep
    the stored ones, and a redacted channel sent back as GET showed it keeps the channel it stands for."""
    with state.write_lock, state.database() as db:
        current = _visible(db, caller, budget_id)
        budget = update_budget(db, budget_id, _spec(body, caller, stored=current.channels))
    state.changed()
    return _info(budget, caller)


@router.delete("/v1/budgets/{budget_id}", response_model=BudgetInfo)
def delete_one_budget(caller: BudgetManager, state: StateDep, budget_id: BudgetId) -> BudgetInfo:
    """Delete (deactivate) a budget: no more alerts, its open alerts close, its history stays. Twice is harmless."""
    with state.write_lock, state.database() as db:
        _visible(db, caller, budget_id)
        budget = delete_budget(db, budget_id)
    state.changed()
    return _info(budget, caller)


def _info(budget: Budget, caller: Caller) -> BudgetInfo:
    return BudgetInfo.of(budget, reveal=caller.role is Role.ADMIN)


def _visible(db: Database, caller: Caller, budget_id: int) -> Budget:
    """The budget, or one `NotFound` whether it does not exist or belongs to a team the key does not see."""
    try:
        budget: Budget | None = get_budget(db, budget_id)
    except NotFound:
        budget = None
    if budget is None or not caller.can_see(budget.team):
        raise NotFound(
            f"No budget {budget_id}; GET /v1/budgets lists the budgets this key can see.", budget_id=budget_id
        )
    return budget


def _spec(body: BudgetWrite, caller: Caller, *, stored: Sequence[Channel] | None) -> BudgetSpec:
    """The library's spec for `body`, for this caller. A scoped key's own teams count as known (its key was
    made for them), so the unknown-team message, which lists teams, never reaches it."""
    if caller.teams is not None and (body.team is None or body.team not in caller.teams):
        raise OutOfScope(
            f"This key manages only the budgets of its teams ({', '.join(sorted(caller.teams))}); the budget names "
            "another team or none. A budget of another team, or a tag budget across every team, needs a finance "
            "or admin key.",
        )
    return BudgetSpec(
        amount_usd=body.amount_usd,
        team=body.team,
        feature=body.feature,
        tag=body.tag,
        period_kind=body.period_kind,
        period_start=body.period_start,
        period_end=body.period_end,
        thresholds=body.thresholds,
        channels=_channels(body.channels, stored or ()),
        new_team=body.new_team or caller.teams is not None,
    )


def _channels(sent: list[str] | None, stored: Sequence[Channel]) -> list[str | Channel]:
    """The channels to store: `stored` when none were sent. A sent channel equal to the redacted form of a
    stored one stands for ONE stored channel of that form (so a GET's body can be PUT back without the
    secrets, and leaving out one of two redacted entries drops one channel): the n-th such entry for the n-th
    stored channel of its form not sent in full, in stored order. More redacted entries of a form than the
    budget holds is a 400: a redacted URL is never stored as a new channel."""
    if sent is None:
        return list(stored)
    named = {text.strip() for text in sent}
    unmatched: dict[str, list[Channel]] = {}  # redacted form -> stored channels not sent in full, in order
    for channel in stored:
        if str(channel) not in named:
            unmatched.setdefault(redact_channel(channel), []).append(channel)
    forms = Counter(redact_channel(c) for c in stored)
    in_full = {str(c) for c in stored}
    chosen: list[str | Channel] = []
    for text in (t.strip() for t in sent):
        if unmatched.get(text):
            chosen.append(unmatched[text].pop(0))
        elif text in forms and text not in in_full:
            raise InputError(
                f"Channel '{text}' is sent more times than the budget holds channels it can stand for "
                f"({forms[text]}): each redacted channel keeps one stored channel; send a new channel's full URL "
                "to add it.",
                channel=text,
            )
        else:
            chosen.append(text)
    return chosen
