"""Run one export: pick the rows, write them, and total them from the database for the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finops import __version__
from finops.export.request import ExportRequest
from finops.export.select import selection
from finops.export.write import Written, write_file, write_lake
from finops.store.db import Database

__all__ = ["ExportResult", "run_export"]


@dataclass(frozen=True)
class ExportResult:
    request: ExportRequest
    written: Written
    total_usd: Decimal  # the exported cost column's sum (cost_usd, or FOCUS BilledCost)
    unpriced_rows: int  # rows holding usage with no known price
    first_day: date | None
    last_day: date | None
    missing_teams: tuple[str, ...]  # --team values with no spend in the range


def run_export(db: Database, request: ExportRequest) -> ExportResult:
    """Write the export `request` describes; the database is only read."""
    chosen = selection(request.grain, request.spend_filter)
    # one transaction: the file and the totals below see the same snapshot
    with db.transaction():
        if request.partition_by_day:
            manifest = {
                "format": "finops-lake",
                "grain": request.grain,
                "teams": sorted(request.spend_filter.teams) or None,
                "written_by": f"finops {__version__}",
            }
            written = write_lake(db, chosen, request.out, manifest=manifest, spend_filter=request.spend_filter)
        else:
            written = write_file(db, chosen, request.out, file_format=request.file_format, overwrite=request.overwrite)
        total, unpriced = db.fetchone(
            f"SELECT sum({chosen.cost_column}), count(*) FILTER ({chosen.unpriced_sql}) FROM ({chosen.unordered_sql})",
            chosen.params,
        ) or (None, 0)
        where, params = request.spend_filter.where()
        first, last = db.fetchone(f"SELECT min(charge_day), max(charge_day) FROM spend WHERE {where}", params) or (
            None,
            None,
        )
        present = {row[0] for row in db.execute(f"SELECT DISTINCT team FROM spend WHERE {where}", params)}
    return ExportResult(
        request=request,
        written=written,
        total_usd=total if total is not None else Decimal(0),
        unpriced_rows=int(unpriced or 0),
        first_day=first,
        last_day=last,
        missing_teams=tuple(t for t in request.spend_filter.teams if t not in present),
    )
