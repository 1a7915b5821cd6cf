"""Helpers to look at the head of a file for `--source auto` (the first records only)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from finops.ingest.files import Format, InputFile
from finops.ingest.readers import header_delimiter

__all__ = ["first_records", "header"]


def first_records(file: InputFile, limit: int = 20) -> list[Any]:
    """Up to `limit` parsed JSON values from the head: lines of JSONL, or the document's top level."""
    text = file.head_text()
    if file.format is Format.JSONL:
        out = []
        for line in text.splitlines()[:limit]:
            try:
                out.append(json.loads(line))
            except (ValueError, RecursionError):  # deeper than Python parses
                continue
        return out
    if file.format is Format.JSON:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return []
        return doc[:limit] if isinstance(doc, list) else [doc]
    return []


def header(file: InputFile) -> list[str]:
    """Column names of a CSV file (from its first line) or a Parquet file (from its schema)."""
    if file.format is Format.CSV:
        first = file.head_text().splitlines()[:1]
        if not first:
            return []
        # the delimiter the reader will use (a comma, a tab, a semicolon or a pipe)
        return next(csv.reader(io.StringIO(first[0]), delimiter=header_delimiter(file)), [])
    if file.format is Format.PARQUET:
        import pyarrow.parquet as pq

        return list(pq.read_schema(file.path).names)
    return []
