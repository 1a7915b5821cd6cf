"""The pricing and attribution benchmark of issue 3.

    python -m bench.attribute [--rows 10000000] [--new-rows 100000] [--repeat 3] [--out bench/out]

On a database holding `--rows` generated gateway records (30 UTC days, built once and cached):

  (j) the polars job: price join + ownership rules + daily rollup (`token_spend` and a group-by of its
      lines per day/team/feature/provider/model), on the usage already in memory;
  (g) a plain DuckDB `GROUP BY` of the same rows and dimensions, in the same process, interleaved with
      (j) (j, g, j, g ...) so that a change of load hits both;
  (r) the first `finops run` over everything (per-step seconds: read, price/attribute, write, rollups,
      detection ...);
  (i) the incremental case: `--new-rows` records of one new day ingested into the run database, then
      `finops run` again (from a fresh copy each repeat): which days it rebuilt, and each step's time.

Targets (issue 3): (j) <= 3 s and <= 2x (g) at 10M rows, peak memory <= 3 GB; (i) touches only the new
day and its pricing steps take well under a second. Each step runs in its own process (`bench.steps`),
its peak RSS read from `os.wait4`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.ingest import REPO, DataSet, _copy_db, _fresh, machine, prepare, run_step

TARGET_JOB_SECONDS = 3.0
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 3_000
# the steps of `run_once` that price and attribute (detection, forecasts and alerts are timed apart)
PRICING_STEPS = ("configuration", "read_usage", "price_attribute", "write_lines", "gpu_and_bills", "daily_rollup")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.attribute", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="records in the database")
    p.add_argument("--new-rows", type=int, default=100_000, help="records of the incremental run")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="cached files and results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--teams", type=int, default=30)
    p.add_argument("--memory-limit", default=None, help="DuckDB memory limit (default: finops')")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    return p


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from finops.settings import load_settings

    settings = load_settings()
    common = {"memory_limit": args.memory_limit or settings.memory_limit, "threads": args.threads}
    chunk_records = settings.run_chunk_records
    data, work = args.out / "data", args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 10, 1, tzinfo=UTC)
    as_of = start + timedelta(days=args.days + 2)
    base_set = DataSet(args.rows, args.seed, start, args.days, args.teams, "gateway")
    new_set = DataSet(args.new_rows, args.seed + 1_000, start + timedelta(days=args.days), 1, args.teams, "gateway-new")
    base_file = prepare(base_set, ["parquet"], data)["parquet"]
    new_file = prepare(new_set, ["parquet"], data)["parquet"]
    before = machine()

    ingested = work / f"attribute-ingested-{base_file.stem}-{_schema_tag()}.duckdb"
    if not ingested.exists():
        print(f"ingesting {args.rows:,} rows (once; cached as {ingested.name})", flush=True)
        _step({"step": "finops_ingest", "file": str(base_file), "db": str(_fresh(work / "tmp.duckdb")), **common})
        (work / "tmp.duckdb").rename(ingested)

    print(f"\n(j) job vs (g) DuckDB GROUP BY, {args.repeat} interleaved runs", flush=True)
    job_db = _copy_db(ingested, work / "attribute-job.duckdb")
    job, job_peak = _step({"step": "attribute_job", "db": str(job_db), "as_of": as_of.isoformat(),
                           "repeat": args.repeat, **common})  # fmt: skip
    for r in job["runs"]:
        print(f"  run {r['repeat'] + 1}: job {r['job_seconds']:.2f} s (cpu {r['job_cpu_seconds']:.2f}), "
              f"group-by {r['group_by_seconds']:.2f} s (cpu {r['group_by_cpu_seconds']:.2f})", flush=True)  # fmt: skip

    print("\n(r) the first finops run over everything", flush=True)
    ran = _copy_db(ingested, work / "attribute-ran.duckdb")
    first, first_peak = _step({"step": "pipeline_run", "db": str(ran), "as_of": as_of.isoformat(), **common})
    print(f"  {first['seconds']:.1f} s, peak {first_peak:.0f} MB: {first['steps']}", flush=True)

    print(f"\n(i) {args.new_rows:,} new rows, then finops run, {args.repeat} times", flush=True)
    incremental = []
    for r in range(args.repeat):
        db = _copy_db(ran, work / "attribute-incremental.duckdb")
        _step({"step": "finops_ingest", "file": str(new_file), "db": str(db), **common})
        result, peak = _step({"step": "pipeline_run", "db": str(db), "as_of": as_of.isoformat(), **common})
        pricing = sum(result["steps"].get(s, 0.0) for s in PRICING_STEPS)
        incremental.append({**result, "peak_mb": peak, "pricing_seconds": pricing})
        print(f"  run {r + 1}: {result['seconds']:.2f} s in all, pricing steps {pricing:.2f} s, days rebuilt "
              f"{result['days_rebuilt']}: {result['steps']}", flush=True)  # fmt: skip
    for p in (work / "attribute-incremental.duckdb", ran, job_db):
        _fresh(p)

    return {
        "started": before["time"],
        "machine_before": before,
        "machine_after": machine(),
        "params": {
            "rows": args.rows,
            "new_rows": args.new_rows,
            "repeat": args.repeat,
            "seed": args.seed,
            "days": args.days,
            "teams": args.teams,
            "chunk_records": chunk_records,
            **common,
        },  # fmt: skip
        "job": {**job, "peak_mb": job_peak},
        "first_run": {**first, "peak_mb": first_peak},
        "incremental": incremental,
    }


def _schema_tag() -> str:
    """A short digest of finops' table definitions: a cached database built under other ones is not reused
    (how columns are stored changes what a run costs)."""
    from finops.store.queries import schema_scripts

    text = "\n".join(sql for _, sql in schema_scripts())
    return "schema-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def _step(spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    return run_step(spec)


def render(results: dict[str, Any]) -> str:
    """The results as markdown, with the targets."""
    before, after, p = results["machine_before"], results["machine_after"], results["params"]
    job = results["job"]
    med = {k: statistics.median(r[k] for r in job["runs"]) for k in job["runs"][0] if k.endswith("seconds")}
    ratio = med["job_seconds"] / med["group_by_seconds"]
    inc = results["incremental"]
    inc_pricing = statistics.median(r["pricing_seconds"] for r in inc)
    inc_total = statistics.median(r["seconds"] for r in inc)
    days = sorted({d for r in inc for d in r["days_rebuilt"]})

    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    lines = [
        f"# finops pricing and attribution benchmark, {results['started']}",
        "",
        f"- machine: {before['cores']} cores ({before['usable_cores']} usable), {before['ram_gib']} GiB RAM, "
        f"{before['platform']}",
        f"- load average (1/5/15 min): {'/'.join(map(str, before['loadavg']))} before, "
        f"{'/'.join(map(str, after['loadavg']))} after",
        f"- python {before['python']}, duckdb {before['duckdb']}, polars {before['polars']}; finops {before['commit']}",
        f"- {p['rows']:,} usage records over {p['days']} days (`finops.synth.gateway`, seed {p['seed']}); "
        f"medians of {p['repeat']} interleaved runs",
        "",
        "| measurement | wall | CPU | target |",
        "|---|---|---|---|",
        f"| (j) polars job: price join + ownership rules + daily rollup | {med['job_seconds']:.2f} s | "
        f"{med['job_cpu_seconds']:.2f} s | ≤ {TARGET_JOB_SECONDS:.0f} s "
        f"{mark(med['job_seconds'] <= TARGET_JOB_SECONDS)} |",
        f"| (g) DuckDB `GROUP BY` of the same rows | {med['group_by_seconds']:.2f} s | "
        f"{med['group_by_cpu_seconds']:.2f} s | |",
        f"| (j) / (g) | {ratio:.2f}× | | ≤ {TARGET_RATIO:.0f}× {mark(ratio <= TARGET_RATIO)} |",
        f"| peak RSS of the job's process (usage in memory: {job['rss_with_usage_mb']:,.0f} MB) | "
        f"{job['peak_mb']:,.0f} MB | | ≤ {TARGET_PEAK_MB:,} MB {mark(job['peak_mb'] <= TARGET_PEAK_MB)} |",
        f"| reading the usage from DuckDB into polars (not in (j)) | {job['read_seconds']:.2f} s | "
        f"{job['read_cpu_seconds']:.2f} s | |",
        f"| (r) first `finops run` over everything | {results['first_run']['seconds']:.1f} s | | |",
        f"| (r) peak RSS of the first run (`FINOPS_RUN_CHUNK_RECORDS` {p['chunk_records']:,}) | "
        f"{results['first_run']['peak_mb']:,.0f} MB | | |",
        f"| (i) incremental `finops run`, pricing steps | {inc_pricing:.2f} s | | < 1 s {mark(inc_pricing < 1)} |",
        f"| (i) incremental `finops run`, all steps | {inc_total:.2f} s | | |",
        "",
        f"Incremental runs rebuilt the days {days} (the UTC days the new records fall on).",
        "",
        "Per-step seconds of the first run: "
        + ", ".join(f"{k} {v:.2f}" for k, v in results["first_run"]["steps"].items()),
        "",
        "Per-step seconds of the incremental runs (median): "
        + ", ".join(f"{k} {statistics.median(r['steps'].get(k, 0) for r in inc):.2f}" for k in inc[0]["steps"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results = benchmark(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attribute-results.json").write_text(json.dumps(results, indent=2, default=str))
    text = render(results)
    (args.out / "attribute-results.md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
