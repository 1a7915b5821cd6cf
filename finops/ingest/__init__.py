"""Stage 1: raw logs and provider exports -> `usage_events`, `gpu_jobs`, `gpu_capacity`, `provider_costs`.

Every line of every file ends up somewhere: a table row, a duplicate, or a `rejected_usage` row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from finops.errors import FileProblem, FinopsError
from finops.ingest.adapter import Adapter
from finops.ingest.auto import detect_source
from finops.ingest.engine import IngestOptions, Watch, ingest_file
from finops.ingest.files import InputFile, discover, sniff
from finops.ingest.report import IngestReport
from finops.ingest.sources import SOURCES, get_adapter
from finops.store.db import Database

__all__ = ["FileOutcome", "IngestOptions", "IngestReport", "SOURCES", "ingest_paths", "sniff_for"]


@dataclass(frozen=True)
class FileOutcome:
    """A file's report, or the error that stopped that file (other files go on)."""

    path: Path
    report: IngestReport | None = None
    error: FinopsError | None = None


def sniff_for(path: Path, adapter: Adapter | None, name: str, what: str) -> tuple[InputFile, Adapter]:
    """The file at `path` and the adapter that reads it (`adapter`, else the one its shape names); a source
    that does not read the file's format is a `FileProblem` naming the file as `name` (its `what`: files, bodies)."""
    file = sniff(path)
    chosen = adapter or detect_source(file)
    if file.format not in chosen.formats:
        formats = ", ".join(sorted(f.value for f in chosen.formats))
        raise FileProblem(
            f"{name}: source {chosen.name} does not read {file.format.value} {what}; it reads {formats}.", path=name
        )
    return file, chosen


def ingest_paths(
    db: Database, paths: Iterable[str | Path], source: str, options: IngestOptions, *, watch: Watch | None = None
) -> Iterator[FileOutcome]:
    """Ingest every file under `paths` with `source` (or `auto`), one transaction per file."""
    adapter = None if source == "auto" else get_adapter(source)
    for path in discover(paths):
        try:
            file, chosen = sniff_for(path, adapter, str(path), "files")
            report = ingest_file(db, file, chosen, options, detected=adapter is None, watch=watch)
        except FinopsError as exc:
            yield FileOutcome(path, error=exc)
            continue
        yield FileOutcome(path, report=report)
