"""The gateway-log generator: deterministic, DESIGN.md invariants on every row, realistic, and ingestible."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from genai_prices import Usage, calc_price
from polars.testing import assert_frame_equal

from finops.store.db import Database
from finops.synth.gateway import (
    GATEWAY_COLUMNS,
    MODELS,
    Behaviour,
    World,
    build_world,
    generate_gateway,
    write,
)
from tests.helpers import ingest_one, rows

ROWS = 20_000
START = datetime(2025, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return generate_gateway(ROWS, seed=11, start=START, days=30)


def _calls(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per logical call (trace, prompt): its attempts in order and their statuses."""
    return frame.group_by("trace_id", "prompt_hash").agg(
        pl.col("attempt").sort(), pl.col("status").sort_by("attempt").cast(pl.String), pl.len()
    )


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_the_same_frame() -> None:
    first = generate_gateway(5_000, seed=3, days=10, teams=12)
    second = generate_gateway(5_000, seed=3, days=10, teams=12)

    assert_frame_equal(first, second)


def test_another_seed_gives_other_data() -> None:
    first = generate_gateway(2_000, seed=3)
    other = generate_gateway(2_000, seed=4)

    assert set(first["request_id"]).isdisjoint(other["request_id"])
    assert not first["input_tokens"].equals(other["input_tokens"])


@pytest.mark.parametrize("n", [0, 1, 17, 999, 12_345])
def test_exactly_the_rows_asked_for(n: int) -> None:
    result = generate_gateway(n, seed=1)

    assert result.height == n
    assert result.columns == list(GATEWAY_COLUMNS)


# ------------------------------------------------------------------------------------- invariants


def test_design_invariants_hold_on_every_row(frame: pl.DataFrame) -> None:
    tokens = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens"]
    broken = frame.filter(
        (pl.col("cached_input_tokens") + pl.col("cache_write_tokens") > pl.col("input_tokens"))
        | (pl.col("reasoning_tokens") > pl.col("output_tokens"))
        | (pl.col("attempt") < 1)
        | pl.any_horizontal(pl.col(tokens) < 0)
        | (pl.col("latency_ms") < 0)
        | (pl.col("cost_usd") < 0)
        | pl.any_horizontal(pl.col("request_id", "ts", "model", "input_tokens", "output_tokens").is_null())
    )

    assert broken.height == 0, broken.head()


def test_ids_unique_and_rows_in_time_order(frame: pl.DataFrame) -> None:
    assert frame["request_id"].n_unique() == frame.height
    assert frame["ts"].is_sorted()
    assert frame["ts"].min() >= START  # type: ignore[operator]
    assert frame["ts"].max() < START + timedelta(days=31)  # type: ignore[operator]


def test_retries_share_trace_and_end_in_success(frame: pl.DataFrame) -> None:
    calls = _calls(frame)
    retried = calls.filter(pl.col("len") > 1)
    share = retried.height / calls.height

    assert 0.01 <= share <= 0.03, share
    # attempts are 1, 2, ... k; every attempt but the last failed; the last succeeded
    for attempts, statuses in retried.select("attempt", "status").head(200).iter_rows():
        assert attempts == list(range(1, len(attempts) + 1))
        assert statuses[-1] == "200"
        assert all(s in {"429", "500", "503", "529", "timeout"} for s in statuses[:-1])
    single = calls.filter(pl.col("len") == 1)["status"].list.first()
    assert set(single.unique()) <= {"200", "400"}


def test_retry_share_follows_the_argument() -> None:
    calls = _calls(generate_gateway(20_000, seed=2, retry_share=0.05))

    assert 0.04 <= calls.filter(pl.col("len") > 1).height / calls.height <= 0.06


def test_failed_attempts_have_no_output_and_cost_nothing(frame: pl.DataFrame) -> None:
    failed = frame.filter(pl.col("status") != "200")

    assert failed.height > 0
    assert failed["output_tokens"].sum() == 0
    assert failed["cached_input_tokens"].sum() == 0
    assert failed["cost_usd"].sum() == 0
    refused = failed.filter(pl.col("status").is_in(["429", "503", "529"]))
    read = failed.filter(pl.col("status").is_in(["timeout", "500"]))
    assert refused["input_tokens"].sum() == 0  # refused before the prompt was read: no tokens
    assert read.select(pl.col("input_tokens").min()).item() > 0  # the gateway still counted the prompt


# -------------------------------------------------------------------------------------- realism


def test_many_teams_features_providers_and_tiers(frame: pl.DataFrame) -> None:
    assert frame["team"].drop_nulls().n_unique() >= 25
    assert frame.select(pl.struct("team", "feature")).n_unique() >= 60
    assert set(frame["provider"].unique()) == {"openai", "anthropic", "google"}
    assert set(frame["service_tier"].unique()) == {"default", "batch", "flex", "priority"}
    assert 0 < frame["team"].null_count() < 0.02 * frame.height  # a little untagged traffic
    assert frame.group_by("trace_id").len().select(pl.col("len").max()).item() > 5  # agent sessions


def test_token_buckets_follow_the_models(frame: pl.DataFrame) -> None:
    by_model = (
        frame.filter(pl.col("status") == "200")
        .group_by("model", "provider")
        .agg(
            pl.col("reasoning_tokens").sum(),
            pl.col("cache_write_tokens").sum(),
            pl.col("cached_input_tokens").sum(),
            pl.col("output_tokens").sum(),
        )
    )
    reasoning_models = {m.name for m in MODELS if m.reasoning == "always"}
    never = {m.name for m in MODELS if m.reasoning == "never"}
    for model, provider, reasoning, written, cached, output in by_model.iter_rows():
        assert (reasoning > 0) == (model in reasoning_models or model not in never), model
        assert written == 0 or provider == "anthropic", model
        if model == "text-embedding-3-small":
            assert (output, cached) == (0, 0)
    assert by_model["cached_input_tokens"].sum() > 0
    assert by_model["cache_write_tokens"].sum() > 0


def test_heavy_tailed_tokens(frame: pl.DataFrame) -> None:
    ok = frame.filter(pl.col("status") == "200", pl.col("feature").is_not_null())
    ratios = ok.group_by("team", "feature").agg(
        (pl.col("input_tokens").quantile(0.99) / pl.col("input_tokens").median()).alias("tail"), pl.len()
    )

    assert ratios.filter(pl.col("len") > 500)["tail"].median() > 3  # type: ignore[operator]


def test_weekly_seasonality_and_growth() -> None:
    df = generate_gateway(60_000, seed=5, start=START, days=28)
    daily = df.group_by(pl.col("ts").dt.date().alias("day")).len().sort("day")
    weekend = daily.filter(pl.col("day").dt.weekday() >= 6)["len"].mean()
    weekday = daily.filter(pl.col("day").dt.weekday() < 6)["len"].mean()
    hourly = df.group_by(pl.col("ts").dt.hour()).len()["len"]

    assert weekend < 0.8 * weekday  # type: ignore[operator]
    assert daily["len"].tail(7).sum() > daily["len"].head(7).sum()
    assert hourly.max() > 2 * hourly.min()  # type: ignore[operator]


def test_models_resolve_in_the_price_catalog() -> None:
    for model in MODELS:
        price = calc_price(Usage(input_tokens=1_000, output_tokens=100), model.name, provider_id=model.provider)
        assert price.total_price > 0, model.name


def test_reported_cost_matches_the_catalog(frame: pl.DataFrame) -> None:
    sample = frame.filter(pl.col("status") == "200", pl.col("service_tier") != "batch").sample(200, seed=0)
    for model, provider, tier, ts, inp, cached, written, out, cost in sample.select(
        "model", "provider", "service_tier", "ts", "input_tokens", "cached_input_tokens", "cache_write_tokens",
        "output_tokens", "cost_usd",
    ).iter_rows():  # fmt: skip
        usage = Usage(input_tokens=inp, cache_read_tokens=cached, cache_write_tokens=written, output_tokens=out)
        context = {"service_tier": tier} if tier in ("flex", "priority") else None
        expected = calc_price(
            usage, model, provider_id=provider, genai_request_timestamp=START, price_context=context
        ).total_price
        assert cost == Decimal(expected).quantize(Decimal("1e-12")), (model, tier, inp, cached, written, out)
        del ts


# ------------------------------------------------------------------------------------ extension


def test_a_behaviour_can_plant_a_labelled_scenario() -> None:
    def slow_team(frame: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        hit = pl.col("feature") == 0
        return frame.with_columns(
            latency_ms=pl.when(hit).then(pl.col("latency_ms") * 10).otherwise(pl.col("latency_ms")),
            scenario=pl.when(hit).then(pl.lit("slow", pl.Categorical)).otherwise(pl.col("scenario")),
        )

    plain = generate_gateway(3_000, seed=9, labels=True)
    planted = generate_gateway(3_000, seed=9, behaviours=[Behaviour("slow", "attempts", slow_team)], labels=True)
    world = build_world(seed=9)
    first = (pl.col("team") == world.team_names[world.f_team[0]]) & (pl.col("feature") == world.f_name[0])

    assert plain["scenario"].null_count() == plain.height
    assert planted.filter(pl.col("scenario") == "slow").height == planted.filter(first).height > 0
    assert_frame_equal(plain.drop("latency_ms", "scenario"), planted.drop("latency_ms", "scenario"))


# -------------------------------------------------------------------------------------- writing


def test_jsonl_shapes(frame: pl.DataFrame, tmp_path: Path) -> None:
    path = write(frame.head(2_000), tmp_path / "g.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]

    assert len(records) == 2_000
    assert list(records[0]) == list(GATEWAY_COLUMNS)
    assert all(r["ts"].endswith("Z") and datetime.fromisoformat(r["ts"]) >= START for r in records)
    assert all(isinstance(r["tags"], dict) and None not in r["tags"].values() for r in records)
    assert {type(r["status"]) for r in records} <= {int, str}
    assert all(isinstance(r["status"], int) or r["status"] == "timeout" for r in records)


def test_csv_and_parquet_shapes(frame: pl.DataFrame, tmp_path: Path) -> None:
    with write(frame.head(500), tmp_path / "g.csv").open(newline="") as fh:
        first = next(csv.DictReader(fh))
    schema = pq.read_schema(write(frame.head(500), tmp_path / "g.parquet"))

    assert first["ts"].endswith("Z")
    assert isinstance(json.loads(first["tags"]), dict)
    assert schema.names == list(GATEWAY_COLUMNS)
    assert schema.field("tags").type == pa.map_(pa.string(), pa.string())
    assert schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert pa.types.is_decimal(schema.field("cost_usd").type)


@pytest.mark.parametrize("name", ["g.jsonl", "g.csv", "g.parquet", "g.jsonl.gz"])
def test_ingests_with_no_rejects_and_reingests_as_duplicates(
    frame: pl.DataFrame, db: Database, tmp_path: Path, name: str
) -> None:
    path = write(frame, tmp_path / name)

    first = ingest_one(db, path, "gateway")
    again = ingest_one(db, path, "gateway")

    assert (first.lines, first.accepted, first.rejected, first.duplicates) == (ROWS, ROWS, 0, 0), first.samples
    assert (again.accepted, again.duplicates, again.rejected) == (0, ROWS, 0)
    stored = rows(
        db,
        "SELECT sum(input_tokens) AS input, sum(reasoning_tokens) AS reasoning, sum(reported_cost_usd) AS cost, "
        "count(DISTINCT team) AS teams, count(tags) AS tags FROM usage_events",
    )[0]
    assert stored == {
        "input": frame["input_tokens"].sum(),
        "reasoning": frame["reasoning_tokens"].sum(),
        "cost": frame["cost_usd"].sum(),
        "teams": frame["team"].drop_nulls().n_unique(),
        "tags": ROWS,
    }
