"""Where the time of one finops ingest goes: per SQL statement, per engine phase, per operator of the stage.

    python -m bench.profile_ingest FILE [--db PATH] [--source gateway] [--top 12]

Wraps (in this process only, without changing the engine) `Database.execute` to time every
statement, the phases of `finops.ingest.engine.ingest_file` (open, stage, rejects, load, batch), and
turns on DuckDB's JSON profiling for the statement that builds `_stage`, whose busiest operators are
listed with the busiest operators of the slowest statements. Profiling costs a little; run it on a
quiet machine; the shares matter more than the absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PHASES = ("open_input", "_stage", "_set_rejects_aside", "_load", "_record_batch")


def _operators(node: dict[str, Any], depth: int = 0) -> Iterator[tuple[float, int, str, str]]:
    """(seconds, depth, operator, detail) for every node of a DuckDB JSON profile (DuckDB 2 layout)."""
    extra = node.get("extra_info") or {}
    detail = ""
    for key in ("Projections", "Expressions", "Function", "Aggregates", "Join Type", "Table"):
        if key in extra:
            value = extra[key]
            detail = f"{key}: {len(value)}" if isinstance(value, list) else f"{key}: {str(value)[:50]}"
            break
    yield float(node.get("timing", 0.0)), depth, str(node.get("type", "?")), " ".join(detail.split())
    for child in node.get("children", []):
        yield from _operators(child, depth + 1)


def profile(file: Path, db_path: Path, source: str, keep: int) -> dict[str, Any]:
    """Ingest `file` once, timing every statement and phase; DuckDB profiles of the `keep` slowest statements."""
    from finops.ingest import IngestOptions, engine, ingest_paths
    from finops.settings import load_settings
    from finops.store.db import Database, connect

    statements: list[tuple[str, float, Path]] = []
    phases: dict[str, float] = {}
    original_execute = Database.execute

    def execute(self: Database, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        output = profiles / f"{len(statements)}.json"
        self.con.execute("SET enable_profiling = 'json'")
        self.con.execute(f"SET profiling_output = '{output}'")
        started = time.perf_counter()
        try:
            return original_execute(self, sql, params)
        finally:
            seconds = time.perf_counter() - started
            self.con.execute("SET enable_profiling = 'no_output'")
            statements.append((" ".join(sql.split())[:100], seconds, output))

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    with contextlib.ExitStack() as stack:
        profiles = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="finops-profile-")))
        stack.callback(setattr, Database, "execute", original_execute)
        stack.callback(setattr, Database, "fetchall", original_execute)
        Database.execute = execute  # type: ignore[method-assign]
        Database.fetchall = execute
        for name in PHASES:
            stack.callback(setattr, engine, name, getattr(engine, name))
            setattr(engine, name, timed(name, getattr(engine, name)))
        started = time.perf_counter()
        with connect(load_settings(db=db_path)) as db:
            opened = time.perf_counter()
            (outcome,) = list(ingest_paths(db, [file], source, IngestOptions()))
            ingested = time.perf_counter()
        total = time.perf_counter() - started
        detailed = []
        for sql, seconds, output in sorted(statements, key=lambda s: -s[1])[:keep]:
            tree = json.loads(output.read_text()) if output.exists() else {}
            ops = [op for root in tree.get("operator", []) for op in _operators(root)]
            memory = tree.get("system", {}).get("peak_buffer_memory", 0)
            detailed.append({"sql": sql, "seconds": seconds, "peak_buffer_mb": memory / 1e6, "operators": ops})
    if outcome.error is not None:
        raise outcome.error
    return {
        "report": outcome.report.summary() if outcome.report else None,
        "total_seconds": total,
        "connect_seconds": opened - started,
        "ingest_seconds": ingested - opened,
        "phases": phases,
        "statements": [(sql, seconds) for sql, seconds, _ in statements],
        "slowest": detailed,
    }


def render(result: dict[str, Any], top: int) -> str:
    ingest = result["ingest_seconds"]
    lines = [
        f"{result['report']}",
        f"total {result['total_seconds']:.2f} s (connect + schema {result['connect_seconds']:.2f} s, "
        f"ingest {ingest:.2f} s, close {result['total_seconds'] - result['connect_seconds'] - ingest:.2f} s)",
        "",
        "phases of ingest_file:",
    ]
    for name, seconds in result["phases"].items():
        lines.append(f"  {name:<20} {seconds:7.2f} s  {100 * seconds / ingest:5.1f} %")
    lines += ["", f"statements over 1 % of the ingest ({len(result['statements'])} in all):"]
    for sql, seconds in result["statements"]:
        if seconds > 0.01 * ingest:
            lines.append(f"  {seconds:7.2f} s  {sql}")
    for statement in result["slowest"]:
        lines += [
            "",
            f"{statement['seconds']:.2f} s, peak buffer {statement['peak_buffer_mb']:,.0f} MB: {statement['sql']}",
        ]
        busiest = sorted(statement["operators"], reverse=True)[:top]
        for seconds, depth, name, detail in sorted(busiest, key=lambda op: statement["operators"].index(op)):
            lines.append(f"  {seconds:7.2f} s  {'  ' * min(depth, 8)}{name}  {detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--db", type=Path, default=None, help="database to ingest into (default: a fresh temporary one)")
    p.add_argument("--source", default="gateway")
    p.add_argument("--top", type=int, default=8, help="operators shown per profiled statement")
    p.add_argument("--keep", type=int, default=2, help="slowest statements whose DuckDB profile is shown")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="finops-profile-") as tmp:
        result = profile(args.file, args.db or Path(tmp) / "profile.duckdb", args.source, args.keep)
    print(render(result, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
