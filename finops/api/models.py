"""Request and response bodies. Money is a decimal **string** in JSON (`"12.345000000000"`): exact to the
last digit, which a JSON number read as a binary float is not. Dates are ISO dates (`2026-10-01`),
timestamps RFC 3339 in UTC; both are typed here, so clients and the OpenAPI schema know them."""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from finops.store.keys import ApiKey, NewKey, Role
from finops.store.readonly import QueryResult

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


class Health(BaseModel):
    status: str = "ok"
    version: str


class Me(BaseModel):
    key_id: str
    name: str | None
    role: Role
    teams: list[str] | None = Field(description="The teams this key sees; null: every team.")


class SpendTotals(BaseModel):
    cost_usd: Decimal | None = Field(description="USD, exact decimal string; null when every line is unpriced.")
    requests: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    unpriced_requests: int = Field(description="Usage lines without a price (the __unpriced__ bucket).")
    gpu_seconds: Decimal | None


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
    excess_cost_usd: Decimal
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


def json_value(value: Any) -> Any:
    """A DuckDB value as plain JSON (no binary floats for decimals, nothing JSON cannot carry)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"PT{value.total_seconds():g}S"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(json_value(k)): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v) for v in value]
    return str(value)


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
