"""The alert stage's in-process lock (kept apart so every alert module can import it without cycles)."""

from __future__ import annotations

import threading

__all__ = ["LEDGER_LOCK"]

# Serialises the alert ledger's short write transactions (evaluation, delivery bookkeeping, budget deletion)
# inside one process, where the scheduler's jobs and the API share one DuckDB database through cursors: DuckDB
# would otherwise abort one of two transactions that update the same alert row. Across processes, DuckDB's
# file lock already allows a single writer.
LEDGER_LOCK = threading.RLock()
