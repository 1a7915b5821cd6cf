"""Stage 1: raw logs and provider exports -> `usage_events`, `gpu_jobs`, `gpu_capacity`, `provider_costs`.

Every line of every file ends up somewhere: a table row, a duplicate, or a `rejected_usage` row.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from finops.errors import FileProblem, FinopsError, InputError
from finops.ingest.adapter import Adapter
from finops.ingest.auto import detect_source
from finops.ingest.engine import IngestOptions, Watch, ingest_file
from finops.ingest.files import Format, InputFile, discover, sniff
from finops.ingest.report import IngestReport
from finops.ingest.sources import SOURCES, get_adapter
from finops.store.db import Database

__all__ = ["FileOutcome", "IngestOptions", "IngestReport", "SOURCES", "ingest_paths", "parse_fx_rates", "sniff_for"]


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
    if file.format is not Format.PARQUET and _utf16(file.head):
        raise FileProblem(
            f"{name}: the {what[:-1] if what.endswith('s') else what} is UTF-16 text (as Windows PowerShell and "
            "Excel's 'Unicode Text' write it); expected UTF-8. Nothing of it was read: convert it (iconv -f UTF-16 "
            "-t UTF-8) and ingest it again.",
            path=name,
        )
    chosen = adapter or detect_source(file)
    if file.format not in chosen.formats:
        formats = ", ".join(sorted(f.value for f in chosen.formats))
        raise FileProblem(
            f"{name}: source {chosen.name} does not read {file.format.value} {what}; it reads {formats}.", path=name
        )
    return file, chosen


def _utf16(head: bytes) -> bool:
    """Whether text starts as UTF-16 does: its byte-order mark, or (without one) a NUL after or before each of
    its first ASCII characters. Read as UTF-8, every line of it would be a bad-encoding reject."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    sample = head[:64]
    return len(sample) >= 8 and (not any(sample[1::2]) or not any(sample[0::2]))


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


def parse_fx_rates(values: Iterable[str], flag: str) -> dict[str, Decimal]:
    """`CODE=RATE` values (USD per unit of the currency) as given with `flag` (`--fx-rate`, `fx_rate`); a value
    that is not one, or has more than 8 decimal places (DECIMAL(18,8) would round it), is an `InputError`."""
    rates: dict[str, Decimal] = {}
    for value in values:
        code, _, rate = value.partition("=")
        try:
            parsed = Decimal(rate)
        except InvalidOperation:
            parsed = Decimal("NaN")
        if not code.strip().isalpha() or len(code.strip()) != 3 or not parsed.is_finite() or parsed <= 0:
            raise InputError(f"{flag} '{value}' is not CODE=RATE; expected e.g. EUR=1.08 (USD per unit).")
        if parsed.as_tuple().exponent < -8 and parsed != parsed.quantize(Decimal("1e-8")):  # type: ignore[operator]
            raise InputError(
                f"{flag} '{value}' has more than 8 decimal places; expected a rate of at most 8, "
                "e.g. EUR=1.08375 (USD per unit)."
            )
        rates[code.strip().upper()] = parsed
    return rates
