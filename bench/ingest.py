"""The ingest benchmark of issue 2: finops ingest against the raw read and the plain insert, in one run.

    python -m bench.ingest [--rows 1000000 10000000] [--formats parquet jsonl] [--out bench/out]

For each size and format: (a) the raw read limit (every column of the file decoded), (b) a plain
`CREATE TABLE t AS SELECT *` into a fresh DuckDB file, (c) `finops.ingest.ingest_paths` into a fresh
DuckDB file; then the incremental case (new rows into the largest database vs into an empty one, and
a re-ingest that is all duplicates). Every measured step runs in its own process (`bench.steps`), its
peak RSS read from `os.wait4`; the repeats are interleaved (a, b, c, a, b, c ...) so a change in the
machine's load hits all three alike, and medians are reported. Generated files are cached in `--out`.
Targets (issue 2): (c) <= 1.5 x (b); incremental <= 2 x into-empty; peak RSS of (c) < 4 GB at 10M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("parquet", "jsonl", "jsonl.gz", "csv")
TARGET_INSERT_RATIO = 1.5
TARGET_INCREMENTAL_RATIO = 2.0
TARGET_PEAK_MB = 4_000


@dataclass
class Run:
    """One measured step: what ran, how long it took, and the peak RSS of its process."""

    kind: str
    rows: int
    format: str
    repeat: int
    seconds: float
    cpu_seconds: float
    peak_mb: float
    load_before: float
    load_after: float
    detail: dict[str, Any] = field(default_factory=dict)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="file sizes (rows)")
    p.add_argument("--formats", nargs="+", default=["parquet", "jsonl"], choices=FORMATS)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="cached files and results")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    p.add_argument(
        "--incremental-rows", type=int, default=100_000, help="new rows (capped at a tenth of the largest size)"
    )
    p.add_argument(
        "--incremental-repeat", type=int, default=None, help="runs per incremental measurement (default: --repeat)"
    )
    p.add_argument(
        "--base-db",
        type=Path,
        default=None,
        help="an existing finops database of the largest size (copied, never changed): skip the whole-file "
        "runs and measure only the incremental case against it",
    )
    p.add_argument("--render", type=Path, default=None, help="print the markdown of an earlier results JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--teams", type=int, default=30)
    p.add_argument("--memory-limit", default=None, help="DuckDB memory limit for (b) and (c) (default: finops')")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads for all steps (default: all cores)")
    return p


# ------------------------------------------------------------------------------------------ running


def _load1() -> float:
    return os.getloadavg()[0]


def run_step(spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Run one step in a child process; returns its result and its peak RSS in MB (from `os.wait4`)."""
    with tempfile.TemporaryDirectory(prefix="finops-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.steps", json.dumps(spec), str(result_path)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        _, status, usage = os.wait4(child.pid, 0)  # rusage of this child alone
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"benchmark step failed (exit {child.returncode}): {spec}")
        return json.loads(result_path.read_text()), usage.ru_maxrss * 1024 / 1e6  # KiB on Linux


def measure(kind: str, rows: int, fmt: str, repeat: int, spec: dict[str, Any], runs: list[Run]) -> Run:
    """Run step `kind` (the incremental kinds are finops ingests) and record it in `runs`."""
    before = _load1()
    step = kind if kind in ("raw_read", "plain_insert") else "finops_ingest"
    result, peak = run_step({"step": step, "format": fmt, **spec})
    seconds, cpu = result.pop("seconds"), result.pop("cpu_seconds")
    run = Run(kind, rows, fmt, repeat, seconds, cpu, peak, before, _load1(), result)
    if kind in ("raw_read", "plain_insert") and result["rows"] != rows:
        raise RuntimeError(f"{kind} {fmt} read {result['rows']:,} rows of {rows:,}")
    runs.append(run)
    label = f"{kind:<15} {fmt:<8} {rows:>11,} rows  run {repeat + 1}"
    print(f"  {label}: {seconds:7.2f} s  (cpu {cpu:6.2f} s)  {peak:6.0f} MB", flush=True)
    return run


def _fresh(path: Path) -> Path:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    return path


def _copy_db(source: Path, target: Path) -> Path:
    """Copy a database and flush the copy to disk: otherwise the measured step's first fsync (its commit)
    writes the whole freshly copied file, a second or more for 1 GB, which a database that has been
    on disk for a while never pays."""
    shutil.copyfile(source, _fresh(target))
    with target.open("rb+") as fh:
        os.fsync(fh.fileno())
    return target


def _warm(path: Path) -> None:
    """Read the file once so every run starts from the page cache, the first included."""
    with path.open("rb") as fh:
        while fh.read(16 << 20):
            pass


# ------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class DataSet:
    rows: int
    seed: int
    start: datetime
    days: int
    teams: int
    name: str

    def path(self, data: Path, fmt: str) -> Path:
        from finops.synth.gateway import GENERATOR_VERSION

        tag = f"r{self.rows}-s{self.seed}-{self.start:%Y%m%d}-d{self.days}-t{self.teams}-v{GENERATOR_VERSION}"
        return data / f"{self.name}-{tag}.{fmt}"


def prepare(data_set: DataSet, formats: Iterable[str], data: Path) -> dict[str, Path]:
    """Generate the files that are missing (in a child process, which frees its memory on exit)."""
    data.mkdir(parents=True, exist_ok=True)
    paths = {fmt: data_set.path(data, fmt) for fmt in formats}
    missing = [(fmt, str(p)) for fmt, p in paths.items() if not p.exists()]
    if missing:
        print(f"generating {data_set.rows:,} rows -> {', '.join(f for f, _ in missing)}", flush=True)
        spec = {
            "step": "generate",
            "rows": data_set.rows,
            "seed": data_set.seed,
            "start": data_set.start.isoformat(),
            "days": data_set.days,
            "teams": data_set.teams,
            "files": missing,
        }
        result, peak = run_step(spec)
        print(f"  generated in {result['generate_seconds']:.1f} s, peak {peak:.0f} MB; written in "
              + ", ".join(f"{f} {s:.1f} s" for f, s in result["write"].items()), flush=True)  # fmt: skip
    return paths


# --------------------------------------------------------------------------------------- benchmark


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from finops.settings import load_settings

    settings = load_settings()
    memory_limit = args.memory_limit or settings.memory_limit
    threads = args.threads or settings.threads
    out: Path = args.out
    data, work = out / "data", out / "work"
    work.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 10, 1, tzinfo=UTC)
    sizes = sorted(set(args.rows))
    largest = sizes[-1]
    new_rows = max(1, min(args.incremental_rows, largest // 10))
    machine_before = machine()
    runs: list[Run] = []
    files: dict[tuple[int, str], Path] = {}
    for rows in sizes:
        paths = prepare(DataSet(rows, args.seed, start, args.days, args.teams, "gateway"), args.formats, data)
        files.update({(rows, fmt): p for fmt, p in paths.items()})
    new_set = DataSet(new_rows, args.seed + 1_000, start + timedelta(days=args.days), 1, args.teams, "gateway-new")
    new_files = prepare(new_set, args.formats, data)
    common = {"memory_limit": memory_limit, "threads": threads}

    print(f"\nmeasuring ({args.repeat} runs each, interleaved)", flush=True)
    base_dbs: dict[str, Path] = {}
    for rows in sizes if args.base_db is None else ():
        for fmt in args.formats:
            file = files[(rows, fmt)]
            _warm(file)
            for r in range(args.repeat):
                measure("raw_read", rows, fmt, r, {**common, "file": str(file)}, runs)
                db = _fresh(work / "plain.duckdb")
                measure("plain_insert", rows, fmt, r, {**common, "file": str(file), "db": str(db)}, runs)
                _fresh(db)
                db = _fresh(work / f"finops-{fmt}.duckdb")
                run = measure("finops_ingest", rows, fmt, r, {**common, "file": str(file), "db": str(db)}, runs)
                _check(run, accepted=rows)
            if rows == largest:
                base_dbs[fmt] = work / f"finops-{fmt}.duckdb"  # the last run's database
            else:
                _fresh(work / f"finops-{fmt}.duckdb")

    if args.base_db is not None:
        base_dbs = dict.fromkeys(args.formats, args.base_db)
    incremental_repeat = args.incremental_repeat or args.repeat
    print(f"\nincremental: {new_rows:,} new rows into {largest:,}", flush=True)
    for fmt in args.formats:
        file = new_files[fmt]
        _warm(file)
        grown = work / f"grown-{fmt}.duckdb"
        for r in range(incremental_repeat):
            db = _fresh(work / "empty.duckdb")
            run = measure("into_empty", new_rows, fmt, r, {**common, "file": str(file), "db": str(db)}, runs)
            _check(run, accepted=new_rows)
            db = _copy_db(base_dbs[fmt], work / "base-copy.duckdb")
            run = measure("into_base", new_rows, fmt, r, {**common, "file": str(file), "db": str(db)}, runs)
            _check(run, accepted=new_rows)
            if r == 0:
                shutil.move(db, grown)
            db = _copy_db(grown, work / "grown-copy.duckdb")
            run = measure("reingest", new_rows, fmt, r, {**common, "file": str(file), "db": str(db)}, runs)
            _check(run, accepted=0, duplicates=new_rows)
        for p in (grown, work / "empty.duckdb", work / "base-copy.duckdb", work / "grown-copy.duckdb"):
            _fresh(p)
    if args.base_db is None:
        for p in base_dbs.values():
            _fresh(p)

    return {
        "started": machine_before["time"],
        "machine_before": machine_before,
        "machine_after": machine(),
        "params": {
            "rows": sizes,
            "formats": args.formats,
            "repeat": args.repeat,
            "incremental_rows": new_rows,
            "incremental_repeat": incremental_repeat,
            "base_db": str(args.base_db) if args.base_db else None,
            "seed": args.seed,
            "days": args.days,
            "teams": args.teams,
            "memory_limit": memory_limit,
            "threads": threads,
            "files": {f"{r}/{f}": {"path": str(p), "bytes": p.stat().st_size} for (r, f), p in files.items()},
            "new_files": {f: {"path": str(p), "bytes": p.stat().st_size} for f, p in new_files.items()},
        },
        "runs": [vars(r) for r in runs],
    }


def _check(run: Run, *, accepted: int, duplicates: int = 0) -> None:
    report = run.detail["report"]
    got = (report["accepted"], report["duplicates"], report["rejected"])
    if got != (accepted, duplicates, 0):
        raise RuntimeError(f"{run.kind} {run.format}: accepted/duplicates/rejected {got}, expected {accepted}, "
                           f"{duplicates}, 0: {report}")  # fmt: skip


def machine() -> dict[str, Any]:
    """Cores, RAM, load and versions: a benchmark figure means little without them."""
    import duckdb
    import numpy
    import polars
    import pyarrow

    mem = {k: v.strip() for k, v in (line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "finops"], cwd=REPO, capture_output=True, text=True)
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(int(mem["MemTotal"].split()[0]) / 2**20, 1),
        "available_gib": round(int(mem["MemAvailable"].split()[0]) / 2**20, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "platform": platform.platform(),
        "commit": (commit.stdout.strip() or "?") + (" (finops/ modified)" if dirty.stdout.strip() else ""),
    }


# ------------------------------------------------------------------------------------------ report


def _median(runs: list[Run], kind: str, rows: int, fmt: str) -> Run | None:
    chosen = [r for r in runs if (r.kind, r.rows, r.format) == (kind, rows, fmt)]
    if not chosen:
        return None
    seconds = statistics.median(r.seconds for r in chosen)
    cpu = statistics.median(r.cpu_seconds for r in chosen)
    return Run(kind, rows, fmt, len(chosen), seconds, cpu, max(r.peak_mb for r in chosen), 0, 0)


def _rate(run: Run | None, rows: int) -> str:
    if run is None:
        return "-"
    return f"{run.seconds:.2f} s · {rows / run.seconds / 1e3:,.0f}k/s" if run.seconds else "-"


def _ratio(a: Run | None, b: Run | None, target: float | None = None) -> str:
    if a is None or b is None or not b.seconds:
        return "-"
    ratio = a.seconds / b.seconds
    verdict = "" if target is None else (" ✓" if ratio <= target else " ✗")
    return f"{ratio:.2f}×{verdict}"


def render(results: dict[str, Any]) -> str:
    """The results as markdown: setup, full-file table, incremental table, memory."""
    runs = [Run(**r) for r in results["runs"]]
    p, before, after = results["params"], results["machine_before"], results["machine_after"]
    lines = [
        f"# finops ingest benchmark, {results['started']}",
        "",
        f"- machine: {before['cores']} cores ({before['usable_cores']} usable), {before['ram_gib']} GiB RAM "
        f"({before['available_gib']} GiB available), {before['platform']}",
        f"- load average (1/5/15 min): {'/'.join(map(str, before['loadavg']))} before, "
        f"{'/'.join(map(str, after['loadavg']))} after",
        f"- python {before['python']}, duckdb {before['duckdb']}, polars {before['polars']}, "
        f"numpy {before['numpy']}, pyarrow {before['pyarrow']}; finops {before['commit']}",
        f"- DuckDB memory_limit {p['memory_limit']}, threads {p['threads'] or 'all cores'}; median of "
        f"{p['repeat']} interleaved runs per cell, each in its own process; files in the page cache",
        "",
        "## Whole file",
        "",
        "(a) read every column (`count(hash(*COLUMNS(*)))`), (b) `CREATE TABLE t AS SELECT *` into a fresh "
        "file, (c) `finops ingest --source gateway` into a fresh file. Target: (c) ≤ "
        f"{TARGET_INSERT_RATIO}× (b).",
        "",
        "| rows | format | file | (a) raw read | (b) plain insert | (c) finops ingest | (c)/(a) | (c)/(b) "
        "| peak RSS (b) | peak RSS (c) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in p["rows"]:
        for fmt in p["formats"]:
            a, b, c = (_median(runs, k, rows, fmt) for k in ("raw_read", "plain_insert", "finops_ingest"))
            if a is None and b is None and c is None:
                continue
            size = p["files"][f"{rows}/{fmt}"]["bytes"] / 1e6
            lines.append(
                f"| {rows:,} | {fmt} | {size:,.0f} MB | {_rate(a, rows)} | {_rate(b, rows)} | {_rate(c, rows)} "
                f"| {_ratio(c, a)} | {_ratio(c, b, TARGET_INSERT_RATIO)} | {b.peak_mb if b else 0:,.0f} MB "
                f"| {c.peak_mb if c else 0:,.0f} MB |"
            )
    lines += [
        "",
        "CPU time (user + system, all threads, imports excluded) of the same runs: less sensitive to neighbours "
        "than wall time on a shared machine, though not immune.",
        "",
        "| rows | format | (a) cpu | (b) cpu | (c) cpu | (c)/(b) cpu |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for rows in p["rows"]:
        for fmt in p["formats"]:
            a, b, c = (_median(runs, k, rows, fmt) for k in ("raw_read", "plain_insert", "finops_ingest"))
            if a is None and b is None and c is None:
                continue
            cpu = [f"{r.cpu_seconds:.2f} s" if r else "-" for r in (a, b, c)]
            ratio = f"{c.cpu_seconds / b.cpu_seconds:.2f}×" if b and c and b.cpu_seconds else "-"
            lines.append(f"| {rows:,} | {fmt} | {cpu[0]} | {cpu[1]} | {cpu[2]} | {ratio} |")
    largest, new_rows = p["rows"][-1], p["incremental_rows"]
    lines += [
        "",
        f"## Incremental: {new_rows:,} new rows (the next day) into the {largest:,}-row database",
        "",
        f"Target: into the full database ≤ {TARGET_INCREMENTAL_RATIO}× into an empty one. Re-ingest: the same "
        f"file again, every row a duplicate. Median of {p.get('incremental_repeat', p['repeat'])} interleaved "
        "runs" + (f"; the full database is a copy of {p['base_db']}." if p.get("base_db") else "."),
        "",
        "| format | into empty | into full | ratio | re-ingest (all duplicates) | re-ingest / into empty "
        "| cpu: empty / full / re-ingest | cpu ratio full / re-ingest | peak RSS empty / full |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt in p["formats"]:
        empty, full, again = (_median(runs, k, new_rows, fmt) for k in ("into_empty", "into_base", "reingest"))
        if empty is None or full is None or again is None:
            continue
        lines.append(
            f"| {fmt} | {_rate(empty, new_rows)} | {_rate(full, new_rows)} "
            f"| {_ratio(full, empty, TARGET_INCREMENTAL_RATIO)} | {_rate(again, new_rows)} | {_ratio(again, empty)} "
            f"| {empty.cpu_seconds:.2f} / {full.cpu_seconds:.2f} / {again.cpu_seconds:.2f} s "
            f"| {full.cpu_seconds / empty.cpu_seconds:.2f}× / {again.cpu_seconds / empty.cpu_seconds:.2f}× "
            f"| {empty.peak_mb:,.0f} / {full.peak_mb:,.0f} MB |"
        )
    peaks = [r.peak_mb for r in runs if r.kind == "finops_ingest" and r.rows == largest]
    if peaks:
        verdict = "✓" if max(peaks) < TARGET_PEAK_MB else "✗"
        lines += [
            "",
            f"Peak RSS of the finops ingest of the {largest:,}-row file: {max(peaks):,.0f} MB (target < "
            f"{TARGET_PEAK_MB:,} MB at 10M rows) {verdict}.",
        ]
    lines += ["", "Every run, with its load average, is in the JSON next to this file."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render is not None:  # the markdown of an earlier run's JSON
        print(render(json.loads(args.render.read_text())))
        return 0
    began = time.perf_counter()
    results = benchmark(args)
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    text = render(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest-results.md").write_text(text)
    (args.out / "ingest-results.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n" + text)
    print(f"({results['wall_seconds']} s; results in {args.out / 'ingest-results.md'} and .json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
