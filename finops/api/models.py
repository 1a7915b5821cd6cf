"""Request and response bodies. Money is a decimal **string** in JSON (`"12.345000000000"`): exact to the
last digit, which a JSON number read as a binary float is not. Dates are ISO dates (`2026-10-01`),
timestamps RFC 3339 in UTC; both are typed here, so clients and the OpenAPI schema know them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from finops.alert.budgets import DEFAULT_THRESHOLDS, Budget, Channel, parse_channel
from finops.errors import InputError
from finops.store.keys import ApiKey, NewKey, Role
from finops.store.readonly import QueryResult, json_value

__all__ = [
    "CreatedKey",
    "FindingRow",
    "FindingsPage",
    "Health",
    "IngestReportBody",
    "KeyCreate",
    "KeyInfo",
    "Me",
    "SpendPage",
    "SpendRow",
    "SpendTotals",
    "SqlRequest",
    "SqlResult",
]

MAX_SQL_CHARS = 100_000


# Decimals as JSON strings in plain notation: `str(Decimal("0E-12"))` would say "0E-12" for a zero at 12 places.
Money = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json")]


class Health(BaseModel):
    status: str = "ok"
    version: str


class Me(BaseModel):
    key_id: str
    name: str | None
    role: Role
    teams: list[str] | None = Field(description="The teams this key sees; null: every team.")


class SpendTotals(BaseModel):
    cost_usd: Money | None = Field(description="USD, exact decimal string; null when every line is unpriced.")
    requests: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    unpriced_requests: int = Field(description="Usage lines without a price (the __unpriced__ bucket).")
    gpu_seconds: Money | None


class SpendRow(SpendTotals):
    """One group: the `group_by` dimensions that were asked for, then the measures."""

    day: dt.date | None = None
    week: dt.date | None = Field(None, description="Monday of the ISO week (UTC).")
    month: dt.date | None = Field(None, description="First day of the month (UTC).")
    team: str | None = None
    feature: str | None = None
    project: str | None = None
    provider: str | None = None
    model: str | None = None
    kind: str | None = None
    user: str | None = None


DataVersion = Annotated[
    int,
    Field(
        description="The newest finops run when this page was read. Offset paging is of one data version: when "
        "two pages differ in it, a run changed the data between them; page again from offset 0."
    ),
]


class SpendPage(BaseModel):
    start: dt.date
    end: dt.date = Field(description="Exclusive.")
    group_by: list[str]
    source: str = Field(description="spend_daily (the daily rollup) or spend (cost lines: project, user).")
    rows: list[SpendRow]
    totals: SpendTotals = Field(description="Over every row of the filter, not only this page.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page.")
    data_version: DataVersion


class FindingRow(BaseModel):
    finding_id: str
    kind: str
    detector: str
    team: str | None
    feature: str | None
    provider: str | None
    model: str | None
    subject: str
    window_start: dt.datetime
    window_end: dt.datetime
    trace_id: str | None
    request_id: str | None
    metric: str
    observed: float | None
    expected: float | None
    excess_cost_usd: Money | None  # NULL: unknown (a retry chain whose wasted attempts have no price)
    score: float
    severity: str
    evidence: Any
    details: Any
    detected_at: dt.datetime


class FindingsPage(BaseModel):
    start: dt.date
    end: dt.date
    rows: list[FindingRow]
    limit: int
    offset: int
    next_offset: int | None
    data_version: DataVersion


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One read-only SELECT.")
    max_rows: int | None = Field(None, ge=1, description="Rows to return at most (capped by FINOPS_SQL_MAX_ROWS).")


class SqlResult(BaseModel):
    columns: list[str]
    types: list[str] = Field(description="DuckDB type of each column.")
    rows: list[list[Any]] = Field(
        description="DECIMAL as strings, dates and times ISO 8601, BLOB base64, non-finite floats as strings."
    )
    truncated: bool = Field(description="True when rows were cut at max_rows or at the result size limit.")

    @classmethod
    def of(cls, result: QueryResult) -> SqlResult:
        return cls(
            columns=result.columns,
            types=result.types,
            rows=[[json_value(v) for v in row] for row in result.rows],
            truncated=result.truncated,
        )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    teams: list[str] = Field(default_factory=list, max_length=100, description="Required for owner keys.")
    name: str | None = Field(None, max_length=200)


class KeyInfo(BaseModel):
    key_id: str
    name: str | None
    role: Role
    teams: list[str] | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(
            key_id=key.key_id,
            name=key.name,
            role=key.role,
            teams=list(key.teams) if key.teams is not None else None,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class CreatedKey(KeyInfo):
    key: str = Field(description="The key itself. Shown once: store it now, it cannot be shown again.")

    @classmethod
    def of_new(cls, new: NewKey) -> CreatedKey:
        return cls(**KeyInfo.of(new.key).model_dump(), key=new.token)


class RejectSampleBody(BaseModel):
    line_number: int | None
    record_path: str | None
    reason: str
    message: str


class IngestReportBody(BaseModel):
    """The same report as `finops ingest --format json`."""

    batch_id: int
    source: str
    source_file: str
    target_table: str
    file_format: str
    detected: bool
    lines: int
    accepted: int
    duplicates: int
    rejected: int
    restated: int
    superseded: int
    rejected_by_reason: dict[str, int]
    samples: list[RejectSampleBody]
    notes: list[str]
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


# --------------------------------------------------------------------------- budgets, alerts, forecasts


def redact_channel(channel: Channel) -> str:
    """A channel as non-admin keys see it: `Channel.redacted()` (scheme and host of a webhook URL only)."""
    return channel.redacted()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if value is not None and value.tzinfo is not None else value


class BudgetWrite(BaseModel):
    """The body of `POST /v1/budgets` and `PUT /v1/budgets/{budget_id}`: the whole budget (PUT replaces it)."""

    model_config = ConfigDict(extra="forbid")

    team: str | None = Field(None, max_length=200, description="Null only for a tag budget across every team.")
    feature: str | None = Field(None, max_length=200, description="One feature of the team; null: the whole team.")
    tag: str | None = Field(None, max_length=320, description="`key=value` on usage tags (not with a feature).")
    period_kind: Literal["month", "quarter", "custom"] = "month"
    period_start: dt.date | None = Field(None, description="Custom periods only: first UTC day.")
    period_end: dt.date | None = Field(None, description="Custom periods only: exclusive.")
    amount_usd: Decimal = Field(description="USD, more than 0, at most 6 decimals; send a string to keep it exact.")
    thresholds: list[int] = Field(
        default_factory=lambda: list(DEFAULT_THRESHOLDS), max_length=50, description="Whole percents, 1 to 1000."
    )
    channels: list[Annotated[str, Field(max_length=2000)]] | None = Field(
        None,
        max_length=20,
        description="`webhook:URL`, `slack:URL`, `email:ADDRESS`. PUT: omitted keeps the budget's channels, and "
        "each redacted channel as GET returns it stands for one stored channel of that form.",
    )
    new_team: bool = Field(False, description="Allow a team that has no spend yet (finance and admin keys).")


class BudgetInfo(BaseModel):
    budget_id: int
    team: str | None
    feature: str | None
    tag: str | None
    scope: str = Field(description="`team=support`, `team=platform/feature=eval`, `tag=project=apollo`.")
    period_kind: Literal["month", "quarter", "custom"]
    period_start: dt.date | None
    period_end: dt.date | None = Field(description="Exclusive; custom periods only.")
    amount_usd: Money
    thresholds: list[int]
    channels: list[str] = Field(description="Webhook and Slack URLs are secrets: redacted for every key but admin.")
    active: bool = Field(description="False once deleted (its alerts stay).")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, budget: Budget, *, reveal: bool) -> BudgetInfo:
        return cls(
            budget_id=budget.budget_id,
            team=budget.team,
            feature=budget.feature,
            tag=budget.tag,
            scope=budget.scope,
            period_kind=budget.period_kind,
            period_start=budget.period_start,
            period_end=budget.period_end,
            amount_usd=budget.amount_usd,
            thresholds=list(budget.thresholds),
            channels=[str(c) if reveal else redact_channel(c) for c in budget.channels],
            active=budget.active,
            created_at=budget.created_at.astimezone(dt.UTC),
            updated_at=budget.updated_at.astimezone(dt.UTC),
        )


class AlertRow(BaseModel):
    alert_id: str = Field(description="Stable; the `webhook-id` receivers deduplicate on.")
    budget_id: int
    team: str | None = Field(description="The budget's team.")
    feature: str | None
    tag: str | None
    kind: Literal["actual", "forecast", "finding", "recovery"]
    condition_kind: str | None = Field(description="actual | forecast: what a recovery recovers.")
    threshold_pct: int | None
    period: str
    period_start: dt.date
    period_end: dt.date = Field(description="Exclusive.")
    episode: int
    recovers: str | None = Field(description="A recovery: the alert_id it follows.")
    finding_id: str | None
    fired_at: dt.datetime = Field(description="The evaluation time (`--as-of`) that fired it.")
    state: Literal["open", "recovered", "closed"]
    state_changed_at: dt.datetime
    delivery: Literal["none", "pending", "delivered", "failed"] = Field(description="Summary over its channels.")
    amount_usd: Money = Field(description="The budget amount when it fired.")
    actual_usd: Money
    forecast_usd: Money | None
    message: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> AlertRow:
        return cls(**(row | {k: _utc(row[k]) for k in ("fired_at", "state_changed_at")}))


class AlertsPage(BaseModel):
    rows: list[AlertRow] = Field(description="Newest first.")
    limit: int
    truncated: bool = Field(description="True when more alerts match: ask again from `next_offset`.")
    offset: int = 0
    next_offset: int | None = Field(None, description="The `offset` of the next page; null on the last page.")


class AlertDelivery(BaseModel):
    channel: str = Field(description="Redacted for every key but admin.")
    status: Literal["pending", "delivered", "failed", "disabled"]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status: str | None = Field(description="HTTP status or SMTP reply code of the last attempt.")
    last_error: str | None
    delivered_at: dt.datetime | None

    @classmethod
    def of(cls, row: dict[str, Any], *, reveal: bool) -> AlertDelivery:
        times = {k: _utc(row[k]) for k in ("next_attempt_at", "last_attempt_at", "delivered_at")}
        channel, error = str(row["channel"]), row["last_error"]
        if not reveal:
            channel, error = _redacted_delivery(channel, error)
        return cls(**(row | times | {"channel": channel, "last_error": error}))


def _redacted_delivery(channel: str, error: str | None) -> tuple[str, str | None]:
    """The channel redacted, and any copy of its target in the error text too."""
    try:
        parsed = parse_channel(channel)
    except InputError:  # not a channel finops would store; show its kind only
        return f"{channel.partition(':')[0]}:...", None
    shown = redact_channel(parsed)
    if error is not None and parsed.target in error:
        error = error.replace(parsed.target, shown.partition(":")[2])
    return shown, error


class AlertDetail(AlertRow):
    payload: dict[str, Any] = Field(description="Everything a receiver got: budget, actual, forecast, drivers.")
    deliveries: list[AlertDelivery] = Field(description="One per channel, with its attempts.")


class ForecastInfo(BaseModel):
    """The newest forecast of one scope and period. `forecast_usd = actual_to_date_usd + remaining_usd`."""

    team: str | None = Field(description="Null: the company total (every team and bucket).")
    feature: str | None = Field(description="Null: the whole team.")
    scope: Literal["company", "team", "feature"]
    period: str = Field(description="`2026-11`, `2026-Q4`, or `2026-11-10/2026-12-10` (custom).")
    period_kind: Literal["month", "quarter", "custom"]
    period_start: dt.date
    period_end: dt.date = Field(description="Exclusive.")
    as_of: dt.datetime = Field(description="The evaluation time of the run that made it.")
    forecast_start: dt.date = Field(description="First forecast day; the days before are actuals.")
    data_through: dt.date | None = Field(
        None,
        description="The newest day with any spend when it was made: the days after it (to the day of as_of) had "
        "no data yet and are forecast, not taken as $0.",
    )
    history_days: int
    actual_to_date_usd: Money = Field(description="Spend of [period_start, forecast_start), exact.")
    remaining_days: int
    remaining_usd: Money = Field(description="Point forecast of [forecast_start, period_end).")
    forecast_usd: Money = Field(description="Point forecast of the period total.")
    lo80_usd: Money = Field(description="80 % interval of the period total (10 % quantile).")
    hi80_usd: Money = Field(description="80 % interval (90 % quantile).")
    lo95_usd: Money = Field(description="95 % interval (2.5 % quantile).")
    hi95_usd: Money = Field(description="95 % interval (97.5 % quantile).")
    daily_forecast_usd: list[Money] = Field(description="Point forecast of each remaining day, from forecast_start.")
    method: str
    note: str = Field(description="Why this method, and what the interval rests on.")
    budget_id: int | None = Field(description="The active budget of this scope and period (the smallest, if several).")
    budget_usd: Money | None
    breach_date: dt.date | None = Field(
        description="First UTC day the period's cumulative spend (actual days, then the daily forecast path) "
        "exceeds budget_usd; null: no budget, or no breach within the period."
    )


__all__ += [
    "AlertDelivery",
    "AlertDetail",
    "AlertRow",
    "AlertsPage",
    "BudgetInfo",
    "BudgetWrite",
    "ForecastInfo",
    "Money",
    "redact_channel",
]
