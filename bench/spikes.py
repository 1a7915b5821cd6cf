"""Cost spikes and level shifts alone, on the labelled generator, without the pipeline (seconds, not minutes).

    python -m bench.spikes [--rows 2000000] [--days 42] [--seed 1] [--out bench/out]

Order of operations: generate `finops.synth.anomalies` logs (cached as Parquet in `--out/spikes/`); build
`DetectInputs` from them directly (the lines as generated, priced by the generator's own `cost_usd`, and
their hourly rollup, computed in DuckDB as `finops.store.findings.read_inputs` does); run `detect_spikes`
through `run_all` (timed); score its findings against the planted cost spikes and level shifts with
`bench.detect.score` (the same matching rules as `python -m bench.detect`); print both and every spike
finding. `python -m bench.detect` stays the figure of record (it prices with finops and runs everything);
this one is for iterating on the spike detector.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl

from bench.detect import score
from finops.detect import DetectInputs, run_all
from finops.detect.spikes import detect_spikes
from finops.synth.anomalies import Plan, generate_labelled

KINDS = ("cost_spike", "level_shift")
_CACHE_VERSION = 4  # 2: the truth has `models`; 3: a storm fails every call of its window; 4: copies redraw retries
_HOURLY = """
    SELECT time_bucket(INTERVAL 1 HOUR, ts) AS hour, team, feature, provider, model,
           sum(cost_usd) AS cost_usd, count(*) AS requests
    FROM lines GROUP BY ALL"""


def labelled(rows: int, seed: int, days: int, cache: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The generator's rows (the columns the detector reads, keys as text) and truth, cached by their arguments."""
    cache.mkdir(parents=True, exist_ok=True)
    name = f"{rows}-s{seed}-d{days}-v{_CACHE_VERSION}"
    data, planted = cache / f"lines-{name}.parquet", cache / f"truth-{name}.parquet"
    if not (data.exists() and planted.exists()):
        frame, truth = generate_labelled(rows, seed=seed, days=days, plan=Plan())
        frame.select(
            "ts",
            *(pl.col(c).cast(pl.String) for c in ("team", "feature", "provider", "model", "scenario")),
            "trace_id",
            "request_id",
            cost_usd=pl.col("cost_usd").cast(pl.Decimal(38, 12)),
        ).write_parquet(data)
        truth.write_parquet(planted)
    return pl.read_parquet(data), pl.read_parquet(planted)


def inputs(lines: pl.DataFrame) -> DetectInputs:
    """`DetectInputs` over the whole period, the hourly rollup computed in DuckDB."""
    con = duckdb.connect()
    con.register("lines", lines.drop("scenario").to_arrow())
    hourly = pl.DataFrame(con.sql(_HOURLY).pl()).with_columns(pl.col("hour").dt.convert_time_zone("UTC"))
    start = lines["ts"].min().replace(minute=0, second=0, microsecond=0)  # type: ignore[union-attr]
    end = lines["ts"].max() + timedelta(hours=1)  # type: ignore[operator]
    return DetectInputs(
        lines=lines.drop("scenario").lazy(), hourly=hourly.lazy(), history_start=start, horizon_start=start, as_of=end
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    lines, truth = labelled(args.rows, args.seed, args.days, args.out / "spikes")
    data = inputs(lines)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    findings = run_all(data, [detect_spikes])
    seconds = time.perf_counter() - began
    results = score(truth, findings, lines)
    with pl.Config(tbl_rows=200, tbl_width_chars=220, fmt_str_lengths=70):
        print(
            truth.filter(pl.col("kind").is_in(KINDS)).select(
                "scenario", "team", "feature", "model", "window_start", "window_end", pl.col("cost_usd").round(1)
            )
        )
        print(
            findings.filter(pl.col("kind").is_in([*KINDS, "insufficient_history"]))
            .select(
                "kind",
                "subject",
                "window_start",
                "window_end",
                pl.col("excess_cost_usd").round(1),
                pl.col("score").round(2),
            )
            .sort("subject", "window_start")
        )
    print(f"detect_spikes {seconds:.2f} s on {lines.height:,} lines (load {load:.2f})")
    for kind in KINDS:
        print(kind, {k: v for k, v in results[kind].items()})
    spikes = results["cost_spike"]
    print(
        f"cost_spike: recall {spikes['recall']:.2f} precision {spikes['precision'] or 0:.2f}; worth the "
        f"${spikes['floor_usd']:g} floor: {spikes['found_worth_floor']} of {spikes['planted_worth_floor']} found"
    )


if __name__ == "__main__":
    main()
