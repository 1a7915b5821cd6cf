"""The API benchmark of issue 6: a real uvicorn server on loopback, 50 clients, then 10 abusive SQL clients.

    python -m bench.api [--rows 10000000] [--duration 60] [--clients 50] [--abusers 10] [--cache-entries N]
                        [--ingest-every S]

1. A database of `--rows` gateway records (`finops.synth.gateway`, seed 0, 30 days from 2025-10-01),
   ingested and run once (`run_once`, as of the end of the period, so findings exist); cached in
   `--out/api/` by its parameters. `--db PATH` uses an existing database instead (a copy is served).
2. The server runs `create_app(settings)` under uvicorn in a process of its own (`python -m bench.api
   --serve`), SQL time limit 2 s, read cache of `--cache-entries` answers (default: the setting's default;
   0 measures every request against the database); its CPU (user + system, SQL workers included) and RSS
   are sampled from /proc every second.
3. Warm-up: every route once, and the SQL snapshots built (not timed).
4. Phase "normal": `--clients` closed-loop clients (no think time) on a mix of spend, findings and forecast
   routes (a fixed set of ten-odd dashboard-like requests, so with the read cache on nearly all are hits), plus
   one client running typical SQL aggregates over `spend`, for `--duration` seconds.
   With `--ingest-every S`, an admin client also pushes one record every S seconds in both phases (a write:
   each empties the read cache, so the mix is measured with misses after every push; reported as `ingest`).
5. Phase "abuse": the same, plus `--abusers` clients (each with its own engineer key) sending runaway SQL
   (cross joins of range(1e12), unbounded recursive CTEs, huge string allocations) in a loop.
Reported: requests/s, p50/p95/p99 per route class, status codes, how long each abusive request took
against the limit + 0.5 s, the normal-route p95 ratio abuse/normal, server CPU and memory, load average.
Targets (issue 6): p95 <= 150 ms, p99 <= 400 ms, zero 5xx on the normal routes; SQL aggregate p95 <= 1 s;
abusive SQL stopped within the limit + 0.5 s; normal p95 under abuse <= 2x.
The load generator is a minimal HTTP/1.1 keep-alive client on asyncio, so it costs little CPU, but it
shares the machine's cores with the server: on 2 shared cores the figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SQL_TIME_LIMIT_MS = 2000
TARGET_P95_MS, TARGET_P99_MS, TARGET_SQL_P95_MS = 150.0, 400.0, 1000.0

NORMAL_MIX: list[tuple[str, str, float]] = [
    # (class, path and query, weight)
    ("spend", "/v1/spend?start=2025-10-01&end=2025-11-01&group_by=team", 20),
    ("spend", "/v1/spend?start=2025-10-01&end=2025-11-01&group_by=day", 15),
    ("spend", "/v1/spend?start=2025-10-01&end=2025-11-01&group_by=team,feature", 15),
    ("spend", "/v1/spend?start=2025-10-15&end=2025-11-01&group_by=model&kind=tokens", 10),
    ("spend", "/v1/spend?start=2025-10-01&end=2025-11-01&group_by=week,provider", 8),
    ("spend", "/v1/spend?start=2025-10-01&end=2025-11-01&group_by=day,team&limit=500", 8),
    ("findings", "/v1/findings?start=2025-10-01&end=2025-11-01&limit=100", 12),
    ("findings", "/v1/findings?start=2025-10-20&end=2025-11-01&kind=cost_spike", 6),
    ("findings", "/v1/findings?start=2025-10-01&end=2025-11-01&kind=retry_storm&limit=50", 4),
    ("spend_lines", "/v1/spend?start=2025-10-30&end=2025-10-31&group_by=project", 2),
    ("forecasts", "/v1/forecasts?period=2025-10", 4),
    ("forecasts", "/v1/forecasts?period=2025-Q4", 2),
    ("forecasts", "/v1/forecasts?team=growth&period=2025-10", 4),
]
NORMAL_KINDS = frozenset({"spend", "findings", "spend_lines", "forecasts"})
TYPICAL_SQL = [
    "SELECT model, sum(cost_usd) AS cost FROM spend GROUP BY 1 ORDER BY 2 DESC",
    "SELECT team, feature, sum(cost_usd) AS cost, sum(requests) AS requests FROM spend "
    "WHERE charge_day >= DATE '2025-10-15' GROUP BY ALL ORDER BY 3 DESC LIMIT 50",
    "SELECT provider, count(*) AS lines, sum(input_tokens) AS input_tokens FROM spend GROUP BY 1",
]
ABUSIVE_SQL = [
    "SELECT count(*) FROM range(1e12::BIGINT) a CROSS JOIN range(1e12::BIGINT) b",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT length(repeat('x', 2000000000))",
    "SELECT md5(range::VARCHAR) AS h, count(*) FROM range(1e10::BIGINT) GROUP BY 1 ORDER BY 2 DESC",
]


# ------------------------------------------------------------------------------------------ database


def build_database(rows: int, out: Path) -> Path:
    """The benchmark database for `rows` records, built once and cached (in a child process)."""
    from finops.synth.gateway import GENERATOR_VERSION

    folder = out / "api"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"api-r{rows}-s0-v{GENERATOR_VERSION}.duckdb"
    if path.exists():
        return path
    code = f"""
import datetime as dt
from pathlib import Path
from finops.synth.gateway import generate_gateway, write
from finops.settings import load_settings
from finops.store.db import connect
from finops.ingest import ingest_paths, IngestOptions
from finops.pipeline import run_once
path = Path({str(path)!r}); data = path.with_suffix('.parquet')
write(generate_gateway({rows}, seed=0), data)
with connect(load_settings(db=path.with_suffix('.partial'))) as db:
    for o in ingest_paths(db, [data], 'gateway', IngestOptions()):
        assert o.report is not None, o.error
    run_once(db, as_of=dt.datetime(2025, 10, 31, 23, 0, tzinfo=dt.UTC))
data.unlink()
path.with_suffix('.partial').rename(path)
"""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    print(f"built {path} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return path


# ------------------------------------------------------------------------------------------ server


def serve(db: Path, port: int, snapshots: Path, cache_entries: int | None) -> None:
    import uvicorn

    from finops.api import create_app
    from finops.settings import load_settings

    cache = {} if cache_entries is None else {"api_cache_entries": cache_entries}
    settings = load_settings(db=db, sql_snapshot_dir=snapshots, sql_time_limit_ms=SQL_TIME_LIMIT_MS, **cache)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def make_keys(db: Path, abusers: int) -> dict[str, str]:
    from finops.settings import load_settings
    from finops.store.db import connect
    from finops.store.keys import create_key

    with connect(load_settings(db=db)) as database:
        keys = {
            "admin": create_key(database, "admin", name="bench pushes").token,
            "finance": create_key(database, "finance", name="bench").token,
            "engineer": create_key(database, "engineer", name="bench").token,
        }
        for i in range(abusers):
            keys[f"abuser{i}"] = create_key(database, "engineer", name=f"bench abuser {i}").token
    return keys


@dataclass
class ProcSample:
    t: float
    cpu_s: float
    rss_mb: float


def proc_tree_sample(pid: int) -> ProcSample:
    """CPU seconds and RSS of `pid` and its children (the SQL workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    cpu = rss = 0.0
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(stat[11]) + int(stat[12])) / tick
            rss += int(stat[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    return ProcSample(time.monotonic(), cpu, rss)


# ------------------------------------------------------------------------------------------ load


@dataclass
class Result:
    kind: str
    status: int
    seconds: float
    phase: str


@dataclass
class Recorder:
    results: list[Result] = field(default_factory=list)
    phase: str = "warmup"

    def add(self, kind: str, status: int, seconds: float) -> None:
        self.results.append(Result(kind, status, seconds, self.phase))


class Connection:
    """One HTTP/1.1 keep-alive connection; just enough of the protocol for our own server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, key: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return status, payload


async def client_loop(port: int, key: str, pick: Any, recorder: Recorder, stop: asyncio.Event) -> None:
    conn = Connection(port)
    while not stop.is_set():
        kind, method, path, body = pick()
        started = time.perf_counter()
        try:
            status, _ = await conn.request(method, path, key, body)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            status, conn = 599, Connection(port)
        recorder.add(kind, status, time.perf_counter() - started)


def normal_picker(rng: random.Random) -> Any:
    weights = [w for _, _, w in NORMAL_MIX]

    def pick() -> tuple[str, str, str, bytes | None]:
        kind, path, _ = rng.choices(NORMAL_MIX, weights)[0]
        return kind, "GET", path, None

    return pick


def sql_picker(rng: random.Random, statements: list[str], kind: str) -> Any:
    def pick() -> tuple[str, str, str, bytes | None]:
        return kind, "POST", "/v1/sql", json.dumps({"sql": rng.choice(statements), "max_rows": 100}).encode()

    return pick


async def pusher(port: int, key: str, every_s: float, recorder: Recorder, stop: asyncio.Event) -> None:
    """Every `every_s` seconds, push one new gateway record (`POST /v1/ingest/gateway`): each push is a write,
    so it empties the server's read cache and the next requests are misses."""
    n = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
            break
        n += 1
        line = {"request_id": f"bench-push-{recorder.phase}-{n}", "ts": "2025-10-31T12:00:00Z", "model": "gpt-4o"}
        conn = Connection(port)  # a new one each time: an idle one passes uvicorn's keep-alive timeout (5 s)
        started = time.perf_counter()
        status, _ = await conn.request(
            "POST", "/v1/ingest/gateway", key, json.dumps(line).encode(), content_type="application/x-ndjson"
        )
        if conn.writer is not None:
            conn.writer.close()
        recorder.add("ingest", status, time.perf_counter() - started)


async def phase(
    port: int,
    keys: dict[str, str],
    recorder: Recorder,
    name: str,
    seconds: float,
    clients: int,
    abusers: int,
    ingest_every_s: float = 0.0,
) -> None:
    recorder.phase = name
    stop = asyncio.Event()
    rng = random.Random(name)
    tasks = [
        asyncio.create_task(client_loop(port, keys["finance"], normal_picker(random.Random(i)), recorder, stop))
        for i in range(clients)
    ]
    tasks.append(
        asyncio.create_task(client_loop(port, keys["engineer"], sql_picker(rng, TYPICAL_SQL, "sql"), recorder, stop))
    )
    for i in range(abusers):
        picker = sql_picker(random.Random(i), ABUSIVE_SQL, "abusive_sql")
        tasks.append(asyncio.create_task(client_loop(port, keys[f"abuser{i}"], picker, recorder, stop)))
    if ingest_every_s > 0:
        tasks.append(asyncio.create_task(pusher(port, keys["admin"], ingest_every_s, recorder, stop)))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)


# ------------------------------------------------------------------------------------------ report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] * 1000


def summarise(recorder: Recorder, durations: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ph in durations:
        rows = [r for r in recorder.results if r.phase == ph]
        by_kind: dict[str, Any] = {}
        for kind in sorted({r.kind for r in rows} | {"normal"}):
            sel = [r for r in rows if (r.kind in NORMAL_KINDS if kind == "normal" else r.kind == kind)]
            secs = [r.seconds for r in sel]
            codes: dict[str, int] = {}
            for r in sel:
                codes[str(r.status)] = codes.get(str(r.status), 0) + 1
            by_kind[kind] = {
                "requests": len(sel),
                "rps": len(sel) / durations[ph],
                "p50_ms": pct(secs, 50),
                "p95_ms": pct(secs, 95),
                "p99_ms": pct(secs, 99),
                "max_ms": max(secs) * 1000 if secs else float("nan"),
                "status": codes,
                "5xx": sum(n for c, n in codes.items() if c.startswith("5")),
            }
        out[ph] = by_kind
    return out


def render(results: dict[str, Any]) -> str:
    s = results["summary"]
    lines = [
        "# API benchmark (issue 6)",
        "",
        f"`python -m bench.api {' '.join(results['argv'])}`: {results['rows']:,} gateway records, "
        f"{results['clients']} clients, {results['abusers']} abusive SQL clients, {results['duration_s']:.0f} s per "
        f"phase, SQL time limit {SQL_TIME_LIMIT_MS} ms, read cache {results['cache_entries']} entries, "
        + (
            f"one record pushed every {results['ingest_every_s']:g} s (each empties the cache). "
            if results["ingest_every_s"]
            else ""
        )
        + f"{results['when']}",
        "",
        f"Machine: {results['machine']['cpus']} cores ({results['machine']['cpu']}), "
        f"{results['machine']['memory_gb']:.0f} GB RAM, Python {results['machine']['python']}, load average "
        f"before {results['load_before']:.2f}, after {results['load_after']:.2f}. **Shared 2-core machine: "
        "the figures are noisy**; the load generator runs on the same cores as the server.",
        "",
        "| phase | route class | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | statuses |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for ph, kinds in s.items():
        for kind, m in kinds.items():
            if not m["requests"]:
                continue
            lines.append(
                f"| {ph} | {kind} | {m['requests']:,} | {m['rps']:.1f} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | "
                f"{m['p99_ms']:.1f} | {m['max_ms']:.0f} | {m['status']} |"
            )
    lines += ["", "| server | CPU (cores busy) | peak RSS MB (server + SQL workers) |", "|---|---:|---:|"]
    for ph, m in results["server"].items():
        lines.append(f"| {ph} | {m['cpu_cores']:.2f} | {m['peak_rss_mb']:.0f} |")
    n, a = s["normal"]["normal"], s.get("abuse", {}).get("normal")
    sql, abusive = s["normal"].get("sql", {}), s.get("abuse", {}).get("abusive_sql", {})
    checks = [
        ("normal routes p95 <= 150 ms", f"{n['p95_ms']:.1f} ms", n["p95_ms"] <= TARGET_P95_MS),
        ("normal routes p99 <= 400 ms", f"{n['p99_ms']:.1f} ms", n["p99_ms"] <= TARGET_P99_MS),
        ("zero 5xx on normal routes", f"{n['5xx'] + (a['5xx'] if a else 0)}", n["5xx"] + (a["5xx"] if a else 0) == 0),
        (
            "SQL aggregate p95 <= 1 s",
            f"{sql.get('p95_ms', float('nan')):.0f} ms",
            sql.get("p95_ms", 1e9) <= TARGET_SQL_P95_MS,
        ),
    ]
    if a:
        limit = SQL_TIME_LIMIT_MS + 500
        checks += [
            (
                f"abusive SQL answered within limit + 0.5 s ({limit} ms)",
                f"max {abusive.get('max_ms', 0):.0f} ms",
                abusive.get("max_ms", 0) <= limit,
            ),
            ("normal p95 under abuse <= 2x", f"{a['p95_ms'] / n['p95_ms']:.2f}x", a["p95_ms"] <= 2 * n["p95_ms"]),
        ]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in checks]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--db", type=Path, help="serve a copy of this database instead of building one")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--abusers", type=int, default=10)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument(
        "--cache-entries", type=int, help="FINOPS_API_CACHE_ENTRIES of the server (0: no read cache); default its own"
    )
    p.add_argument(
        "--ingest-every",
        type=float,
        default=0.0,
        metavar="S",
        help="push one record every S seconds during both phases (each push empties the read cache); 0: none",
    )
    p.add_argument("--serve", nargs=4, metavar=("DB", "PORT", "SNAPSHOTS", "CACHE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        cache = None if args.serve[3] == "default" else int(args.serve[3])
        serve(Path(args.serve[0]), int(args.serve[1]), Path(args.serve[2]), cache)
        return 0

    source = args.db or build_database(args.rows, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-api-", dir=args.out))
    db = work / "bench.duckdb"
    shutil.copy(source, db)
    keys = make_keys(db, args.abusers)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = "default" if args.cache_entries is None else str(args.cache_entries)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.api", "--serve", str(db), str(port), str(work / "snapshots"), cache], cwd=REPO
    )
    samples: dict[str, list[ProcSample]] = {}
    recorder = Recorder()
    current = ["warmup"]
    done = threading.Event()

    def sampler() -> None:
        while not done.wait(1.0):
            samples.setdefault(current[0], []).append(proc_tree_sample(server.pid))

    try:
        _wait_healthy(port)
        threading.Thread(target=sampler, daemon=True).start()
        load_before = os.getloadavg()[0]

        async def run() -> None:
            conn = Connection(port)
            for _, path, _ in NORMAL_MIX:
                status, payload = await conn.request("GET", path, keys["finance"])
                assert status == 200, (path, payload[:300])
            for sql in TYPICAL_SQL:  # builds the snapshots (not timed)
                body = json.dumps({"sql": sql}).encode()
                status, payload = await _retry_sql(conn, body, keys["engineer"])
                assert status == 200, payload[:300]
            for name, abusers in (("normal", 0), ("abuse", args.abusers)):
                current[0] = name
                await phase(port, keys, recorder, name, args.duration, args.clients, abusers, args.ingest_every)

        asyncio.run(run())
        load_after = os.getloadavg()[0]
    finally:
        done.set()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)  # the served copy (GBs at 10M), also when a run fails
    durations = {"normal": args.duration, "abuse": args.duration}
    server_stats = {}
    for ph in durations:
        ss = samples.get(ph, [])
        cpu = (ss[-1].cpu_s - ss[0].cpu_s) / (ss[-1].t - ss[0].t) if len(ss) > 1 else float("nan")
        server_stats[ph] = {"cpu_cores": cpu, "peak_rss_mb": max((s.rss_mb for s in ss), default=float("nan"))}
    import duckdb

    with duckdb.connect(str(source), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM usage_events").fetchone()[0]  # type: ignore[index]
    results = {
        "argv": argv if argv is not None else sys.argv[1:],
        "rows": rows,
        "clients": args.clients,
        "abusers": args.abusers,
        "ingest_every_s": args.ingest_every,
        "cache_entries": args.cache_entries if args.cache_entries is not None else _default_cache_entries(),
        "duration_s": args.duration,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "load_before": load_before,
        "load_after": load_after,
        "summary": summarise(recorder, durations),
        "server": server_stats,
    }
    text = render(results)
    (args.out / "api-results.md").write_text(text)
    (args.out / "api-results.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


def _machine() -> dict[str, Any]:
    models = [line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")]
    cpu = models[0] if models else "?"
    kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gb": kb / 2**20, "python": platform.python_version()}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _default_cache_entries() -> int:
    from finops.settings import Settings

    default: int = Settings.model_fields["api_cache_entries"].default
    return default


async def _retry_sql(conn: Connection, body: bytes, key: str) -> tuple[int, bytes]:
    for _ in range(5):
        status, payload = await conn.request("POST", "/v1/sql", key, body)
        if status != 503:
            return status, payload
    return status, payload


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    raise SystemExit(main())
