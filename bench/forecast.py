"""Forecast quality: a rolling-origin backtest of `finops.forecast` on synthetic and real daily spend.

    python -m bench.forecast [--seeds 1 2 3 4] [--rows 2000000] [--days 200] [--teams 12]
                             [--data ../shared/data] [--out bench/out]

Data sets (each origin forecasts with only the data before it, exactly as `forecast_step` does):

- synthetic: `finops.synth.gateway` logs (weekly seasonality, growth, quiet days, launches, model
  migrations), `--days` days from 2025-10-01 per seed; the daily spend of a team is the sum of the
  generator's `cost_usd` per UTC day (its catalog price from genai-prices, exact), untagged traffic is the
  `__unattributed__` team, and each seed's company total is a series too. Origins: the 15th of every
  month that ends inside the data (14 days of the month observed).
- servegen-hourly (real): ServeGen's per-client request rates (10-minute windows, 14 days, Alibaba Model
  Studio) x the client's mean input/output tokens (6-hour windows) x the catalog price of the model class
  (m-large -> openrouter qwen/qwen-max, m-mid -> qwen/qwen-plus, m-small -> qwen/qwen-turbo, list price on
  2026-09-01) gives a spend per 10 minutes; summed per hour it is a 336-step series with a daily cycle.
  Fourteen days are too few for month-ends, so the hours play the days: season 24 (the daily cycle) for 7,
  a 168-hour "period" (one week) for the month, half of it observed at the origin, periods starting at
  hours 120, 144 and 168. Clients with token statistics and spend in at least half of the hours, plus the
  three per-model totals (all those clients summed).
- servegen-daily (real, information only): the same spend per UTC day: 14 days per client, so every series
  is short and forecast by the seasonal-naive fallback with borrowed/default multipliers; origin day 7,
  "period" days 0-13.
The Azure (1 hour) and Mooncake (1 hour) traces are too short for daily or hourly series and are not used.

Metrics per (series, origin), medians / rates over all of them:
- MASE relative to seasonal naive: MAE of our daily forecasts over the rest of the period / MAE of the
  seasonal naive (last season repeated) over the same days; the target is a median <= 0.90;
- period-total absolute % error: |actual to date + forecast of the rest - actual total| / actual total
  (target: median <= 10 %);
- coverage of the 80 % / 95 % intervals of the period total (targets [0.75, 0.85] and [0.90, 0.97]).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from finops.forecast import ForecastConfig, calendar_periods, daily_forecast, period_totals

REPO = Path(__file__).resolve().parents[1]
START = datetime(2025, 10, 1, tzinfo=UTC)
PRICE_DAY = datetime(2026, 9, 1, tzinfo=UTC)
SERVEGEN_MODELS = {"m-large": "qwen/qwen-max", "m-mid": "qwen/qwen-plus", "m-small": "qwen/qwen-turbo"}
# the daily settings in seasons: 4 to use the model, 3 to fit a backtest, 8 for the scale, origins 2/7 of a
# season apart
HOURLY = ForecastConfig(season_length=24, min_model_days=96, min_train_days=72, scale_days=192, backtest_step=7)
EPOCH = date(2000, 1, 1)  # hour i of the ServeGen trace is pseudo-day EPOCH + i
TARGETS: dict[str, Any] = {"rel_mase": 0.90, "mdape": 0.10, "cov80": (0.75, 0.85), "cov95": (0.90, 0.97)}
ID, DAY, COST = "series_id", "charge_day", "cost_usd"


@dataclass(frozen=True)
class Origin:
    """One backtest origin: forecast `period` from `cutoff` with the data before it."""

    cutoff: date
    period: str
    start: date
    end: date


# ------------------------------------------------------------------------------------------- data sets


def synthetic(seeds: list[int], rows: int, days: int, teams: int) -> pl.DataFrame:
    """Daily spend per (seed, team) and per seed's company total, from the generator's cost_usd."""
    from finops.synth.gateway import generate_gateway

    frames = []
    for seed in seeds:
        log = generate_gateway(rows, seed=seed, start=START, days=days, teams=teams)
        daily = log.group_by(
            pl.col("ts").dt.date().alias(DAY), pl.col("team").cast(pl.String).fill_null("__unattributed__")
        ).agg(pl.col("cost_usd").sum().cast(pl.Decimal(38, 12)).alias(COST))
        total = daily.group_by(DAY).agg(pl.col(COST).sum()).with_columns(team=pl.lit("__company__"))
        frames.append(
            pl.concat([daily, total.select(daily.columns)]).select(
                pl.format("seed{}/{}", pl.lit(seed), pl.col("team")).alias(ID), DAY, COST
            )
        )
    return pl.concat(frames).sort(ID, DAY)


def month_origins(first: date, last: date) -> list[Origin]:
    """The 15th of every month that starts on/after `first` + 28 days and ends by `last` (inclusive)."""
    out = []
    day = date(first.year, first.month, 15)
    while True:
        month = calendar_periods(day)[0]
        if month.end > last + timedelta(days=1):
            break
        if day >= first + timedelta(days=28):
            out.append(Origin(day, month.label, month.start, month.end))
        day = month.end + timedelta(days=14)
    return out


def _catalog_price(model: str) -> tuple[float, float]:
    """USD per token (input, output) of an openrouter model on PRICE_DAY, from the genai-prices catalog."""
    from finops.price.catalog import catalog_rows

    rows = catalog_rows().filter(
        pl.col("price_provider") == "openrouter",
        pl.col("price_model") == model,
        pl.col("service_tier") == "default",
        pl.col("context_above").is_null(),
        pl.col("valid_from") <= PRICE_DAY,
        pl.col("valid_to").is_null() | (pl.col("valid_to") > PRICE_DAY),
    )
    if rows.height != 1:
        raise RuntimeError(
            f"catalog: expected one price of openrouter {model} on {PRICE_DAY:%Y-%m-%d}, got {rows.height}"
        )
    per_m = Decimal(1_000_000)
    return float(rows["input_mtok"][0] / per_m), float(rows["output_mtok"][0] / per_m)


def servegen_spend(data: Path) -> pl.DataFrame:
    """Spend per (client, 10-minute window): requests x mean tokens (of the 6-hour window) x catalog price."""
    folder = data / "llm_requests"
    rates = pl.read_csv(folder / "servegen_client_rates_10min.csv.gz").filter(
        pl.col("model").is_in(list(SERVEGEN_MODELS))
    )
    stats = (
        pl.read_csv(folder / "servegen_client_token_stats_6h.csv.gz")
        .filter(pl.col("field").is_in(["input_tokens", "output_tokens"]))
        .pivot(on="field", index=["model", "client_id", "window_start_s"], values="mean")
        .rename({"window_start_s": "stats_window"})
        .sort("model", "client_id", "stats_window")
    )
    prices = pl.DataFrame(
        [(m, *_catalog_price(p)) for m, p in SERVEGEN_MODELS.items()],
        schema={"model": pl.String, "usd_in": pl.Float64, "usd_out": pl.Float64},
        orient="row",
    )
    joined = rates.sort("model", "client_id", "window_start_s").join_asof(
        stats,
        left_on="window_start_s",
        right_on="stats_window",
        by=["model", "client_id"],
        strategy="backward",
        check_sortedness=False,  # sorted above, per (model, client_id)
    )
    return (
        joined.filter(pl.col("input_tokens").is_not_null())  # clients without token statistics are left out
        .join(prices, on="model")
        .select(
            pl.format("{}/{}", "model", "client_id").alias("client"),
            "model",
            "window_start_s",
            (
                pl.col("rate_rps")
                * 600
                * (pl.col("input_tokens") * pl.col("usd_in") + pl.col("output_tokens") * pl.col("usd_out"))
            ).alias(COST),
        )
    )


def servegen_hourly(spend: pl.DataFrame, min_active: float = 0.5) -> pl.DataFrame:
    """Hourly spend per client active in at least `min_active` of the hours, plus per-model totals."""
    hourly = spend.group_by("client", "model", (pl.col("window_start_s") // 3600).alias("hour")).agg(pl.col(COST).sum())
    active = (
        hourly.group_by("client")
        .agg(((pl.col(COST) > 0).sum() / 336).alias("share"))
        .filter(pl.col("share") >= min_active)
    )
    clients = hourly.join(active.select("client"), on="client")
    totals = (
        clients.group_by("model", "hour").agg(pl.col(COST).sum()).with_columns(client=pl.format("{}/total", "model"))
    )
    both = pl.concat([clients.select("client", "hour", COST), totals.select("client", "hour", COST)])
    return both.select(
        pl.col("client").alias(ID),
        (pl.lit(EPOCH) + pl.duration(days=pl.col("hour"))).alias(DAY),
        pl.col(COST).cast(pl.Decimal(38, 12)),
    ).sort(ID, DAY)


def servegen_daily(spend: pl.DataFrame) -> pl.DataFrame:
    daily = spend.group_by("client", (pl.col("window_start_s") // 86400).alias("d")).agg(pl.col(COST).sum())
    active = daily.group_by("client").agg((pl.col(COST) > 0).all().alias("ok")).filter("ok")
    return (
        daily.join(active.select("client"), on="client")
        .select(
            pl.col("client").alias(ID),
            (pl.lit(EPOCH) + pl.duration(days=pl.col("d"))).alias(DAY),
            pl.col(COST).cast(pl.Decimal(38, 12)),
        )
        .sort(ID, DAY)
    )


# ------------------------------------------------------------------------------------------- backtest


def evaluate(series: pl.DataFrame, origins: list[Origin], config: ForecastConfig) -> pl.DataFrame:
    """One row per (series, origin): relative MASE, period-total error and interval hits."""
    s = config.season_length
    rows = []
    for origin in origins:
        history = series.filter(pl.col(DAY) < origin.cutoff)
        ids = history[ID].unique()
        truth = series.filter(pl.col(DAY) >= origin.start, pl.col(DAY) < origin.end, pl.col(ID).is_in(ids.implode()))
        horizon = (origin.end - origin.cutoff).days
        daily = daily_forecast(
            history.with_columns(pl.col(COST).cast(pl.Float64)),
            cutoff=origin.cutoff,
            horizon_days=horizon,
            config=config,
        )
        periods = pl.DataFrame({ID: ids}).with_columns(
            period=pl.lit(origin.period),
            period_kind=pl.lit("custom"),
            period_start=pl.lit(origin.start),
            period_end=pl.lit(origin.end),
        )
        totals = period_totals(daily, history, periods, value_col=COST)
        actual_days = truth.filter(pl.col(DAY) >= origin.cutoff).with_columns(pl.col(COST).cast(pl.Float64).alias("y"))
        naive = _seasonal_naive(history, origin.cutoff, horizon, s)
        daily_err = (
            actual_days.join(daily.paths, on=[ID, DAY])
            .join(naive, on=[ID, DAY])
            .group_by(ID)
            .agg(
                (pl.col("forecast") - pl.col("y")).abs().mean().alias("mae"),
                (pl.col("naive") - pl.col("y")).abs().mean().alias("mae_naive"),
            )
        )
        scale = (
            history.sort(ID, DAY)
            .with_columns(
                (pl.col(COST).cast(pl.Float64) - pl.col(COST).cast(pl.Float64).shift(s)).abs().over(ID).alias("d")
            )
            .group_by(ID)
            .agg(pl.col("d").mean().alias("scale"))
        )
        total = truth.group_by(ID).agg(pl.col(COST).cast(pl.Float64).sum().alias("actual_total"))
        rows.append(
            totals.select(
                ID,
                "method",
                "history_days",
                *(
                    pl.col(c).cast(pl.Float64)
                    for c in ("forecast", "forecast_lo_80", "forecast_hi_80", "forecast_lo_95", "forecast_hi_95")
                ),
            )
            .join(total, on=ID)
            .join(daily_err, on=ID)
            .join(scale, on=ID)
            .with_columns(origin=pl.lit(origin.cutoff), period=pl.lit(origin.period))
        )
    return pl.concat(rows).with_columns(
        rel_mase=pl.when(pl.col("mae_naive") > 0).then(pl.col("mae") / pl.col("mae_naive")),
        mase=pl.col("mae") / pl.col("scale"),
        mase_naive=pl.col("mae_naive") / pl.col("scale"),
        ape=pl.when(pl.col("actual_total") > 0).then(
            (pl.col("forecast") - pl.col("actual_total")).abs() / pl.col("actual_total")
        ),
        in80=pl.col("actual_total").is_between("forecast_lo_80", "forecast_hi_80"),
        in95=pl.col("actual_total").is_between("forecast_lo_95", "forecast_hi_95"),
    )


def _seasonal_naive(history: pl.DataFrame, cutoff: date, horizon: int, s: int) -> pl.DataFrame:
    """The last season of each series repeated over the horizon (what the relative MASE divides by)."""
    last = (
        history.sort(ID, DAY)
        .group_by(ID)
        .agg(pl.col(COST).cast(pl.Float64).tail(s).alias("season"))
        .filter(pl.col("season").list.len() == s)
    )
    days = pl.DataFrame({"k": list(range(horizon))}).with_columns(
        (pl.lit(cutoff) + pl.duration(days=pl.col("k"))).alias(DAY), slot=pl.col("k") % s
    )
    return last.join(days, how="cross").select(ID, DAY, pl.col("season").list.get(pl.col("slot")).alias("naive"))


def summarise(name: str, results: pl.DataFrame, note: str) -> dict[str, Any]:
    r = results
    return {
        "data": name,
        "series": r[ID].n_unique(),
        "evaluations": r.height,
        "model_share": _round(r["method"].str.starts_with("ensemble").mean()),
        "rel_mase": _round(r["rel_mase"].drop_nulls().median()),
        "mase": _round(r["mase"].drop_nulls().median()),
        "mase_naive": _round(r["mase_naive"].drop_nulls().median()),
        "mdape": _round(r["ape"].drop_nulls().median()),
        "cov80": _round(r["in80"].mean()),
        "cov95": _round(r["in95"].mean()),
        "note": note,
    }


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _verdict(row: dict[str, Any]) -> str:
    checks = [
        row["rel_mase"] is not None and row["rel_mase"] <= TARGETS["rel_mase"],
        row["mdape"] is not None and row["mdape"] <= TARGETS["mdape"],
        row["cov80"] is not None and TARGETS["cov80"][0] <= row["cov80"] <= TARGETS["cov80"][1],
        row["cov95"] is not None and TARGETS["cov95"][0] <= row["cov95"] <= TARGETS["cov95"][1],
    ]
    return " ".join("pass" if ok else "MISS" for ok in checks)


def markdown(summary: list[dict[str, Any]], machine: dict[str, Any], load_after: list[float], seconds: float) -> str:
    header = (
        "| data | series | evaluations | model chosen | rel. MASE | MASE (ours / naive) | total MdAPE | cov. 80 % "
        "| cov. 95 % | targets (MASE, MdAPE, 80, 95) |"
    )
    lines = [
        "# Forecast backtest (`python -m bench.forecast`)",
        "",
        "Targets (issue 5): median MASE relative to seasonal naive <= 0.90; period-total median absolute % error "
        "<= 10 % with half the period observed (two weeks of a month); coverage of the 80 % interval in "
        "[0.75, 0.85], of the 95 % interval in [0.90, 0.97].",
        "",
        header,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in summary:
        cells = [
            row["data"],
            row["series"],
            row["evaluations"],
            f"{row['model_share']:.0%}",
            row["rel_mase"],
            f"{row['mase']} / {row['mase_naive']}",
            _pct(row["mdape"]),
            row["cov80"],
            row["cov95"],
            _verdict(row),
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", *(f"- {row['data']}: {row['note']}" for row in summary)]
    before = "/".join(map(str, machine["loadavg"]))
    after = "/".join(f"{x:.2f}" for x in load_after)
    lines += [
        "",
        f"Machine: {machine['cores']} cores ({machine['usable_cores']} usable), {machine['ram_gib']} GiB RAM, "
        f"load average (1/5/15 min) {before} before and {after} after; Python {machine['python']}, "
        f"polars {machine['polars']}, commit {machine['commit']}; {seconds:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--teams", type=int, default=12)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()

    from bench.ingest import machine as describe_machine

    machine = describe_machine()
    began = time.monotonic()
    summary, details = [], {}

    series = synthetic(args.seeds, args.rows, args.days, args.teams)
    first, last = START.date(), START.date() + timedelta(days=args.days - 1)
    origins = month_origins(first, last)
    results = evaluate(series, origins, ForecastConfig())
    summary.append(
        summarise(
            "synthetic",
            results,
            f"seeds {args.seeds}, {args.rows:,} requests over {args.days} days from {first}, {args.teams} teams; "
            f"origins {', '.join(str(o.cutoff) for o in origins)} (month to date: 14 days)",
        )
    )
    details["synthetic"] = results

    if not args.skip_real and (args.data / "llm_requests").is_dir():
        spend = servegen_spend(args.data)
        hourly = servegen_hourly(spend)
        hour_origins = [
            Origin(
                EPOCH + timedelta(days=start + 84),
                f"hours {start}-{start + 168}",
                EPOCH + timedelta(days=start),
                EPOCH + timedelta(days=start + 168),
            )
            for start in (120, 144, 168)
        ]
        results = evaluate(hourly, hour_origins, HOURLY)
        summary.append(
            summarise(
                "servegen-hourly (real)",
                results,
                "hours as steps: season 24, 168-hour period with 84 hours observed, periods from hours 120/144/168; "
                "clients with token stats and spend in >= 50 % of hours, plus per-model totals",
            )
        )
        details["servegen-hourly"] = results
        daily = servegen_daily(spend)
        day_origin = [Origin(EPOCH + timedelta(days=7), "days 0-13", EPOCH, EPOCH + timedelta(days=14))]
        results = evaluate(daily, day_origin, ForecastConfig())
        summary.append(
            summarise(
                "servegen-daily (real, info)",
                results,
                "14 days per client (spend on every day): 7 days of history, so the short-history fallback "
                "(seasonal naive, default multipliers); the relative MASE is 1 by construction",
            )
        )
        details["servegen-daily"] = results
    elif not args.skip_real:
        print(f"real data not found under {args.data}: skipped (pass --data)")

    seconds = time.monotonic() - began
    text = markdown(summary, machine, list(os.getloadavg()), seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "forecast-results.md").write_text(text)
    (args.out / "forecast-results.json").write_text(
        json.dumps({"machine": machine, "seconds": round(seconds, 1), "summary": summary}, indent=2, default=str)
    )
    for name, frame in details.items():
        frame.write_parquet(args.out / f"forecast-{name}.parquet")
    print(text)


if __name__ == "__main__":
    main()
