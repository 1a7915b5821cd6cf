"""The data behind a chart as CSV, exactly: DECIMAL dollars to their last digit, dates ISO, times UTC.

Text cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) get a
leading `'`: team and feature names come from logs, and finance opens these files in spreadsheets.
"""

from __future__ import annotations

import polars as pl

__all__ = ["csv_text", "display_frame"]

_FORMULA = r"^[=+\-@\t\r]"


def _cells(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text a person or a spreadsheet reads the same way: lists joined by spaces."""
    exprs = []
    for name, dtype in frame.schema.items():  # a loop over columns, not rows
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            exprs.append(col.cast(pl.List(pl.String)).list.join(" ").alias(name))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ").alias(name))
        elif dtype in (pl.String, pl.Categorical):
            text = col.cast(pl.String)
            exprs.append(pl.when(text.str.contains(_FORMULA)).then("'" + text).otherwise(text).alias(name))
        else:
            exprs.append(col)
    return frame.select(exprs)


def csv_text(frame: pl.DataFrame) -> str:
    """The frame as CSV with a header row; empty cells are NULLs (unknown, never 0)."""
    return _cells(frame).write_csv()


def display_frame(frame: pl.DataFrame, columns: tuple[tuple[str, str], ...]) -> pl.DataFrame:
    """The shown columns of a table as text: money exact without trailing zeros past the cents, times to
    the minute in UTC, NULL as an empty cell."""
    exprs = []
    for name, _heading in columns:
        dtype = frame.schema[name]
        col = pl.col(name)
        if isinstance(dtype, pl.Decimal):
            text = col.cast(pl.String).str.replace(r"(\.\d\d\d*?)0+$", "${1}")
        elif isinstance(dtype, pl.Datetime):
            text = col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M")
        else:
            text = col.cast(pl.String)
        exprs.append(text.fill_null("").alias(name))
    return frame.select(exprs)
