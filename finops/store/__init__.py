"""Stage 2: DuckDB is reached only through here."""

from finops.store.db import Database, connect

__all__ = ["Database", "connect"]
