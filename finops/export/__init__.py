"""Exports: attributed spend out of DuckDB as CSV, Parquet (a file or a day-partitioned lake) or FOCUS 1.2.

    spend / spend_daily --select.py--> COPY (SELECT ...) TO --write.py--> file, or lake/charge_day=YYYY-MM-DD/
    spend --focus.py--> FOCUS 1.2 rows (checked by conformance.py against the FOCUS validator's rules)

`finops export` (finops/cli/export.py) parses its options with `parse_request` and calls `run_export`.
"""

from __future__ import annotations

from finops.export.focus import DECLARED_APPLICABILITY, FOCUS_EXPORT_COLUMNS, X_COLUMNS
from finops.export.request import FORMATS, GRAINS, ExportRequest, parse_request
from finops.export.run import ExportResult, run_export
from finops.export.select import SpendFilter
from finops.export.write import LAKE_MANIFEST

__all__ = [
    "DECLARED_APPLICABILITY",
    "FOCUS_EXPORT_COLUMNS",
    "FORMATS",
    "GRAINS",
    "LAKE_MANIFEST",
    "X_COLUMNS",
    "ExportRequest",
    "ExportResult",
    "SpendFilter",
    "parse_request",
    "run_export",
]
