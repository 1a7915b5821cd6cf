"""The machine's limits, told apart from bugs: DuckDB's memory limit, a full disk, a file it cannot write.

The CLI turns them into one sentence and exit 1, the API into a 503 with a `code`; neither is a traceback.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import duckdb

__all__ = ["MachineLimit", "machine_limit"]

_DISK_FULL = ("No space left on device", "Disk quota exceeded")


@dataclass(frozen=True)
class MachineLimit:
    code: str  # out_of_memory | disk_full | storage_error
    cause: str  # DuckDB's (or the OS's) own first line, without its class prefix


def machine_limit(exc: BaseException) -> MachineLimit | None:
    """What limit `exc` is, else None. A full disk reaches us as an IO, transaction or OS error alike: its text
    says it."""
    text = str(exc)
    if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory Error" in text:
        return MachineLimit("out_of_memory", first_line(exc))
    if any(words in text for words in _DISK_FULL) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        return MachineLimit("disk_full", first_line(exc))
    if isinstance(exc, duckdb.IOException):
        return MachineLimit("storage_error", first_line(exc))
    return None


def first_line(exc: BaseException) -> str:
    """DuckDB's message without its class prefix, its first line only (the rest is a hint or a trace)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for prefix in ("TransactionContext Error: ", "Out of Memory Error: ", "IO Error: "):
        text = text.removeprefix(prefix)
    return text[:300]
