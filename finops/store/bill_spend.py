"""PLACEHOLDER (being written): reads and writes of the provider-bill step."""

from __future__ import annotations

from datetime import date

from finops.store.db import Database

__all__ = ["rebuild_bill_lines"]


def rebuild_bill_lines(db: Database, days: list[date], run_id: int) -> None:
    """Replace the `bill_adjustment` and `unobserved` lines of these days."""
