"""The measured steps of `bench.attribute`, each run alone in a fresh process by `bench.steps`.

attribute_job   the polars job of issue 3 (price join + ownership rules + daily rollup) on the usage
                of a database, against a plain DuckDB GROUP BY of the same rows, interleaved
pipeline_run    `finops.pipeline.run_once` on a database, with the wall time of each of its steps
"""

from __future__ import annotations

import resource
import time
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["attribute_job", "pipeline_run"]

# the rollup both sides compute: the dimensions of spend_daily, with its measures
_DAILY_KEYS = ("charge_day", "team", "feature", "price_model")
_GROUP_BY_SQL = """
    SELECT charge_day, team, feature, model, count(*) AS lines, sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens
    FROM usage_events GROUP BY ALL"""


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    result = fn()
    return result, time.perf_counter() - wall, _cpu() - cpu


def attribute_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Read the usage once (timed apart: I/O), then `repeat` x (job, group-by), interleaved."""
    import polars as pl

    from finops.attribute.tokens import needed_dimensions, token_spend
    from finops.pipeline import sync_configuration
    from finops.settings import load_settings
    from finops.store import spend as store
    from finops.store.db import connect

    settings = load_settings(db=Path(spec["db"]), memory_limit=spec["memory_limit"], threads=spec.get("threads"))
    with connect(settings) as db:
        sync_configuration(db, None, None)  # the catalog, as `finops run` loads it first
        text = needed_dimensions(store.read_rules(db))  # as `finops run` reads: only the text the job reads
        usage, read_s, read_cpu = _timed(
            lambda: store.read_usage(db, store.Watermark(0, None), datetime.fromisoformat(spec["as_of"]), text=text)
        )
        resolutions = store.resolutions_for(db, usage.dimensions)
        prices, discounts, rules = store.read_prices(db), store.read_discounts(db), store.read_rules(db)
        rss_with_usage = _rss_mb()

        def job() -> tuple[pl.DataFrame, pl.DataFrame]:
            lines = token_spend(
                usage.records.lazy(),
                resolutions.lazy(),
                prices.lazy(),
                discounts.lazy(),
                rules.lazy(),
                dimensions=usage.dimensions.lazy(),
            )
            daily = lines.group_by(*_DAILY_KEYS).agg(
                pl.len().alias("lines"), pl.col("list_cost_usd").sum(), pl.col("cost_usd").sum()
            )
            spend, rollup = pl.collect_all([lines, daily])
            return spend, rollup

        def group_by() -> list[tuple[Any, ...]]:
            return db.execute(_GROUP_BY_SQL)

        runs: list[dict[str, Any]] = []
        for r in range(spec["repeat"]):
            (lines, rollup), job_s, job_cpu = _timed(job)
            groups, gb_s, gb_cpu = _timed(group_by)
            runs.append(
                {
                    "repeat": r,
                    "job_seconds": job_s,
                    "job_cpu_seconds": job_cpu,
                    "group_by_seconds": gb_s,
                    "group_by_cpu_seconds": gb_cpu,
                    "lines": lines.height,
                    "rollup_rows": rollup.height,
                    "group_by_rows": len(groups),
                    "priced_total": str(lines["cost_usd"].sum()),
                }
            )
            del lines, rollup, groups
        return {
            "seconds": sum(r["job_seconds"] for r in runs),
            "rows": usage.height,
            "read_seconds": read_s,
            "read_cpu_seconds": read_cpu,
            "rss_with_usage_mb": rss_with_usage,
            "runs": runs,
        }


def pipeline_run(spec: dict[str, Any]) -> dict[str, Any]:
    """One `run_once` (connect to close), with its per-step seconds and what it rebuilt."""
    from finops.pipeline import run_once
    from finops.settings import load_settings
    from finops.store.db import connect

    settings = load_settings(db=Path(spec["db"]), memory_limit=spec["memory_limit"], threads=spec.get("threads"))
    started = time.perf_counter()
    with connect(settings) as db:
        summary = run_once(db, as_of=datetime.fromisoformat(spec["as_of"]), chunk_records=settings.run_chunk_records)
    seconds = time.perf_counter() - started
    data = summary.as_dict()
    return {
        "seconds": seconds,
        "rows": summary.priced_records + summary.unpriced_records,
        "steps": data["seconds"],
        "days_rebuilt": data["days_rebuilt"],
        "findings": summary.findings,
    }
