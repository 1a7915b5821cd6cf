"""Planted, labelled anomalies on top of the gateway generator: the truth the detectors are scored against.

Each planted incident is a `Behaviour` of `finops.synth.gateway` that changes or appends rows and labels
them in `scenario` as `<kind>#<n>`; `truth(frame)` reads the labels back into one row per incident with
what a detector should report (window, team, feature, amplification, wasted dollars, trace ids).

Kinds (all column-at-a-time; loops run over the handful of planted incidents, never over rows):
  - `retry_chain`: one call retried 10x-50x (an edge case: the output fails validation or times out
    after generating), every attempt billed: amplification = attempts, wasted = every attempt but the last;
  - `retry_storm`: a feature's calls in a 10-60 minute window fail 2-5 times each (a brown-out,
    a rate-limit cascade): amplification >= 3; 429s are free, timeouts are billed (wasted dollars);
  - `cost_spike`: a feature's traffic multiplied 3x-15x for 1-6 hours (a burst, a loop over a dataset);
  - `level_shift`: from some day on, a feature's calls cost 2x-3x (longer prompts: a new normal);
  - `outlier_request`: single calls with a 200k-token context or 40k tokens of runaway reasoning, each in a
    feature/model whose own calls stay under a tenth of that (else it would not be an outlier);
  - `agent_loop`: an agent session of 60-150 steps whose context grows step after step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from finops.synth.gateway import Behaviour, World

__all__ = ["KINDS", "Plan", "background_changes", "behaviours", "generate_labelled", "truth"]

KINDS = ("retry_chain", "retry_storm", "cost_spike", "level_shift", "outlier_request", "agent_loop")
_MS_HOUR = 3_600_000
_MS_DAY = 24 * _MS_HOUR


@dataclass(frozen=True)
class Plan:
    """How many incidents of each kind to plant."""

    retry_chains: int = 12
    retry_storms: int = 6
    cost_spikes: int = 6
    level_shifts: int = 2
    outlier_requests: int = 10
    agent_loops: int = 4


def _label(frame: pl.DataFrame, mask: np.ndarray, labels: np.ndarray | str) -> pl.DataFrame:
    """Set `scenario` where `mask` holds (a label per row, or one label)."""
    current = frame["scenario"].cast(pl.String).to_list()
    new = [labels] * int(mask.sum()) if isinstance(labels, str) else list(labels[mask])
    for index, label in zip(np.flatnonzero(mask), new, strict=True):  # a loop over planted rows only
        current[index] = label
    return frame.with_columns(scenario=pl.Series(current, dtype=pl.String).cast(pl.Categorical))


def _busy_features(
    calls: pl.DataFrame, world: World, count: int, rng: np.random.Generator, *, exclude: set[int] | None = None
) -> list[int]:
    """Features with enough traffic for an incident to stand out against their own history."""
    # by token volume (input, and output weighted as it is priced, about 4x): incidents worth dollars
    volume = calls.group_by("feature").agg((pl.col("input_tokens") + 4 * pl.col("output_tokens")).sum().alias("len"))
    volume = volume.sort("len", "feature", descending=[True, False])  # a total order: the same seed, the same pick
    candidates = [f for f in volume["feature"].to_list()[: max(count * 3, 12)] if f not in (exclude or set())]
    picked = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False)
    return [int(candidates[i]) for i in picked]


def _peak_start(calls: pl.DataFrame, feature: int, world: World, rng: np.random.Generator, *, first_day: float) -> int:
    """A start time (ms) inside the feature's busiest hours, on a day after `first_day`."""
    times = calls.filter(pl.col("feature") == feature)["call_ms"].to_numpy()
    times = times[times >= world.start_ms + first_day * _MS_DAY]
    hours = ((times - world.start_ms) // _MS_HOUR) % 24
    busiest = np.bincount(hours, minlength=24).argmax()
    day = int(rng.integers(math.ceil(first_day), world.days - 1))
    return int(world.start_ms + day * _MS_DAY + busiest * _MS_HOUR + rng.integers(0, 20) * 60_000)


# ------------------------------------------------------------------------------------------ call level


def _plant_retry_chains(n: int) -> Behaviour:
    def fn(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        if n == 0:
            return calls
        eligible = np.flatnonzero(
            (calls["attempts"].to_numpy() == 1)
            & ~calls["rejected"].to_numpy()
            & (calls["output_tokens"].to_numpy() > 0)
            & (calls["call_ms"].to_numpy() > world.start_ms + 7 * _MS_DAY)
        )
        chosen = rng.choice(eligible, size=min(n, len(eligible)), replace=False)
        attempts = calls["attempts"].to_numpy().copy()
        attempts[chosen] = rng.integers(10, 51, len(chosen))
        labels = np.empty(calls.height, dtype=object)
        labels[chosen] = [f"retry_chain#{i}" for i in range(len(chosen))]
        mask = np.zeros(calls.height, dtype=bool)
        mask[chosen] = True
        return _label(calls.with_columns(attempts=pl.Series(attempts).cast(calls["attempts"].dtype)), mask, labels)

    return Behaviour("plant_retry_chains", "calls", fn)


def _plant_retry_storms(n: int) -> Behaviour:
    """A brown-out fails every call of its feature in its window 2-5 times: the ordinary ones, those that
    failed once anyway (they take the larger count) and a planted burst's copies alike, so that the truth
    counts what a detector sees in the window. It runs after `_plant_cost_spikes` (a burst's calls in the
    window become the storm's) and leaves planted chains alone; the feature and the window are picked on
    the calls without the burst's copies. Before, the calls of a burst planted later and those already
    retried were spared, and the truth's amplification was that of the storm's calls only (seed 12: 4.6x
    planted where the feature's calls in the window made 2.1x)."""

    def fn(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        attempts = calls["attempts"].to_numpy().copy()
        labels = np.empty(calls.height, dtype=object)
        mask = np.zeros(calls.height, dtype=bool)
        feature = calls["feature"].to_numpy()
        when = calls["call_ms"].to_numpy()
        scenario = calls["scenario"].cast(pl.String)
        own = calls.filter(~scenario.str.starts_with("cost_spike").fill_null(value=False))
        chain = scenario.str.starts_with("retry_chain").fill_null(value=False).to_numpy()
        for i, f in enumerate(_busy_features(own, world, n, rng)):
            start = _peak_start(own, f, world, rng, first_day=8)
            length = int(rng.integers(10, 61)) * 60_000
            hit = (feature == f) & (when >= start) & (when < start + length) & ~chain & ~mask
            attempts[hit] = np.maximum(attempts[hit], rng.integers(3, 7, hit.sum()))  # 2-5 failures, then the answer
            labels[hit] = f"retry_storm#{i}"
            mask |= hit
        return _label(calls.with_columns(attempts=pl.Series(attempts).cast(calls["attempts"].dtype)), mask, labels)

    return Behaviour("plant_retry_storms", "calls", fn)


def _plant_cost_spikes(n: int) -> Behaviour:
    """A burst: the ordinary sessions of a busy feature's 1-6 hour window copied 2-14 times (x3-x15) under new
    trace ids, spread over the window. Each copy fails as the feature's calls do, its (attempts, rejected)
    drawn from the feature's own calls: before, a copy kept the retries of the call it copied, so one retried
    call became up to 15 retried calls in one hour, a retry storm no real burst makes (bench seeds 28, 33)."""

    def fn(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        extra = []
        next_session = int(calls["session"].max() or 0) + 1
        for i, f in enumerate(_busy_features(calls, world, n, rng)):
            start = _peak_start(calls, f, world, rng, first_day=10)
            length = int(rng.integers(1, 7)) * _MS_HOUR
            factor = int(rng.integers(3, 16))
            window = calls.filter(  # ordinary calls only: a planted chain copied would be a second chain
                (pl.col("feature") == f)
                & (pl.col("call_ms") >= start)
                & (pl.col("call_ms") < start + length)
                & pl.col("scenario").is_null()
            )
            if window.height == 0:
                continue
            sessions = window["session"].unique().sort()
            # a copy fails as the feature's calls do, independently of the call it copies (a burst of new
            # sessions does not repeat their retries): (attempts, rejected) drawn from the feature's own calls
            usual = calls.filter((pl.col("feature") == f) & pl.col("scenario").is_null()).select("attempts", "rejected")
            for _ in range(factor - 1):  # every session of the window again, under new trace ids
                remap = pl.DataFrame({"session": sessions, "_new": np.arange(len(sessions)) + next_session})
                next_session += len(sessions)
                shift = int(rng.integers(-length // 4, length // 4))
                copies = (
                    window.join(remap, on="session", maintain_order="left")
                    .with_columns(
                        session=pl.col("_new").cast(calls["session"].dtype),
                        call_ms=((pl.col("call_ms") - start + shift) % length) + start,
                        scenario=pl.lit(f"cost_spike#{i}").cast(pl.Categorical),
                    )
                    .drop("_new")
                )
                drawn = usual[rng.integers(0, usual.height, copies.height)]
                copies = copies.with_columns(attempts=drawn["attempts"], rejected=drawn["rejected"])
                extra.append(copies.select(calls.columns))
        return pl.concat([calls, *extra], how="vertical_relaxed") if extra else calls

    return Behaviour("plant_cost_spikes", "calls", fn)


def _plant_level_shifts(n: int) -> Behaviour:
    def fn(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        factor_in = np.ones(calls.height)
        labels = np.empty(calls.height, dtype=object)
        mask = np.zeros(calls.height, dtype=bool)
        for i, f in enumerate(_busy_features(calls, world, n, rng)):
            day = int(rng.integers(world.days // 2, world.days - 4))
            hit = (calls["feature"].to_numpy() == f) & (calls["call_ms"].to_numpy() >= world.start_ms + day * _MS_DAY)
            factor_in[hit] = rng.uniform(2.0, 3.0)
            labels[hit] = f"level_shift#{i}"
            mask |= hit
        scaled = {
            c: (calls[c].to_numpy() * factor_in).astype(np.int64)
            for c in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
        }
        return _label(
            calls.with_columns(**{c: pl.Series(v).cast(calls[c].dtype) for c, v in scaled.items()}), mask, labels
        )

    return Behaviour("plant_level_shifts", "calls", fn)


_CONTEXT_TOKENS = (180_000, 260_000)  # a huge context: input tokens
_RUNAWAY_TOKENS = (30_000, 60_000)  # runaway reasoning: output tokens, all but 500 of them reasoning
_OUTLIER_MARGIN = 10  # a plant is at least this many times its feature/model's 99.9th percentile of that count


def _plant_outliers(n: int) -> Behaviour:
    """Single calls far above their feature/model's usual: a huge context or runaway reasoning.

    A plant goes only to a feature/model whose own 99.9th percentile of the planted count (input tokens for
    a context, output tokens for runaway reasoning) is at most 1/10 of the planted size: 40k reasoning tokens
    in a feature whose calls reason up to 32k every day is not an outlier, and no detector should call it
    one (before this rule, half the plants landed in such features and were labelled outliers anyway).
    """

    def fn(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        usual = calls.group_by("feature", "model").agg(
            _p_in=pl.col("input_tokens").quantile(0.999), _p_out=pl.col("output_tokens").quantile(0.999)
        )
        ranges = calls.select("feature", "model").join(
            usual, on=["feature", "model"], how="left", maintain_order="left"
        )  # row for row with `calls`
        base = (
            (calls["attempts"].to_numpy() == 1)
            & (calls["output_tokens"].to_numpy() > 0)
            & (calls["call_ms"].to_numpy() > world.start_ms + 7 * _MS_DAY)
        )
        fits_context = base & (ranges["_p_in"].to_numpy() * _OUTLIER_MARGIN <= _CONTEXT_TOKENS[0])
        fits_runaway = base & (ranges["_p_out"].to_numpy() * _OUTLIER_MARGIN <= _RUNAWAY_TOKENS[0])
        kinds = rng.random(n) < 0.5  # True: a huge context; False: runaway reasoning
        wanted = int(kinds.sum())
        context = rng.choice(np.flatnonzero(fits_context), size=min(wanted, int(fits_context.sum())), replace=False)
        fits_runaway[context] = False
        wanted = n - len(context)
        runaway = rng.choice(np.flatnonzero(fits_runaway), size=min(wanted, int(fits_runaway.sum())), replace=False)
        chosen = np.concatenate([context, runaway]).astype(np.int64)
        columns = {c: calls[c].to_numpy().copy() for c in ("input_tokens", "output_tokens", "reasoning_tokens")}
        columns["input_tokens"][context] = rng.integers(*_CONTEXT_TOKENS, len(context))
        columns["output_tokens"][runaway] = rng.integers(*_RUNAWAY_TOKENS, len(runaway))
        columns["reasoning_tokens"][runaway] = columns["output_tokens"][runaway] - 500
        labels = np.empty(calls.height, dtype=object)
        labels[chosen] = [f"outlier_request#{i}" for i in range(len(chosen))]
        mask = np.zeros(calls.height, dtype=bool)
        mask[chosen] = True
        return _label(
            calls.with_columns(**{c: pl.Series(v).cast(calls[c].dtype) for c, v in columns.items()}), mask, labels
        )

    return Behaviour("plant_outliers", "calls", fn)


def _plant_agent_loops(n: int) -> Behaviour:
    def fn(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
        agents = calls.filter(pl.col("step") >= 2)["feature"].unique().sort().to_list()
        if not agents:
            return calls
        next_session = int(calls["session"].max() or 0) + 1
        loops = []
        for i in range(n):
            f = int(rng.choice(agents))
            template = calls.filter(
                (pl.col("feature") == f) & (pl.col("step") == 0) & (pl.col("attempts") == 1)
            ).sample(1, seed=int(rng.integers(1 << 30)))
            steps = int(rng.integers(60, 151))
            start = int(world.start_ms + rng.integers(8, world.days - 1) * _MS_DAY + rng.integers(0, _MS_DAY))
            base = int(template["input_tokens"][0]) or 2_000
            growth = int(rng.integers(800, 2_500))
            loop = pl.concat([template] * steps).with_columns(
                session=pl.lit(next_session).cast(calls["session"].dtype),
                step=pl.Series(np.arange(steps)).cast(calls["step"].dtype),
                call_ms=pl.Series(start + np.cumsum(rng.integers(2_000, 8_000, steps))),
                input_tokens=pl.Series(base + growth * np.arange(steps)).cast(calls["input_tokens"].dtype),
                cached_input_tokens=pl.Series(np.zeros(steps, dtype=np.int64)).cast(calls["cached_input_tokens"].dtype),
                cache_write_tokens=pl.Series(np.zeros(steps, dtype=np.int64)).cast(calls["cache_write_tokens"].dtype),
                scenario=pl.lit(f"agent_loop#{i}").cast(pl.Categorical),
            )
            loops.append(loop)
            next_session += 1
        return pl.concat([calls, *loops], how="vertical_relaxed")

    return Behaviour("plant_agent_loops", "calls", fn)


# --------------------------------------------------------------------------------------- attempt level


def _bill_failed_attempts(frame: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
    """Planted chains bill every attempt (each generated an answer that was thrown away); storm timeouts
    are billed too (the provider generated, the client gave up); storm 429s stay free."""
    scenario = frame["scenario"].cast(pl.String).fill_null("")
    chain = scenario.str.starts_with("retry_chain").to_numpy()
    storm = scenario.str.starts_with("retry_storm").to_numpy()
    status = frame["status"].to_numpy().copy()
    failed = status != 200
    # storms: mostly rate limits, some timeouts; chains: server errors and timeouts (0 = timeout)
    storm_codes = rng.choice(np.array([429, 429, 503, 0], dtype=status.dtype), size=len(status))
    chain_codes = rng.choice(np.array([500, 0], dtype=status.dtype), size=len(status))
    status = np.where(storm & failed, storm_codes, status)
    # a provider refuses a rate-limited or overloaded call before reading it: no tokens, no bill
    refused = storm & failed & np.isin(status, [429, 503])
    status = np.where(chain & failed, chain_codes, status)
    billed = (chain & failed) | (storm & failed & (status == 0))
    keys = ["session", "step"]
    full = frame.with_columns(_row=pl.int_range(pl.len())).with_columns(
        *(
            pl.col(c).max().over(keys).alias(f"_{c}")
            for c in (
                "input_tokens",
                "cached_input_tokens",
                "cache_write_tokens",
                "output_tokens",
                "reasoning_tokens",
                "cost_pico",
            )
        )
    )
    billed_s = pl.Series(billed)
    # a chain retries in a tight loop (no back-off): attempt k starts k-1 full generations after the call
    generation = pl.col("latency_ms").max().over(keys) + 1_000
    full = full.with_columns(
        latency_ms=pl.when(pl.Series(chain)).then(generation - 1_000).otherwise(pl.col("latency_ms")),
        ts_ms=pl.when(pl.Series(chain))
        .then(pl.col("call_ms") + (pl.col("attempt").cast(pl.Int64) - 1) * generation)
        .otherwise(pl.col("ts_ms")),
    )
    billed_columns = (
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_pico",
    )
    return (
        full.with_columns(
            status=pl.Series(status).cast(frame["status"].dtype),
            **{c: pl.when(billed_s).then(pl.col(f"_{c}")).otherwise(pl.col(c)) for c in billed_columns},
        )
        .with_columns(
            input_tokens=pl.when(pl.Series(refused)).then(0).otherwise(pl.col("input_tokens")),
        )
        .drop("_row", *(f"_{c}" for c in billed_columns))
    )


def behaviours(plan: Plan = Plan()) -> list[Behaviour]:
    """The behaviours that plant `plan`'s incidents (call level, then the attempt-level billing fix)."""
    return [
        _plant_level_shifts(plan.level_shifts),
        _plant_retry_chains(plan.retry_chains),
        _plant_cost_spikes(plan.cost_spikes),
        _plant_retry_storms(plan.retry_storms),
        _plant_outliers(plan.outlier_requests),
        _plant_agent_loops(plan.agent_loops),
        Behaviour("bill_failed_attempts", "attempts", _bill_failed_attempts),
    ]


def generate_labelled(
    rows: int, *, seed: int = 0, days: int = 42, teams: int = 12, plan: Plan = Plan(), start: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Gateway records with planted incidents (`scenario` labels kept) and their truth table."""
    from finops.synth.gateway import DEFAULT_START, generate_gateway

    frame = generate_gateway(
        rows, seed=seed, days=days, teams=teams, start=start or DEFAULT_START, behaviours=behaviours(plan), labels=True
    )
    return frame, truth(frame)


def background_changes(
    *, seed: int = 0, days: int = 42, teams: int = 12, start: datetime | None = None
) -> pl.DataFrame:
    """The new normals of the base traffic (not planted, not labelled): a feature launched during the period
    (a three-day ramp from nothing) and a model migration (a five-day ramp to a new model mix). One row per
    change: team, feature, change ('launch' | 'migration'), starts, ramp_days, and the models whose share
    rises (a launch: all the feature's models)."""
    from finops.synth.gateway import DEFAULT_START, LAUNCH_RAMP_DAYS, MIGRATION_RAMP_DAYS, MODELS, build_world

    world = build_world(seed=seed, start=start or DEFAULT_START, days=days, teams=teams)
    rows = []
    for f in range(world.n_features):
        slots = [i for i, m in enumerate(world.f_models[f]) if m >= 0]
        team, feature = world.team_names[world.f_team[f]], world.f_name[f]
        for change, day, ramp, rising in (
            ("launch", world.f_launch_day[f], LAUNCH_RAMP_DAYS, [i for i in slots if world.f_mix0[f, i] > 0]),
            (
                "migration",
                world.f_migrate_day[f],
                MIGRATION_RAMP_DAYS,
                [i for i in slots if world.f_mix1[f, i] > world.f_mix0[f, i]],
            ),
        ):
            if math.isfinite(day):
                models = [MODELS[int(world.f_models[f, i])].name for i in rising]
                rows.append((team, feature, change, world.start + timedelta(days=float(day)), ramp, models))
    schema = {
        "team": pl.String,
        "feature": pl.String,
        "change": pl.String,
        "starts": pl.Datetime("us", "UTC"),
        "ramp_days": pl.Int64,
        "models": pl.List(pl.String),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def truth(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per planted incident: what a detector should find.

    Columns: scenario, kind, team, feature, model (the most common), models (every model of its rows: a spike
    or a level shift multiplies a feature's calls on all its models), window_start, window_end, trace_ids,
    attempts, logical (distinct trace/prompt pairs), amplification (cost of all attempts / cost of the
    successful ones; attempts / logical requests for storms), wasted_usd (cost of attempts that did not
    produce the answer), cost_usd.
    """
    labelled = frame.filter(pl.col("scenario").is_not_null()).with_columns(
        scenario=pl.col("scenario").cast(pl.String), cost=pl.col("cost_usd").cast(pl.Float64)
    )
    answered = pl.col("status") == "200"
    return (
        labelled.group_by("scenario")
        .agg(
            pl.col("team").mode().first(),
            pl.col("feature").mode().first(),
            pl.col("model").mode().first(),
            pl.col("model").drop_nulls().unique().sort().alias("models"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            pl.col("trace_id").unique().alias("trace_ids"),
            pl.len().alias("attempts"),
            pl.struct("trace_id", "prompt_hash").n_unique().alias("logical"),
            pl.col("cost").sum().alias("cost_usd"),
            pl.col("cost").filter(answered).sum().alias("answered_usd"),
            pl.col("cost").filter(~answered).sum().alias("wasted_usd"),
        )
        .with_columns(
            kind=pl.col("scenario").str.split("#").list.first(),
            window_end=pl.col("window_end") + pl.duration(minutes=1),
        )
        .with_columns(
            amplification=pl.when(pl.col("kind") == "retry_storm")
            .then(pl.col("attempts") / pl.col("logical"))
            .otherwise(pl.col("cost_usd") / pl.col("answered_usd"))
        )
        .sort("scenario")
    )
