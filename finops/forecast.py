"""PLACEHOLDER (being written): stage 5, month- and quarter-end spend forecasts with intervals."""

from __future__ import annotations

from datetime import datetime

from finops.store.db import Database

__all__ = ["forecast_step"]


def forecast_step(db: Database, as_of: datetime, run_id: int) -> int:
    """Forecast every team, budgeted feature and the company total as of `as_of`; rows written."""
    return 0
