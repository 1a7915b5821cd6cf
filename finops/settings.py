"""One frozen `Settings`, read from `FINOPS_*` environment variables (never at import time).

Every field is documented in the README's settings table; `tests/test_docs.py` keeps the two in step.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.errors import ConfigError

__all__ = ["Settings", "load_settings"]

# Upper bounds sit well below the values where a later step fails (1e17 ms overflows every wait, a row cap past
# BIGINT fails DuckDB's LIMIT, 1e8 threads kill the process), at values nobody needs more than.
HOUR_MS = 3_600_000  # time limits, as `finops sql --time-limit-ms`
MAX_ROWS = 10_000_000  # row caps, as `finops sql --max-rows`
MAX_THREADS = 1024  # DuckDB starts every thread at once
# a SQL worker's thread stacks count against its memory allowance (the limit + 512 MB): 64 threads
# at the 64 MB limit already fail to start
MAX_SQL_THREADS = 32
MAX_SQL_WORKERS = 64  # each is a process with its own DuckDB and memory allowance
MAX_MEMORY_MB = 16 * 1024 * 1024  # 16 TiB; beyond C long the worker's memory rlimit cannot be set
MAX_DAYS = 3660  # ten years: today minus more than ~700,000 days is before year 1
MAX_FUTURE_S = 100 * 365 * 86_400  # a hundred years; DuckDB intervals end near 9e12 seconds

# DuckDB memory sizes: a number and a unit (1000-based KB..TB, 1024-based KiB..TiB, K/M/G/T, B), or a share of
# the machine's memory in percent; the same forms DuckDB's own parser reads, so the value is passed on as given
_MEMORY_SIZE = re.compile(r"\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]+|%)\s*")
_MEMORY_UNITS = {
    "b": 1,
    "byte": 1,
    "bytes": 1,
    **{u: 1000**i for i, units in enumerate(("kb k", "mb m", "gb g", "tb t"), start=1) for u in units.split()},
    **{u: 1024**i for i, u in enumerate(("kib", "mib", "gib", "tib"), start=1)},
}
_MIN_MEMORY_BYTES = 64 * 1000**2  # below this DuckDB runs out of memory opening the schema and ingesting
_MAX_MEMORY_BYTES = 1000 * 1000**4
_MEMORY_EXPECTED = (
    "Expected a DuckDB memory size from 64MB to 1000TB, such as 3GB, 500MB or 4GiB, "
    "or a share of the machine's memory from 0% (exclusive) to 100%, such as 75%"
)


class Settings(BaseSettings):
    """Runtime settings; each field reads `FINOPS_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_", frozen=True, extra="ignore")

    db: Path = Field(Path("finops.duckdb"), description="The DuckDB database file.")
    lock_timeout_s: float = Field(
        10.0, ge=0, description="How long a command waits for a database another process holds."
    )
    memory_limit: str = Field(
        "3GB", description="DuckDB memory limit for this process (spills beyond it), e.g. 3GB, 500MB or 75%."
    )
    threads: int | None = Field(None, ge=1, le=MAX_THREADS, description="DuckDB worker threads (default: all cores).")
    progress_min_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Files at least this large show a progress bar while ingesting."
    )
    max_future_s: int = Field(
        86_400,
        ge=0,
        le=MAX_FUTURE_S,
        description="Records stamped more than this many seconds after ingest time are rejected.",
    )
    owners: Path | None = Field(
        None, description="Ownership rules CSV (api key / project / tag / pattern -> team, feature)."
    )
    price_overrides: Path | None = Field(
        None, description="Price overrides CSV (negotiated discounts, private models, GPU rates)."
    )
    idle_policy: str = Field(
        "idle",
        pattern="^(idle|proportional|even)$",
        description="Idle GPU capacity: kept in __idle__ (idle), or shared to teams by GPU use (proportional) or "
        "evenly (even).",
    )
    detect_horizon_days: int = Field(
        14,
        ge=1,
        le=MAX_DAYS,
        description="Each run re-detects incidents of the last this many days (older ones are kept).",
    )
    detect_history_days: int = Field(
        35, ge=0, le=MAX_DAYS, description="Days of history before the horizon that detectors use for their baselines."
    )
    run_chunk_records: int = Field(
        2_000_000,
        ge=1,
        description="`finops run` and `finops reprice` read and price usage a few UTC days at a time, about this "
        "many records (a day is never split): the memory of a first run or a reprice over months of history.",
    )
    min_timestamp: str = Field(
        "2015-01-01",
        description="Records stamped before this UTC date (or ISO 8601 date and time) are rejected as implausible.",
    )
    # ---- HTTP API (`finops serve`)
    api_host: str = Field("127.0.0.1", description="Address `finops serve` listens on.")
    api_port: int = Field(8000, ge=0, le=65535, description="Port `finops serve` listens on.")
    api_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest JSON request body (e.g. POST /v1/sql); larger ones get 413."
    )
    api_max_ingest_bytes: int = Field(
        268_435_456, ge=1024, description="Largest body of POST /v1/ingest/{source}; larger ones get 413."
    )
    api_max_rows: int = Field(
        10_000,
        ge=1,
        le=MAX_ROWS,
        description="Most rows one page of /v1/spend or /v1/findings returns (the `limit` cap).",
    )
    api_query_time_limit_ms: int = Field(
        10_000, ge=1, le=HOUR_MS, description="Time limit of the queries behind /v1/spend and /v1/findings."
    )
    api_cache_entries: int = Field(
        1000,
        ge=0,
        description="Answers of the read routes kept in memory until the data changes (LRU); 0 turns the cache off.",
    )
    api_scheduler: bool = Field(
        True, description="`finops serve` also runs the scheduler (when the scheduler module is installed)."
    )
    # ---- user SQL (`POST /v1/sql`, `finops sql`)
    sql_time_limit_ms: int = Field(
        5_000, ge=1, le=HOUR_MS, description="Time limit of one user SQL query, waiting for a worker included."
    )
    sql_max_rows: int = Field(
        10_000,
        ge=1,
        le=MAX_ROWS,
        description="Most rows a user SQL query returns (`max_rows` cap).",
    )
    sql_max_result_bytes: int = Field(
        16_777_216, ge=1024, description="A user SQL result is cut (truncated) at about this many bytes."
    )
    sql_memory_limit_mb: int = Field(
        1024,
        ge=64,
        le=MAX_MEMORY_MB,
        description="DuckDB memory limit of each SQL worker (its process gets 512 MB more).",
    )
    sql_temp_limit_mb: int = Field(
        1024,
        ge=0,
        le=MAX_MEMORY_MB,
        description="Spill space of each SQL worker; 0: no spilling.",
    )
    sql_threads: int = Field(2, ge=1, le=MAX_SQL_THREADS, description="DuckDB threads of each SQL worker.")
    sql_workers: int = Field(
        2,
        ge=1,
        le=MAX_SQL_WORKERS,
        description="SQL worker processes: how many user queries run at once.",
    )
    sql_nice: int = Field(10, ge=0, le=19, description="CPU niceness of the SQL workers (API requests go first).")
    sql_probation_s: float = Field(
        60.0,
        ge=0,
        description="After a key's query is stopped at the time or memory limit, for this many seconds its queries "
        "run only on the low-priority workers (all but one), so other keys keep one; 0: off.",
    )
    sql_probation_nice: int = Field(
        19, ge=0, le=19, description="CPU niceness of the low-priority SQL workers, where keys on probation run."
    )
    sql_max_concurrent_per_key: int = Field(
        2, ge=1, description="User SQL queries one API key may have running at once; more get 429."
    )
    sql_snapshot_dir: Path | None = Field(
        None, description="Where user-SQL snapshots are kept (default: beside the database, `<db>.sql-snapshots`)."
    )

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        """A size DuckDB reads, large enough for finops to open its schema and ingest (a bad one used to fail
        at the first connection, as an internal error)."""
        match = _MEMORY_SIZE.fullmatch(value)
        if match is None:
            raise ValueError(_MEMORY_EXPECTED)
        number, unit = float(match["number"]), match["unit"].lower()
        if unit == "%":
            ok = 0 < number <= 100
        else:
            ok = unit in _MEMORY_UNITS and _MIN_MEMORY_BYTES <= number * _MEMORY_UNITS[unit] <= _MAX_MEMORY_BYTES
        if not ok:
            raise ValueError(_MEMORY_EXPECTED)
        return value.strip()

    @field_validator("min_timestamp")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        """An ISO 8601 date or date and time; one with an offset is kept as its UTC time (ingest reads the
        value as UTC)."""
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "Expected an ISO 8601 date or date and time, such as 2015-01-01 or 2015-01-01T00:00:00Z "
                "(UTC when no offset is given)"
            ) from None
        if parsed.tzinfo is None:
            return value.strip()
        return parsed.astimezone(UTC).replace(tzinfo=None).isoformat()


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning a bad value into one clear `ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        # our own validators' sentences, without pydantic's "Value error, " in front
        reason = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        raise ConfigError(
            f"FINOPS_{field.upper()} has value {first.get('input')!r}. {reason}.",
            setting=f"FINOPS_{field.upper()}",
        ) from None
