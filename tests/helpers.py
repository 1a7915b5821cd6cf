"""Small helpers shared by the tests: write an input file, ingest it, read a table back."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from finops.cli import main
from finops.ingest import IngestOptions, IngestReport, ingest_paths
from finops.store.db import Database


def write_file(directory: Path, name: str, content: str | bytes, *, gzipped: bool = False) -> Path:
    """Write `content` (text is written as UTF-8, exactly as given) to `directory/name`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def ingest_one(db: Database, path: Path, source: str, **options: Any) -> IngestReport:
    """Ingest one file and return its report; a file-level error is raised."""
    outcomes = list(ingest_paths(db, [path], source, IngestOptions(**options)))
    assert len(outcomes) == 1, outcomes
    if outcomes[0].error is not None:
        raise outcomes[0].error
    assert outcomes[0].report is not None
    return outcomes[0].report


def rows(db: Database, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Query results as dicts, for readable assertions."""
    cursor = db.con.execute(sql, params) if params else db.con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `finops ARGV...` in this process: its exit code, stdout and stderr."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
