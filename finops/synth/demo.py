"""The `finops demo` data set: nine weeks of a small company's AI spend, from the project's own generators.

`generate_demo(DemoPlan(...))` is pure (same plan, same frames); `write_demo` writes the files ingest reads:

  1. gateway logs (`synth.gateway.generate_gateway`): `teams` teams and their features on OpenAI, Anthropic
     and Google models over `days` days ending at `as_of`, with weekly and daily seasonality, growth and the
     incidents of `synth.anomalies` planted (retry storms, cost spikes, outlier requests, a retry chain, a
     runaway agent session); a slice of one feature runs on the self-hosted model the bundled
     `fixtures/prices.csv` prices, and a few calls use a model no catalog knows (the `__unpriced__` bucket);
  2. GPU: training and evaluation jobs of three teams on `gpu-east` (H100, A100-80GB) and inference services
     on `inference-west` (L4, fractional GPUs), with each pool's daily capacity, so idle GPU-hours show;
  3. provider bills: an OpenAI Costs page and an Anthropic cost report per day and model, from the gateway's
     measured cost with a small day-to-day gap and an OpenAI image line the gateway never saw (`__unobserved__`).

Budgets are sized from the forecasts of a first run (`demo_budgets`): every team gets a monthly budget with
room to spare, one gets one it is about to exceed, and one a tight one.

Deterministic: the same seed and `as_of` give the same files. `as_of` defaults to `default_as_of()`, a recent
Monday, so the generated weeks always start on a Monday and the relative data (and its incidents) is the same
whatever month the demo runs in.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import numpy as np
import polars as pl

from finops.synth.anomalies import Plan, behaviours
from finops.synth.gateway import generate_gateway, write

__all__ = [
    "DEMO_SEED",
    "DemoData",
    "DemoPlan",
    "DemoBudget",
    "default_as_of",
    "demo_budgets",
    "generate_demo",
    "write_demo",
]

DEMO_SEED = 2
SELF_HOSTED_MODEL = "llama-3.3-70b-internal"  # priced by fixtures/prices.csv (a `model` override)
UNKNOWN_MODEL = "acme-rerank-v2"  # priced by nothing: the __unpriced__ bucket
UNOBSERVED_LINE = "gpt-image-1, image generation"  # billed by OpenAI, never seen by the gateway
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class DemoPlan:
    """What to generate: `days` days of data ending just before `as_of` (a UTC midnight)."""

    as_of: datetime
    seed: int = DEMO_SEED
    days: int = 63
    teams: int = 8
    rows: int = 320_000
    incidents: Plan = field(
        default_factory=lambda: Plan(
            retry_chains=2, retry_storms=2, cost_spikes=3, level_shifts=0, outlier_requests=4, agent_loops=0
        )
    )

    @property
    def start(self) -> datetime:
        return self.as_of - timedelta(days=self.days)


@dataclass(frozen=True)
class DemoData:
    gateway: pl.DataFrame  # canonical gateway records (synth.gateway columns)
    gpu_jobs: pl.DataFrame  # canonical GPU job records
    gpu_capacity: pl.DataFrame  # canonical capacity records, one per pool and UTC day
    openai_costs: list[dict[str, object]]  # OpenAI Costs API pages, one per day
    anthropic_costs: list[dict[str, object]]  # Anthropic cost report pages, one per day


def default_as_of(now: datetime | None = None) -> datetime:
    """The latest Monday 00:00 UTC, at least a day before `now`, that falls on the 15th-28th of its month:
    far enough into the month for "this month vs last" and a month-end forecast to mean something."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    day = (now - timedelta(days=1)).date()
    day -= timedelta(days=day.weekday())
    while not 15 <= day.day <= 28:
        day -= timedelta(days=7)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def generate_demo(plan: DemoPlan) -> DemoData:
    """Every input of the demo, as frames and pages (nothing is written)."""
    if plan.as_of.tzinfo is None or plan.as_of != plan.as_of.replace(hour=0, minute=0, second=0, microsecond=0):
        raise ValueError("as_of must be a UTC midnight")
    gateway = _gateway(plan)
    jobs, capacity = _gpu(plan)
    return DemoData(
        gateway=gateway,
        gpu_jobs=jobs,
        gpu_capacity=capacity,
        openai_costs=_openai_bills(gateway, plan),
        anthropic_costs=_anthropic_bills(gateway, plan),
    )


def write_demo(data: DemoData, directory: Path) -> dict[str, list[Path]]:
    """Write the demo's files under `directory`; {source: [paths]} in the order they should be ingested."""
    directory.mkdir(parents=True, exist_ok=True)
    gateway = write(data.gateway, directory / "gateway.parquet")
    jobs = directory / "gpu-jobs.jsonl"
    data.gpu_jobs.with_columns(pl.col("start", "end").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_ndjson(jobs)
    capacity = directory / "gpu-capacity.csv"
    data.gpu_capacity.with_columns(pl.col("start", "end").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(capacity)
    openai = directory / "openai-costs.jsonl"
    openai.write_text("".join(json.dumps(page) + "\n" for page in data.openai_costs))
    anthropic = directory / "anthropic-costs.jsonl"
    anthropic.write_text("".join(json.dumps(page) + "\n" for page in data.anthropic_costs))
    return {
        "gateway": [gateway],
        "gpu": [jobs, capacity],
        "openai-costs": [openai],
        "anthropic-costs": [anthropic],
    }


# ------------------------------------------------------------------------------------------- gateway


def _gateway(plan: DemoPlan) -> pl.DataFrame:
    """The generator's records, with one feature's slice on the self-hosted model and a few unknown-model calls."""
    frame = generate_gateway(
        plan.rows,
        seed=plan.seed,
        start=plan.start,
        days=plan.days,
        teams=plan.teams,
        behaviours=behaviours(plan.incidents),
    )
    u = pl.Series(_uniform(plan.seed, "models", frame.height))
    # a cheap self-hosted model takes over a twentieth of the calls to the small hosted models
    small = pl.col("model").cast(pl.String).is_in(["gpt-4.1-nano", "gpt-4o-mini", "gemini-2.0-flash"])
    self_hosted = small & (u < 0.05)
    # a reranker nobody priced: three calls in a thousand
    unknown = u >= 0.997
    model_dtype, provider_dtype = frame.schema["model"], frame.schema["provider"]
    return frame.with_columns(
        model=pl.when(self_hosted)
        .then(pl.lit(SELF_HOSTED_MODEL))
        .when(unknown)
        .then(pl.lit(UNKNOWN_MODEL))
        .otherwise(pl.col("model").cast(pl.String))
        .cast(model_dtype),
        provider=pl.when(self_hosted | unknown)
        .then(pl.lit("selfhosted"))
        .otherwise(pl.col("provider").cast(pl.String))
        .cast(provider_dtype),
        cost_usd=pl.when(self_hosted | unknown).then(None).otherwise(pl.col("cost_usd")),
    )


def _uniform(seed: int, stream: str, n: int) -> np.ndarray:
    return np.random.default_rng([seed, zlib.crc32(stream.encode())]).random(n)


# ----------------------------------------------------------------------------------------------- GPU

# (cluster, gpu_type, gpus, hourly_rate or None: priced by fixtures/prices.csv or the bundled list)
_POOLS = (
    ("gpu-east", "H100", 2, "3.90"),
    ("gpu-east", "A100-80GB", 2, "1.80"),
    ("inference-west", "L4", 4, None),
)
# batch jobs per pool: (pool index, mean jobs a weekday, gpu counts, mean hours, teams, features)
_BATCH = (
    (0, 4.5, (1, 2), 4.0, ("search", "risk"), ("ranker-training", "risk-model-training")),
    (1, 8.0, (1, 2), 2.5, ("fraud", "search"), ("fraud-scoring-eval", "embedding-backfill")),
)
# always-on inference services on the L4 pool: (team, feature, GPUs)
_SERVICES = (("ads", "ad-ranker-serving", 1.0), ("support", "reply-embedder", 0.5), ("search", "query-encoder", 0.75))


def _gpu(plan: DemoPlan) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng([plan.seed, zlib.crc32(b"gpu")])
    days = np.arange(plan.days)
    weekday = (plan.start.weekday() + days) % 7
    parts = []
    for pool, mean, counts, hours, teams, features in _BATCH:
        per_day = rng.poisson(np.where(weekday >= 5, mean * 0.4, mean))
        n = int(per_day.sum())
        day = np.repeat(days, per_day)
        owner = rng.integers(0, len(teams), n)
        start_ms = day * _DAY_MS + (rng.random(n) * 20 * 3_600_000).astype(np.int64)
        length_ms = (rng.gamma(4.0, hours / 4.0, n) * 3_600_000).astype(np.int64) + 600_000
        jobs = _jobs(plan, pool, start_ms, length_ms, rng.choice(counts, n).astype(float), owner, teams, features, rng)
        parts.append(_within_capacity(jobs, _POOLS[pool][2]))
    # services: one record per service and UTC day
    n = plan.days * len(_SERVICES)
    service = np.tile(np.arange(len(_SERVICES)), plan.days)
    day = np.repeat(days, len(_SERVICES))
    parts.append(
        _jobs(
            plan,
            2,
            day * _DAY_MS,
            np.full(n, _DAY_MS),
            np.array([s[2] for s in _SERVICES])[service],
            service,
            tuple(s[0] for s in _SERVICES),
            tuple(s[1] for s in _SERVICES),
            rng,
        )
    )
    jobs = pl.concat(parts).sort("start", "job_id")
    capacity = pl.DataFrame(
        {
            "cluster": [p[0] for p in _POOLS],
            "gpu_type": [p[1] for p in _POOLS],
            "gpu_count": [p[2] for p in _POOLS],
            "hourly_rate": [p[3] for p in _POOLS],
        }
    ).join(pl.DataFrame({"day": days}), how="cross")
    start = pl.lit(plan.start) + pl.duration(days=pl.col("day"))
    capacity = capacity.select(
        "cluster",
        "gpu_type",
        "gpu_count",
        start.alias("start"),
        (start + pl.duration(days=1)).alias("end"),
        "hourly_rate",
    ).sort("start", "cluster", "gpu_type")
    return jobs, capacity


def _within_capacity(jobs: pl.DataFrame, gpus: int, share: float = 0.8) -> pl.DataFrame:
    """The jobs of each start day up to `share` of the pool's GPU-seconds that day (a scheduler queues the
    rest), so no day is over-allocated even with the jobs that run past midnight."""
    gpu_seconds = (pl.col("end") - pl.col("start")).dt.total_seconds() * pl.col("gpu_count")
    used = gpu_seconds.cum_sum().over(pl.col("start").dt.date(), order_by="start")
    return jobs.filter(used <= share * gpus * 86_400)


def _jobs(
    plan: DemoPlan,
    pool: int,
    start_ms: np.ndarray,
    length_ms: np.ndarray,
    gpus: np.ndarray,
    owner: np.ndarray,
    teams: tuple[str, ...],
    features: tuple[str, ...],
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Job records of one pool; jobs still running at `as_of` end there (only finished time is logged)."""
    cluster, gpu_type = _POOLS[pool][0], _POOLS[pool][1]
    end_ms = np.minimum(start_ms + length_ms, plan.days * _DAY_MS)
    base = pl.lit(plan.start)
    frame = pl.DataFrame(
        {
            "_n": np.arange(len(start_ms)),
            "_start": start_ms,
            "_end": end_ms,
            "gpu_count": gpus,
            "team": np.array(teams)[owner],
            "feature": np.array(features)[owner],
            "status": np.where(rng.random(len(start_ms)) < 0.05, "failed", "completed"),
        }
    )
    prefix = "k8s-" if cluster == "inference-west" else "slurm-"
    return frame.select(
        (pl.lit(f"{prefix}{gpu_type.lower()}-") + pl.col("_n").cast(pl.String).str.zfill(5)).alias("job_id"),
        (base + pl.duration(milliseconds=pl.col("_start"))).dt.truncate("1s").alias("start"),
        (base + pl.duration(milliseconds=pl.col("_end"))).dt.truncate("1s").alias("end"),
        pl.lit(gpu_type).alias("gpu_type"),
        "gpu_count",
        "team",
        "feature",
        pl.lit(cluster).alias("cluster"),
        "status",
    )


# --------------------------------------------------------------------------------------------- bills


def _measured(gateway: pl.DataFrame, provider: str) -> pl.DataFrame:
    """The gateway's own cost per UTC day and model of one provider (the days before `as_of`), with the
    input and output token counts that split it into bill lines."""
    return (
        gateway.filter(pl.col("provider").cast(pl.String) == provider, pl.col("cost_usd").is_not_null())
        .group_by(pl.col("ts").dt.date().alias("day"), pl.col("model").cast(pl.String))
        .agg(
            pl.col("cost_usd").sum().alias("cost"),
            pl.col("input_tokens").sum().alias("input_tokens"),
            pl.col("output_tokens").sum().alias("output_tokens"),
        )
        .filter(pl.col("cost") > 0)
        .sort("day", "model")
    )


def _billed(measured: pl.DataFrame, plan: DemoPlan, stream: str, bias: float) -> pl.DataFrame:
    """Bill amounts: the measured cost x (1 + bias + noise), split into an input and an output line by a
    4:1 output:input price weight; dollars with 8 decimals (the Costs API's precision)."""
    noise = _uniform(plan.seed, stream, measured.height) * 0.02 - 0.01
    factor = pl.Series(1.0 + bias + noise)
    weight_out = pl.col("output_tokens") * 4 / (pl.col("input_tokens") + pl.col("output_tokens") * 4)
    total = pl.col("cost").cast(pl.Float64) * factor
    return measured.with_columns(
        output=(total * weight_out.fill_nan(0.0)).round(8),
        input=(total * (1 - weight_out.fill_nan(0.0))).round(8),
    )


def _openai_bills(gateway: pl.DataFrame, plan: DemoPlan) -> list[dict[str, object]]:
    billed = _billed(_measured(gateway, "openai"), plan, "openai-bill", 0.0)
    # image generation the gateway never saw: 4-8 % on top of each day's bill
    daily = billed.group_by("day").agg((pl.col("input") + pl.col("output")).sum().alias("billed")).sort("day")
    share = pl.Series(0.04 + _uniform(plan.seed, "images", daily.height) * 0.04)
    image = daily.select("day", amount=(pl.col("billed") * share).round(2))
    lines = pl.concat(
        [
            billed.select("day", (pl.col("model") + ", input").alias("line_item"), pl.col("input").alias("amount")),
            billed.select("day", (pl.col("model") + ", output").alias("line_item"), pl.col("output").alias("amount")),
            image.select("day", pl.lit(UNOBSERVED_LINE).alias("line_item"), "amount"),
        ]
    ).sort("day", "line_item")
    pages = []
    for (day,), part in lines.group_by("day", maintain_order=True):  # a loop over days (pages), not rows
        start = int(datetime.combine(day, datetime.min.time(), UTC).timestamp())
        results = [
            {
                "object": "organization.costs.result",
                "amount": {"value": amount, "currency": "usd"},
                "line_item": item,
                "project_id": "proj_demo",
                "api_key_id": None,
                "quantity": None,
                "quantity_unit": None,
            }
            for item, amount in zip(part["line_item"], part["amount"], strict=True)
        ]
        bucket = {"object": "bucket", "start_time": start, "end_time": start + 86_400, "results": results}
        pages.append({"object": "page", "data": [bucket], "has_more": False, "next_page": None})
    return pages


def _anthropic_bills(gateway: pl.DataFrame, plan: DemoPlan) -> list[dict[str, object]]:
    """Anthropic's report: amounts are decimal strings in cents; it bills about 2 % more than the gateway saw."""
    billed = _billed(_measured(gateway, "anthropic"), plan, "anthropic-bill", 0.02)
    lines = pl.concat(
        [
            billed.select("day", "model", pl.lit("uncached_input_tokens").alias("token_type"), amount=pl.col("input")),
            billed.select("day", "model", pl.lit("output_tokens").alias("token_type"), amount=pl.col("output")),
        ]
    ).with_columns(cents=(pl.col("amount") * 100).round(6).cast(pl.String))
    pages = []
    for (day,), part in lines.sort("day", "model", "token_type").group_by("day", maintain_order=True):
        results = [
            {
                "currency": "USD",
                "amount": cents,
                "workspace_id": "wrkspc_demo",
                "description": f"{model} usage - {kind}",
                "cost_type": "tokens",
                "context_window": "0-200k",
                "model": model,
                "service_tier": "standard",
                "token_type": kind,
                "inference_geo": None,
            }
            for model, kind, cents in zip(part["model"], part["token_type"], part["cents"], strict=True)
        ]
        start = datetime.combine(day, datetime.min.time(), UTC)
        bucket = {
            "starting_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ending_at": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "results": results,
        }
        pages.append({"data": [bucket], "has_more": False, "next_page": None})
    return pages


# ------------------------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class DemoBudget:
    team: str
    amount_usd: Decimal
    why: str


def demo_budgets(forecasts: pl.DataFrame) -> list[DemoBudget]:
    """Monthly team budgets from the month forecasts of a first run (columns team, actual_to_date_usd,
    forecast_usd; one row per team, buckets left out): the second costliest team gets a budget between its
    spend so far and its forecast (about to be breached), the third a tight one (forecast at about 95 %),
    every other team 30 % above its forecast. Amounts are rounded to whole dollars."""
    ranked = forecasts.filter(~pl.col("team").str.starts_with("__")).sort("forecast_usd", "team", descending=True)
    budgets = []
    for rank, (team, actual, forecast) in enumerate(
        ranked.select("team", "actual_to_date_usd", "forecast_usd").iter_rows()  # one row per team
    ):
        if rank == 1:
            amount = actual + (forecast - actual) * Decimal("0.2")
            why = "about to be breached: spent most of it, the forecast is well past it"
        elif rank == 2:
            amount, why = forecast * Decimal("1.05"), "tight: the forecast is close to it"
        else:
            amount, why = forecast * Decimal("1.3"), "comfortable"
        budgets.append(DemoBudget(team, max(amount, Decimal(1)).quantize(Decimal(1), ROUND_CEILING), why))
    return budgets
