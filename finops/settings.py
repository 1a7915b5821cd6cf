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
    min_timestamp: str = Field(
        "2015-01-01", description="Records stamped before this UTC date are rejected as implausible."
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
