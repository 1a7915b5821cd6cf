"""Budgets: validated specs and the create / update / delete / list / get functions the CLI and the API call.

A budget has a scope (a team; a team and one feature; or a usage tag `key=value`, within a team or across
all of them), a period kind (month, quarter, or one custom range of UTC days), an amount in USD,
thresholds in percent of it, and channels (`webhook:URL`, `slack:URL`, `email:ADDRESS`). Every problem is
an `InputError` (or `NotFound`) whose message is one sentence; nothing here knows about the CLI or HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

import httpx

from finops.alert import store
from finops.alert.periods import PERIOD_KINDS, Period, PeriodKind, period_at
from finops.errors import InputError, NotFound
from finops.store.db import Database

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Budget",
    "BudgetSpec",
    "Channel",
    "create_budget",
    "delete_budget",
    "find_budget",
    "get_budget",
    "list_budgets",
    "parse_amount",
    "parse_channel",
    "parse_tag",
    "parse_thresholds",
    "set_budget",
    "update_budget",
]

DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 80, 100)
ChannelKind = Literal["webhook", "slack", "email"]
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("webhook", "slack", "email")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/@-]{1,100}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_MAX_AMOUNT = Decimal(10**15)
# the days a custom period may span: wide enough for any plan, narrow enough that every date the alert
# checks derive from a period (its grace days, the day before it) stays a valid date
EARLIEST_PERIOD_DAY = date(2000, 1, 1)
LATEST_PERIOD_DAY = date(2200, 1, 1)


@dataclass(frozen=True)
class Channel:
    """Where alerts go: a JSON webhook, a Slack-compatible incoming webhook, or an e-mail address."""

    kind: ChannelKind
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    def redacted(self) -> str:
        """The channel with everything of a webhook URL but its scheme and host hidden: a Slack URL's path is
        its secret, other receivers keep theirs in the query, the fragment or the user info."""
        if self.kind == "email":
            return str(self)
        url = httpx.URL(self.target)
        host = f"{url.host}:{url.port}" if url.port is not None else url.host
        hidden = url.path not in ("", "/") or url.query or url.fragment or url.userinfo
        return f"{self.kind}:{url.scheme}://{host}/..." if hidden else f"{self.kind}:{url.scheme}://{host}/"


@dataclass(frozen=True)
class BudgetSpec:
    """What a caller asks for; `validate_spec` checks it against the database."""

    amount_usd: Decimal | str | int
    team: str | None = None
    feature: str | None = None
    tag: str | None = None
    period_kind: str = "month"
    period_start: date | None = None
    period_end: date | None = None
    thresholds: Sequence[int] | None = None  # None: DEFAULT_THRESHOLDS for a new budget, the stored ones on update
    channels: Sequence[str | Channel] | None = None  # None: none for a new budget, the stored ones on update
    new_team: bool = False  # allow a team that has no spend yet


@dataclass(frozen=True)
class Budget:
    """A stored budget."""

    budget_id: int
    team: str | None
    feature: str | None
    tag: str | None
    period_kind: PeriodKind
    period_start: date | None
    period_end: date | None
    amount_usd: Decimal
    thresholds: tuple[int, ...]
    channels: tuple[Channel, ...]
    active: bool
    created_at: datetime
    updated_at: datetime

    @property
    def scope(self) -> str:
        """`team=support`, `team=platform/feature=eval`, `tag=project=apollo` (within `team=` when set)."""
        parts = [f"team={self.team}"] if self.team is not None else []
        if self.feature is not None:
            parts.append(f"feature={self.feature}")
        if self.tag is not None:
            parts.append(f"tag={self.tag}")
        return "/".join(parts)

    @property
    def tag_pair(self) -> tuple[str, str] | None:
        if self.tag is None:
            return None
        key, _, value = self.tag.partition("=")
        return key, value

    def period_at(self, moment: datetime) -> Period | None:
        """The budget's period containing `moment`, if any (a custom budget has only its own range)."""
        return period_at(self.period_kind, moment, custom=self.custom_range)

    @property
    def custom_range(self) -> tuple[date, date] | None:
        if self.period_start is None or self.period_end is None:
            return None
        return self.period_start, self.period_end

    def threshold_usd(self, pct: int) -> Decimal:
        """`pct` percent of the amount, exact."""
        return self.amount_usd * pct / 100

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: money as an exact decimal string, dates ISO."""
        return {
            "budget_id": self.budget_id,
            "team": self.team,
            "feature": self.feature,
            "tag": self.tag,
            "scope": self.scope,
            "period_kind": self.period_kind,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "amount_usd": str(self.amount_usd),
            "thresholds": list(self.thresholds),
            "channels": [str(c) for c in self.channels],
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# ------------------------------------------------------------------------------------------ parsing


_THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")


def parse_amount(value: Decimal | str | int) -> Decimal:
    """A positive USD amount with at most 6 decimals. Commas are read only as thousands separators in their
    places (`12,000.50`): `1,5` or `1.000,50` (a decimal comma) is refused, not read as 15 or 1.0005."""
    text = str(value).strip().removeprefix("$")
    if "," in text:
        if not _THOUSANDS.fullmatch(text):
            raise InputError(
                f"Amount '{value}' has a comma that is not a thousands separator (a decimal comma?); expected "
                "a point for decimals, e.g. 12000, 12,000 or 799.50."
            )
        text = text.replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0 or amount >= _MAX_AMOUNT:
        raise InputError(
            f"Amount '{value}' is not a positive number of dollars below {_MAX_AMOUNT:,}; expected e.g. 12000 "
            "or 799.50."
        )
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise InputError(f"Amount '{value}' has more than 6 decimals; round it to the cent, e.g. 799.50.")
    return amount


def parse_thresholds(values: str | Iterable[int | str]) -> tuple[int, ...]:
    """Whole percents from 1 to 1000, from `50,80,100` or a sequence; sorted, without repeats."""
    items = values.split(",") if isinstance(values, str) else list(values)
    found: set[int] = set()
    for item in items:
        text = str(item).strip().removesuffix("%")
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise InputError(
                f"Threshold '{str(item).strip()}' is not a whole percent from 1 to 1000; expected e.g. 50,80,100."
            )
        found.add(int(text))
    if not found:
        raise InputError("No thresholds given; expected percents such as 50,80,100.")
    return tuple(sorted(found))


def parse_channel(value: str | Channel) -> Channel:
    """`webhook:URL`, `slack:URL` (http or https) or `email:ADDRESS`."""
    if isinstance(value, Channel):
        value = str(value)
    kind, sep, target = value.strip().partition(":")
    kinds = ", ".join(f"{k}:..." for k in CHANNEL_KINDS)
    if not sep or kind not in CHANNEL_KINDS:
        raise InputError(f"Channel '{value}' is not one of {kinds}; e.g. slack:https://hooks.slack.com/services/...")
    target = target.strip()
    if kind == "email":
        if not _EMAIL.match(target):
            raise InputError(f"Channel '{value}' is not an e-mail address; expected e.g. email:lead@example.com.")
        return Channel("email", target)
    try:
        url = httpx.URL(target)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host or any(c.isspace() for c in target):
        raise InputError(f"Channel '{value}' has no http(s) URL; expected e.g. {kind}:https://hooks.example/finops.")
    return Channel(kind, target)


def parse_tag(value: str) -> str:
    """`key=value`; the key is letters, digits and `_.:/@-`."""
    key, sep, tag_value = value.strip().partition("=")
    if not sep or not _TAG_KEY.match(key.strip()) or not tag_value.strip() or len(tag_value) > 200:
        raise InputError(f"Tag '{value}' is not key=value; expected e.g. project=apollo.")
    return f"{key.strip()}={tag_value.strip()}"


# --------------------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Valid:
    team: str | None
    feature: str | None
    tag: str | None
    period_kind: PeriodKind
    period_start: date | None
    period_end: date | None
    amount_usd: Decimal
    thresholds: tuple[int, ...]
    channels: tuple[Channel, ...]


def validate_spec(db: Database, spec: BudgetSpec) -> _Valid:
    """Check every field of `spec`; the first problem is one `InputError` sentence."""
    team = _name(spec.team, "Team")
    feature = _name(spec.feature, "Feature")
    tag = parse_tag(spec.tag) if spec.tag is not None else None
    if feature is not None and tag is not None:
        raise InputError("A budget is per feature or per tag, not both; drop the feature or the tag.")
    if team is None and tag is None:
        raise InputError("A budget needs a team, alone or with a feature, or a tag (key=value).")
    if spec.period_kind not in PERIOD_KINDS:
        raise InputError(f"Period '{spec.period_kind}' is not one of: {', '.join(PERIOD_KINDS)}.")
    kind: PeriodKind = spec.period_kind
    start, end = spec.period_start, spec.period_end
    if kind == "custom":
        if start is None or end is None:
            raise InputError(
                "A custom period needs a start and an end (UTC days, end exclusive: --start and --end, or "
                "period_start and period_end in the API)."
            )
        if end <= start:
            raise InputError(f"Custom period end {end} is not after its start {start}; the end is exclusive.")
        if start < EARLIEST_PERIOD_DAY or end > LATEST_PERIOD_DAY:
            raise InputError(
                f"Custom period {start} to {end} is outside the days budgets cover: from {EARLIEST_PERIOD_DAY} "
                f"to {LATEST_PERIOD_DAY}."
            )
    elif start is not None or end is not None:
        raise InputError(f"A start and an end apply to custom periods only, not to a {kind} budget.")
    if team is not None and not spec.new_team:
        known = store.known_teams(db)
        if team not in known:
            listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "") if known else "none yet"
            raise InputError(
                f"Team '{team}' has no spend yet (known teams: {listed}); check the name, or declare it a new "
                "team (--new-team, or new_team in the API).",
                team=team,
            )
    return _Valid(
        team=team,
        feature=feature,
        tag=tag,
        period_kind=kind,
        period_start=start,
        period_end=end,
        amount_usd=parse_amount(spec.amount_usd),
        thresholds=parse_thresholds(DEFAULT_THRESHOLDS if spec.thresholds is None else spec.thresholds),
        channels=tuple(dict.fromkeys(parse_channel(c) for c in spec.channels or ())),
    )


def _name(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not value.strip() or len(value) > 200:
        raise InputError(f"{what} '{value}' is empty or too long; expected a name such as support.")
    return value.strip()


# ------------------------------------------------------------------------------------------ CRUD


def create_budget(db: Database, spec: BudgetSpec, *, now: datetime | None = None) -> Budget:
    """Store a new budget; an active budget with the same scope and period is an `InputError`."""
    valid = validate_spec(db, spec)
    existing = store.budget_id_for_scope(db, _scope_params(valid))
    if existing is not None:
        raise InputError(
            f"Budget {existing} already covers this scope and period; update it instead.", budget_id=existing
        )
    return get_budget(db, store.insert_budget(db, _row(valid), now or datetime.now(UTC)))


def find_budget(db: Database, spec: BudgetSpec) -> Budget | None:
    """The active budget with the scope and period of `spec` (what `set_budget` would update), if any."""
    existing = store.budget_id_for_scope(db, _scope_params(validate_spec(db, spec)))
    return None if existing is None else get_budget(db, existing)


def set_budget(db: Database, spec: BudgetSpec, *, now: datetime | None = None) -> tuple[Budget, bool]:
    """Create the budget, or update the active one with the same scope and period; (budget, created). On
    update, thresholds and channels the spec leaves None keep the stored ones."""
    valid = validate_spec(db, spec)
    existing = store.budget_id_for_scope(db, _scope_params(valid))
    if existing is None:
        return get_budget(db, store.insert_budget(db, _row(valid), now or datetime.now(UTC))), True
    valid = validate_spec(db, _keep_unset(get_budget(db, existing), spec))
    store.update_budget(db, existing, _row(valid), now or datetime.now(UTC))
    return get_budget(db, existing), False


def update_budget(db: Database, budget_id: int, spec: BudgetSpec, *, now: datetime | None = None) -> Budget:
    """Replace an active budget's fields with `spec` (its id, creation time and alert history stay);
    thresholds and channels the spec leaves None keep the stored ones."""
    current = get_budget(db, budget_id)
    if not current.active:
        raise NotFound(f"Budget {budget_id} was deleted; create a new one instead.", budget_id=budget_id)
    valid = validate_spec(db, _keep_unset(current, _keep_known_team(current, spec)))
    other = store.budget_id_for_scope(db, _scope_params(valid))
    if other is not None and other != budget_id:
        raise InputError(f"Budget {other} already covers this scope and period.", budget_id=other)
    store.update_budget(db, budget_id, _row(valid), now or datetime.now(UTC))
    return get_budget(db, budget_id)


def _keep_known_team(current: Budget, spec: BudgetSpec) -> BudgetSpec:
    """A budget's own team stays valid on update, whether or not it has spend yet."""
    return replace(spec, new_team=True) if spec.team == current.team else spec


def _keep_unset(current: Budget, spec: BudgetSpec) -> BudgetSpec:
    """`spec` with the stored thresholds and channels where it leaves them None."""
    return replace(
        spec,
        thresholds=current.thresholds if spec.thresholds is None else spec.thresholds,
        channels=current.channels if spec.channels is None else spec.channels,
    )


def delete_budget(db: Database, budget_id: int, *, now: datetime | None = None) -> Budget:
    """Deactivate a budget: no more alerts; its alerts and history stay."""
    current = get_budget(db, budget_id)
    if current.active:
        store.deactivate_budget(db, budget_id, now or datetime.now(UTC))
    return get_budget(db, budget_id)


def get_budget(db: Database, budget_id: int) -> Budget:
    row = store.fetch_budget(db, budget_id)
    if row is None:
        raise NotFound(f"No budget {budget_id}; `finops budgets list` shows the budgets.", budget_id=budget_id)
    return _budget(row)


def list_budgets(db: Database, *, team: str | None = None, include_inactive: bool = False) -> list[Budget]:
    """Budgets ordered by id; only active ones unless asked."""
    return [_budget(r) for r in store.fetch_budgets(db, team=team, include_inactive=include_inactive)]


def _scope_params(valid: _Valid) -> dict[str, object]:
    return {
        "team": valid.team,
        "feature": valid.feature,
        "tag": valid.tag,
        "period_kind": valid.period_kind,
        "period_start": valid.period_start,
        "period_end": valid.period_end,
    }


def _row(valid: _Valid) -> dict[str, object]:
    return {
        **_scope_params(valid),
        "amount_usd": valid.amount_usd,
        "thresholds": list(valid.thresholds),
        "channels": [str(c) for c in valid.channels],
    }


def _budget(row: dict[str, object]) -> Budget:
    return Budget(
        budget_id=int(row["budget_id"]),  # type: ignore[call-overload]
        team=row["team"],  # type: ignore[arg-type]
        feature=row["feature"],  # type: ignore[arg-type]
        tag=row["tag"],  # type: ignore[arg-type]
        period_kind=row["period_kind"],  # type: ignore[arg-type]
        period_start=row["period_start"],  # type: ignore[arg-type]
        period_end=row["period_end"],  # type: ignore[arg-type]
        amount_usd=row["amount_usd"],  # type: ignore[arg-type]
        thresholds=tuple(row["thresholds"]),  # type: ignore[arg-type]
        channels=tuple(parse_channel(c) for c in row["channels"]),  # type: ignore[attr-defined]
        active=bool(row["active"]),
        created_at=row["created_at"],  # type: ignore[arg-type]
        updated_at=row["updated_at"],  # type: ignore[arg-type]
    )
