"""PLACEHOLDER (being written): reads and writes of the GPU spend step."""

from __future__ import annotations

from datetime import date

from finops.store.db import Database
from finops.store.spend import Watermark

__all__ = ["gpu_days", "rebuild_gpu_lines"]


def gpu_days(db: Database, watermark: Watermark) -> set[date]:
    """UTC days whose GPU lines may have changed since the watermark."""
    return set()


def rebuild_gpu_lines(db: Database, days: list[date], run_id: int, idle_policy: str) -> None:
    """Replace the `gpu` and `idle` lines of these days."""
