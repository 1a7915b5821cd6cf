"""PLACEHOLDER (being written): stage 6, budgets, the alert state machine and delivery."""

from __future__ import annotations

from datetime import datetime

from finops.store.db import Database

__all__ = ["alert_step"]


def alert_step(db: Database, as_of: datetime, run_id: int) -> int:
    """Evaluate every budget as of `as_of`, record alerts once each, queue deliveries; alerts fired."""
    return 0
