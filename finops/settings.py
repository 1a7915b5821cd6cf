"""One frozen `Settings`, read from `FINOPS_*` environment variables (never at import time).

Every field is documented in the README's settings table; `tests/test_docs.py` keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.errors import ConfigError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Runtime settings; each field reads `FINOPS_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_", frozen=True, extra="ignore")

    db: Path = Field(Path("finops.duckdb"), description="The DuckDB database file.")
    lock_timeout_s: float = Field(
        10.0, ge=0, description="How long a command waits for a database another process holds."
    )
    memory_limit: str = Field("3GB", description="DuckDB memory limit for this process (spills beyond it).")
    threads: int | None = Field(None, ge=1, description="DuckDB worker threads (default: all cores).")
    progress_min_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Files at least this large show a progress bar while ingesting."
    )
    max_future_s: int = Field(
        86_400, ge=0, description="Records stamped more than this many seconds after ingest time are rejected."
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
        14, ge=1, description="Each run re-detects incidents of the last this many days (older ones are kept)."
    )
    detect_history_days: int = Field(
        35, ge=0, description="Days of history before the horizon that detectors use for their baselines."
    )
    run_chunk_records: int = Field(
        2_000_000,
        ge=1,
        description="`finops run` and `finops reprice` read and price usage a few UTC days at a time, about this "
        "many records (a day is never split): the memory of a first run or a reprice over months of history.",
    )
    min_timestamp: str = Field(
        "2015-01-01", description="Records stamped before this UTC date are rejected as implausible."
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
        10_000, ge=1, description="Most rows one page of /v1/spend or /v1/findings returns (the `limit` cap)."
    )
    api_query_time_limit_ms: int = Field(
        10_000, ge=1, description="Time limit of the queries behind /v1/spend and /v1/findings."
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
        5_000, ge=1, description="Time limit of one user SQL query, waiting for a worker included."
    )
    sql_max_rows: int = Field(10_000, ge=1, description="Most rows a user SQL query returns (`max_rows` cap).")
    sql_max_result_bytes: int = Field(
        16_777_216, ge=1024, description="A user SQL result is cut (truncated) at about this many bytes."
    )
    sql_memory_limit_mb: int = Field(
        1024, ge=64, description="DuckDB memory limit of each SQL worker (its process gets 512 MB more)."
    )
    sql_temp_limit_mb: int = Field(1024, ge=0, description="Spill space of each SQL worker; 0: no spilling.")
    sql_threads: int = Field(2, ge=1, description="DuckDB threads of each SQL worker.")
    sql_workers: int = Field(2, ge=1, description="SQL worker processes: how many user queries run at once.")
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


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning a bad value into one clear `ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(
            f"FINOPS_{field.upper()} has value {first.get('input')!r}. {first['msg']}.",
            setting=f"FINOPS_{field.upper()}",
        ) from None
