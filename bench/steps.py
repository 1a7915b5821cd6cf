"""One step of the ingest benchmark, run alone in a fresh process: `python -m bench.steps SPEC_JSON RESULT_PATH`.

Each measured step runs in its own process so that its peak memory can be read from `os.wait4` by
the parent and one step's caches and allocator state never flatter or burden the next. This module
times the step (connect to close, so a checkpoint on close is counted; wall and CPU time) and writes
a JSON result.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "main", "reader_sql"]

# The canonical record typed as a careful plain loader would type it. JSONL and CSV are read with this
# explicit map rather than auto-detection: detection samples the file and would type `status` as
# BIGINT when its sample holds no "timeout", then fail on the first one further down.
COLUMNS = {
    "request_id": "VARCHAR",
    "ts": "TIMESTAMPTZ",
    "model": "VARCHAR",
    "provider": "VARCHAR",
    "input_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "cache_write_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT",
    "team": "VARCHAR",
    "feature": "VARCHAR",
    "project": "VARCHAR",
    "user": "VARCHAR",
    "environment": "VARCHAR",
    "api_key": "VARCHAR",
    "tags": "JSON",
    "trace_id": "VARCHAR",
    "attempt": "INTEGER",
    "status": "VARCHAR",
    "prompt_hash": "VARCHAR",
    "service_tier": "VARCHAR",
    "latency_ms": "BIGINT",
    "cost_usd": "DECIMAL(18,12)",
}


def reader_sql(fmt: str) -> str:
    """DuckDB's reader of a generated file, with `$file` (and `$columns` for text formats) as parameters."""
    if fmt == "parquet":
        return "read_parquet($file)"
    if fmt.startswith("jsonl"):
        return "read_json($file, format = 'newline_delimited', columns = $columns)"
    if fmt.startswith("csv"):
        return "read_csv($file, header = true, columns = $columns)"
    raise ValueError(f"unknown format {fmt}")


def _params(fmt: str, file: str) -> dict[str, Any]:
    return {"file": file} if fmt == "parquet" else {"file": file, "columns": COLUMNS}


def _config(spec: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"memory_limit": spec["memory_limit"]}
    if spec.get("threads"):
        config["threads"] = spec["threads"]
    return config


def raw_read(spec: dict[str, Any]) -> dict[str, Any]:
    """(a) The decode limit: every value of every column read, nothing written."""
    import duckdb

    con = duckdb.connect(config=_config(spec))
    # `count(*)` alone is answered from Parquet metadata (EXPLAIN ANALYZE: 16 kB read for a 50k-row
    # file) and lets the JSON reader skip values. A hash over all columns (`*COLUMNS(*)` passes every
    # column to one call) forces DuckDB to decode every value of every column; the hash itself is
    # cheap next to decoding and costs the same for every format.
    sql = f"SELECT count(hash(*COLUMNS(*))) FROM {reader_sql(spec['format'])}"
    started = time.perf_counter()
    rows = con.execute(sql, _params(spec["format"], spec["file"])).fetchall()[0][0]
    seconds = time.perf_counter() - started
    con.close()
    return {"seconds": seconds, "rows": rows}


def plain_insert(spec: dict[str, Any]) -> dict[str, Any]:
    """(b) The practical limit of writing these rows: `CREATE TABLE t AS SELECT *` into a fresh file."""
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(spec["db"], config=_config(spec))
    con.execute(f"CREATE TABLE t AS SELECT * FROM {reader_sql(spec['format'])}", _params(spec["format"], spec["file"]))
    rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    con.close()
    return {"seconds": time.perf_counter() - started, "rows": rows}


def finops_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """(c) finops end to end: stage, check, rejects, dedup, insert, batch record, one transaction."""
    from finops.ingest import IngestOptions, ingest_paths
    from finops.settings import load_settings
    from finops.store.db import connect

    settings = load_settings(db=Path(spec["db"]), memory_limit=spec["memory_limit"], threads=spec.get("threads"))
    started = time.perf_counter()
    with connect(settings) as db:
        opened = time.perf_counter()
        outcomes = list(ingest_paths(db, [spec["file"]], "gateway", IngestOptions()))
        ingested = time.perf_counter()
    seconds = time.perf_counter() - started
    (outcome,) = outcomes
    if outcome.error is not None:
        raise outcome.error
    assert outcome.report is not None
    report = outcome.report.as_dict()
    report.pop("samples")
    return {
        "seconds": seconds,
        "rows": report["lines"],
        "open_seconds": opened - started,
        "ingest_seconds": ingested - opened,
        "close_seconds": seconds - (ingested - started),
        "report": report,
    }


def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """Generate one data set and write it in each requested format (not measured against targets)."""
    from datetime import datetime

    from finops.synth.gateway import generate_gateway, write

    started = time.perf_counter()
    df = generate_gateway(
        spec["rows"],
        seed=spec["seed"],
        start=datetime.fromisoformat(spec["start"]),
        days=spec["days"],
        teams=spec["teams"],
    )
    result: dict[str, Any] = {"generate_seconds": time.perf_counter() - started, "rows": df.height, "write": {}}
    for fmt, path in spec["files"]:
        began = time.perf_counter()
        write(df, path)
        result["write"][fmt] = time.perf_counter() - began
    result["seconds"] = time.perf_counter() - started
    return result


STEPS = {"raw_read": raw_read, "plain_insert": plain_insert, "finops_ingest": finops_ingest, "generate": generate}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process, DuckDB's included
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    spec_json, result_path = argv if argv is not None else sys.argv[1:]
    spec = json.loads(spec_json)
    cpu = _cpu()
    if spec["step"] in STEPS:
        step = STEPS[spec["step"]]
    else:  # the steps of the other benchmarks
        from bench import attribute_steps

        step = getattr(attribute_steps, spec["step"])
    result = step(spec)
    # CPU time of the step (imports excluded): less sensitive to neighbours than wall time
    result["cpu_seconds"] = _cpu() - cpu
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
