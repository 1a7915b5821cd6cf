"""Seeded, realistic canonical gateway logs (DESIGN.md "Canonical gateway record"), built a column at a time.

Used by the ingest benchmark, and meant for the demo and the detector evaluation. Everything is numpy
and polars over whole columns: Python loops run only over the small catalog (teams, features, models).

Pipeline (`generate_gateway`), each step a function of (frame, world, rng) with its own random stream:
  1. `build_world`: teams, their features (from `ARCHETYPES`), model mixes and migrations, user
     pools, keys, time zones, growth, quiet days, and per-(model, tier) prices from `genai-prices`;
  2. `_traffic`: sessions (an agent session is several calls under one trace) placed in time with
     weekly and daily seasonality, growth and quiet days; each call's attempt count (retries) is drawn
     here, so the output has exactly `rows` attempts;
  3. call-level behaviours (`_tokens`): heavy-tailed token counts, cache reads / writes, reasoning;
  4. `_explode_attempts`: one row per attempt; failed attempts get a 429 / 5xx / timeout status;
  5. attempt-level behaviours (`_latency`, `_cost`): latency, retry back-off and the gateway's cost;
  6. `_canonical`: ids, names and the DESIGN.md columns, sorted by time.

Planted anomalies (retry storms, spikes, agent loops) are meant to be added as further `Behaviour`s at
the call or attempt level: a function that returns the frame with rows changed or appended and their
`scenario` column set (NULL for ordinary traffic; `generate_gateway(..., labels=True)` keeps it).
"""

from __future__ import annotations

import functools
import gzip as gzip_module
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "ARCHETYPES",
    "Archetype",
    "Behaviour",
    "DEFAULT_START",
    "GATEWAY_COLUMNS",
    "GENERATOR_VERSION",
    "LAUNCH_RAMP_DAYS",
    "MIGRATION_RAMP_DAYS",
    "MODELS",
    "ModelSpec",
    "World",
    "build_world",
    "generate_gateway",
    "write",
]

# Bump when the output for a given seed changes: the benchmark's file cache keys on it.
GENERATOR_VERSION = 2
DEFAULT_START = datetime(2025, 10, 1, tzinfo=UTC)
LAUNCH_RAMP_DAYS = 3  # a feature launched in the period grows to its traffic over these days
MIGRATION_RAMP_DAYS = 5  # a feature's model mix moves to its new one over these days

GATEWAY_COLUMNS = (
    "request_id",
    "ts",
    "model",
    "provider",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "team",
    "feature",
    "project",
    "user",
    "environment",
    "api_key",
    "tags",
    "trace_id",
    "attempt",
    "status",
    "prompt_hash",
    "service_tier",
    "latency_ms",
    "cost_usd",
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

# ------------------------------------------------------------------------------------------- catalog

TIERS = ("default", "batch", "flex", "priority")
ENVIRONMENTS = ("prod", "staging", "dev")
TIMEOUT = 0  # physical status code of a timed-out attempt
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class ModelSpec:
    """A model as the gateway sends it, with what shapes its usage and latency."""

    name: str  # must resolve in the genai-prices catalog (tests check it)
    provider: str
    reasoning: Literal["always", "optional", "never"] = "never"
    max_input: int = 190_000  # below the 200k long-context price tiers
    ttft_ms: float = 500.0
    tokens_per_s: float = 100.0
    flex: bool = False  # OpenAI flex processing
    priority: bool = False  # OpenAI priority processing
    embedding: bool = False

    @property
    def cache(self) -> Literal["implicit", "explicit", "none"]:
        """OpenAI and Gemini cache prefixes by themselves; Anthropic caches what the caller marks (and bills writes)."""
        if self.embedding:
            return "none"
        return "explicit" if self.provider == "anthropic" else "implicit"


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-4o-2024-08-06", "openai", max_input=128_000, ttft_ms=450, tokens_per_s=90, priority=True),
    ModelSpec("gpt-4o-mini", "openai", max_input=128_000, ttft_ms=350, tokens_per_s=120, priority=True),
    ModelSpec("gpt-4.1", "openai", ttft_ms=500, tokens_per_s=80, priority=True),
    ModelSpec("gpt-4.1-mini", "openai", ttft_ms=350, tokens_per_s=110, priority=True),
    ModelSpec("gpt-4.1-nano", "openai", ttft_ms=250, tokens_per_s=150),
    ModelSpec("o3", "openai", "always", ttft_ms=2500, tokens_per_s=60, flex=True, priority=True),
    ModelSpec("o4-mini", "openai", "always", ttft_ms=1500, tokens_per_s=90, flex=True, priority=True),
    ModelSpec("gpt-5", "openai", "always", ttft_ms=2000, tokens_per_s=70, flex=True, priority=True),
    ModelSpec("gpt-5-mini", "openai", "always", ttft_ms=1200, tokens_per_s=100, flex=True, priority=True),
    ModelSpec("text-embedding-3-small", "openai", max_input=8_191, ttft_ms=60, embedding=True),
    ModelSpec("claude-sonnet-4-5", "anthropic", "optional", ttft_ms=900, tokens_per_s=70),
    ModelSpec("claude-opus-4-1", "anthropic", "optional", ttft_ms=1400, tokens_per_s=40),
    ModelSpec("claude-haiku-4-5", "anthropic", "optional", ttft_ms=400, tokens_per_s=130),
    ModelSpec("claude-3-5-haiku-20241022", "anthropic", ttft_ms=500, tokens_per_s=110),
    ModelSpec("gemini-2.5-pro", "google", "always", ttft_ms=1800, tokens_per_s=80),
    ModelSpec("gemini-2.5-flash", "google", "optional", ttft_ms=600, tokens_per_s=160),
    ModelSpec("gemini-2.5-flash-lite", "google", ttft_ms=300, tokens_per_s=200),
    ModelSpec("gemini-2.0-flash", "google", ttft_ms=350, tokens_per_s=180),
)
_MODEL_INDEX = {m.name: i for i, m in enumerate(MODELS)}

Mix = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Archetype:
    """A kind of feature: its traffic shape, token distributions (lognormal medians), models and tiers."""

    name: str
    kind: Literal["interactive", "agent", "background", "batch"]
    input_median: float
    output_median: float
    models: Mix  # the mix at the start of the period
    migrate_to: Mix | None = None  # the mix after a migration somewhere in the period
    input_sigma: float = 0.8
    output_sigma: float = 0.7
    reasoning_median: float = 600.0
    cache_hit: float = 0.0  # chance a request reuses a cached prefix (0: the feature does not cache)
    tiers: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # default, batch, flex, priority
    steps_mean: float = 1.0  # calls per session (agents > 1)
    retry_weight: float = 1.0  # relative propensity to fail and be retried


A = Archetype
# fmt: off
ARCHETYPES: tuple[Archetype, ...] = (
    A("chat-assistant", "interactive", 2_500, 350, cache_hit=0.55,
      models=(("claude-sonnet-4-5", 0.5), ("gpt-4o-2024-08-06", 0.35), ("gpt-4o-mini", 0.15)),
      migrate_to=(("claude-sonnet-4-5", 0.5), ("gpt-5-mini", 0.35), ("gpt-4o-mini", 0.15))),
    A("search-answers", "interactive", 6_000, 250, input_sigma=0.6, output_sigma=0.6, cache_hit=0.35,
      models=(("gpt-4o-mini", 0.6), ("gemini-2.5-flash", 0.4)),
      migrate_to=(("gpt-4.1-mini", 0.6), ("gemini-2.5-flash", 0.4))),
    A("summarize", "background", 4_000, 300, input_sigma=1.0, output_sigma=0.5, cache_hit=0.1,
      tiers=(0.7, 0.3, 0.0, 0.0),
      models=(("claude-3-5-haiku-20241022", 0.6), ("gemini-2.5-flash-lite", 0.4)),
      migrate_to=(("claude-haiku-4-5", 0.6), ("gemini-2.5-flash-lite", 0.4))),
    A("classify", "interactive", 600, 8, input_sigma=0.5, output_sigma=0.4, cache_hit=0.6,
      models=(("gpt-4.1-nano", 0.5), ("gemini-2.0-flash", 0.3), ("gpt-4o-mini", 0.2))),
    A("extract", "interactive", 1_800, 220, output_sigma=0.6, cache_hit=0.4,
      models=(("gpt-4.1", 0.5), ("gpt-4o-mini", 0.5))),
    A("code-agent", "agent", 12_000, 700, input_sigma=0.7, output_sigma=0.9, reasoning_median=1_500,
      cache_hit=0.8, steps_mean=6, retry_weight=1.5,
      models=(("claude-sonnet-4-5", 0.55), ("gpt-5", 0.3), ("o3", 0.15))),
    A("support-agent", "agent", 5_000, 300, input_sigma=0.6, cache_hit=0.7, steps_mean=4,
      models=(("claude-haiku-4-5", 0.7), ("claude-sonnet-4-5", 0.3))),
    A("embed-docs", "background", 400, 0, tiers=(0.8, 0.2, 0.0, 0.0),
      models=(("text-embedding-3-small", 1.0),)),
    A("translate", "interactive", 800, 900, input_sigma=0.7, cache_hit=0.2,
      models=(("gpt-4.1-mini", 0.6), ("gemini-2.5-flash", 0.4))),
    A("nightly-eval", "batch", 3_000, 400, reasoning_median=800, tiers=(0.1, 0.9, 0.0, 0.0), retry_weight=0.5,
      models=(("gpt-5", 0.4), ("claude-sonnet-4-5", 0.3), ("gemini-2.5-pro", 0.3))),
    A("report-writer", "background", 8_000, 1_500, input_sigma=0.7, output_sigma=0.6, reasoning_median=3_000,
      tiers=(0.3, 0.0, 0.7, 0.0),
      models=(("o3", 0.5), ("gpt-5", 0.5))),
    A("deep-research", "agent", 20_000, 900, input_sigma=0.5, reasoning_median=4_000, cache_hit=0.85,
      steps_mean=10, tiers=(0.8, 0.0, 0.2, 0.0), retry_weight=1.5,
      models=(("gemini-2.5-pro", 0.6), ("o3", 0.4))),
    A("checkout-assist", "interactive", 1_200, 120, cache_hit=0.5, tiers=(0.2, 0.0, 0.0, 0.8),
      models=(("gpt-4.1-mini", 0.7), ("gpt-5-mini", 0.3))),
    A("moderation", "interactive", 300, 5, input_sigma=0.6, output_sigma=0.3,
      models=(("gpt-4.1-nano", 0.6), ("gemini-2.5-flash-lite", 0.4))),
    A("contract-review", "interactive", 15_000, 800, input_sigma=0.6, cache_hit=0.5,
      models=(("claude-opus-4-1", 0.6), ("claude-sonnet-4-5", 0.4))),
)

TEAM_NAMES = (
    "search", "ads", "growth", "support", "billing", "risk", "fraud", "payments", "mobile", "web",
    "data-platform", "ml-platform", "infra", "security", "legal", "people", "sales", "marketing", "docs",
    "onboarding", "checkout", "catalog", "recommendations", "analytics", "identity", "notifications",
    "content", "moderation", "localization", "devex", "finance", "procurement", "logistics", "pricing",
    "trust-safety", "customer-success", "partnerships", "research", "design", "qa", "sre", "messaging",
    "maps", "video", "voice", "commerce", "insights", "compliance", "hr", "labs",
)
# fmt: on
del A
# (UTC offset hours, cloud region, share of teams)
_TEAM_ZONES = ((-8, "us-west-2", 0.25), (-5, "us-east-1", 0.35), (1, "eu-west-1", 0.25), (9, "ap-northeast-1", 0.15))
_PROJECT_SUFFIXES = ("core", "app", "internal", "labs")
# failed-attempt statuses per provider: (codes, probabilities); 0 = timeout
_FAILURES = {
    "openai": ((429, 500, 503, TIMEOUT), (0.6, 0.15, 0.15, 0.1)),
    "anthropic": ((429, 529, 500, TIMEOUT), (0.45, 0.3, 0.15, 0.1)),
    "google": ((429, 503, 500, TIMEOUT), (0.55, 0.3, 0.05, 0.1)),
}
_PROVIDERS = ("openai", "anthropic", "google")
_KINDS = ("interactive", "agent", "background", "batch")
_SLOTS = 4  # models per feature, before and after a migration


# --------------------------------------------------------------------------------------------- world


@dataclass(frozen=True)
class World:
    """Everything fixed before traffic is drawn: the catalog of teams and features, as column arrays.

    Arrays prefixed `f_` have one entry per feature, `t_` per team, `m_` per model.
    """

    seed: int
    start: datetime
    days: int
    team_names: tuple[str, ...]
    t_offset_h: I64  # UTC offset of the team's working hours
    t_region: tuple[str, ...]
    t_user_base: I64  # first user number of the team's pool
    t_users: I64  # size of the pool
    f_team: I64
    f_archetype: I64
    f_name: tuple[str, ...]
    f_project: tuple[str, ...]
    f_keys: tuple[str, ...]  # api key alias of (feature, environment) at feature * 3 + environment
    f_session_p: F64  # probability that a session belongs to the feature
    f_steps_mean: F64
    f_retry: F64  # chance a call fails and is retried
    f_models: I64  # (features, _SLOTS) model index, -1 for an empty slot
    f_mix0: F64  # (features, _SLOTS) mix weights at the start
    f_mix1: F64  # (features, _SLOTS) mix weights after the migration
    f_migrate_day: F64  # day the migration ramp starts (inf: never)
    f_launch_day: F64  # day the three-day launch ramp starts (-inf: live from the start)
    f_in_mu: F64
    f_out_mu: F64
    f_day_cdf: F64  # (features, days) cumulative day distribution
    f_hour_cdf: F64  # (features, 24) cumulative UTC hour distribution
    m_prices: I64  # (models, tiers, 4) micro-USD per million tokens: input, cache read, cache write, output
    quiet_days: I64
    untagged_share: float

    @property
    def n_features(self) -> int:
        return len(self.f_name)

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent random stream per pipeline step, so adding a step never changes the others' draws."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def build_world(
    *, seed: int = 0, start: datetime = DEFAULT_START, days: int = 30, teams: int = 30, untagged_share: float = 0.005
) -> World:
    """Draw the catalog: `teams` teams with 2-5 features each, their mixes, pools, seasonality and prices."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    if days < 1 or teams < 1:
        raise ValueError("days and teams must be at least 1")
    rng = _rng(seed, "world")
    # past the 50 names, teams are numbered: search-2, ads-2 ...
    names = tuple(TEAM_NAMES[i % 50] + (f"-{i // 50 + 1}" if i >= 50 else "") for i in range(teams))
    zone = rng.choice(len(_TEAM_ZONES), size=teams, p=[z[2] for z in _TEAM_ZONES])
    t_offset = np.array([_TEAM_ZONES[z][0] for z in zone], dtype=np.int64)
    t_region = tuple(_TEAM_ZONES[z][1] for z in zone)
    t_weight = rng.lognormal(0.0, 0.8, teams)
    t_growth = rng.normal(0.35, 0.25, teams)  # log growth per 30 days
    t_users = np.maximum(3, rng.lognormal(math.log(40), 1.0, teams)).astype(np.int64)
    t_user_base = np.concatenate([[0], np.cumsum(t_users)[:-1]]).astype(np.int64)
    n_projects = rng.integers(1, 4, teams)

    f_team, f_arch, f_weight = [], [], []
    for t in range(teams):
        k = int(rng.integers(2, 6))
        for a in rng.choice(len(ARCHETYPES), size=k, replace=False):
            f_team.append(t)
            f_arch.append(int(a))
            f_weight.append(t_weight[t] * rng.lognormal(0.0, 1.0))
    team = np.array(f_team, dtype=np.int64)
    arch = np.array(f_arch, dtype=np.int64)
    n = len(team)
    archetypes = [ARCHETYPES[a] for a in arch]
    steps = np.array([a.steps_mean for a in archetypes])
    weight = np.array(f_weight) / np.sum(f_weight)
    session_p = weight / steps
    session_p /= session_p.sum()

    models = np.full((n, _SLOTS), -1, dtype=np.int64)
    mix0, mix1 = np.zeros((n, _SLOTS)), np.zeros((n, _SLOTS))
    migrate_day = np.full(n, np.inf)
    for i, a in enumerate(archetypes):
        slots = list(dict.fromkeys(m for m, _ in a.models + (a.migrate_to or ())))
        if len(slots) > _SLOTS:
            raise ValueError(f"archetype {a.name} uses more than {_SLOTS} models")
        models[i, : len(slots)] = [_MODEL_INDEX[m] for m in slots]
        for mix, table in ((mix0, a.models), (mix1, a.migrate_to or a.models)):
            for m, w in table:
                mix[i, slots.index(m)] = w
        jitter = rng.dirichlet(np.where(mix0[i] > 0, 20 * mix0[i], 1e-3))  # each feature has its own mix
        mix0[i] = np.where(mix0[i] > 0, jitter, 0.0)
        if a.migrate_to is not None and rng.random() < 0.6:
            migrate_day[i] = rng.uniform(0.2, 0.8) * days
        else:
            mix1[i] = mix0[i]
    mix0 /= mix0.sum(axis=1, keepdims=True)
    mix1 /= mix1.sum(axis=1, keepdims=True)

    retry = np.array([a.retry_weight for a in archetypes]) * rng.lognormal(0.0, 0.5, n)
    retry *= 0.02 / np.sum(retry * weight)  # calls-weighted mean of 2 %; generate_gateway rescales to its share
    in_mu = np.log([max(a.input_median, 1.0) for a in archetypes]) + rng.normal(0.0, 0.3, n)
    out_mu = np.log([max(a.output_median, 1.0) for a in archetypes]) + rng.normal(0.0, 0.3, n)

    quiet = np.sort(rng.choice(days, size=min(days, max(1, days // 20)), replace=False)).astype(np.int64)
    day_w, launch_day = _day_weights(rng, start, days, archetypes, t_growth[team], quiet)
    hour_w = _hour_weights(archetypes, t_offset[team])
    projects = tuple(f"{names[t]}-{_PROJECT_SUFFIXES[int(rng.integers(0, n_projects[t]))]}" for t in team)
    shared = rng.random(n) < 0.25  # a quarter of features call through their team's shared key
    keys = tuple(
        _key_alias(seed, names[t] if s else f"{names[t]}/{a.name}", env)
        for t, a, s in zip(team, archetypes, shared, strict=True)
        for env in ENVIRONMENTS
    )
    return World(
        seed=seed,
        start=start,
        days=days,
        team_names=names,
        t_offset_h=t_offset,
        t_region=t_region,
        t_user_base=t_user_base,
        t_users=t_users,
        f_team=team,
        f_archetype=arch,
        f_name=tuple(a.name for a in archetypes),
        f_project=projects,
        f_keys=keys,
        f_session_p=session_p,
        f_steps_mean=steps,
        f_retry=retry,
        f_models=models,
        f_mix0=mix0,
        f_mix1=mix1,
        f_migrate_day=migrate_day,
        f_launch_day=launch_day,
        f_in_mu=in_mu,
        f_out_mu=out_mu,
        f_day_cdf=_cdf(day_w),
        f_hour_cdf=_cdf(hour_w),
        m_prices=_price_table(start),
        quiet_days=quiet,
        untagged_share=untagged_share,
    )


def _key_alias(seed: int, owner: str, env: str) -> str:
    """A key alias as gateways log them: a short hash, never the secret; owners come from ownership rules."""
    return f"ak_{zlib.crc32(f'{seed}:{owner}:{env}'.encode()):08x}"


def _day_weights(
    rng: np.random.Generator, start: datetime, days: int, archetypes: list[Archetype], growth: F64, quiet: I64
) -> tuple[F64, F64]:
    """(features, days): growth x weekly pattern x quiet days x launches x day-to-day noise; and each feature's
    launch day (-inf: live from the start)."""
    n = len(archetypes)
    d = np.arange(days)
    weekday = (start.weekday() + d) % 7
    weekend = weekday >= 5
    kinds = np.array([_KINDS.index(a.kind) for a in archetypes])
    # interactive and agent traffic drops at weekends; background less; batch jobs run every night
    weekend_factor = np.array([0.42, 0.5, 0.8, 1.0])[kinds]
    w = np.exp(np.outer(growth, d / 30.0))
    w *= np.where(weekend[None, :], weekend_factor[:, None], 1.0)
    quiet_mask = np.isin(d, quiet)
    w *= np.where(quiet_mask[None, :], np.array([0.3, 0.3, 0.6, 1.0])[kinds][:, None], 1.0)
    launch = np.where(rng.random(n) < 0.15, rng.uniform(0.2, 0.8, n) * days, -np.inf)
    w *= np.clip((d[None, :] - launch[:, None]) / LAUNCH_RAMP_DAYS, 0.0, 1.0)  # a ramp after launch
    w *= rng.lognormal(0.0, 0.1, (n, days))
    w[:, 0] += 1e-9  # a feature launched after the period still has a (negligible) distribution
    return w, launch


def _hour_weights(archetypes: list[Archetype], offset_h: I64) -> F64:
    """(features, 24) over UTC hours: office hours in the team's zone, flatter in the background, nights for batch."""
    local = (np.arange(24)[None, :] + offset_h[:, None]) % 24
    office = 0.08 + np.exp(-(((local - 14.0) / 4.0) ** 2))
    kinds = np.array([_KINDS.index(a.kind) for a in archetypes])[:, None]
    nightly = 0.05 + np.exp(-(((np.arange(24)[None, :] - 2.5) / 1.2) ** 2))  # 01:00-04:00 UTC
    weights: F64 = np.where(kinds == 3, nightly, np.where(kinds == 2, 0.5 + 0.5 * office, office))
    return weights


def _cdf(weights: F64) -> F64:
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    return cdf


def _sample_rows(cdf: F64, rows: I64, rng: np.random.Generator) -> I64:
    """For each i, a bin drawn from the distribution `cdf[rows[i]]`, all at once.

    Row r's CDF is shifted by r, so one `searchsorted` over the flattened matrix serves every row.
    """
    k = cdf.shape[1]
    shifted = (cdf + np.arange(cdf.shape[0])[:, None]).ravel()
    u = rng.random(len(rows)) + rows
    idx = np.searchsorted(shifted, u, side="right")
    bins: I64 = np.minimum(idx - rows * k, k - 1).astype(np.int64)
    return bins


@functools.cache
def _price_table(start: datetime) -> I64:
    """Micro-USD per million tokens by (model, tier, kind), from `genai-prices` at `start`.

    The catalog has no batch discount: batch is half the default price for all three providers.
    Probes use 100k tokens, below the 200k long-context tiers, and the generator keeps inputs under them.
    """
    from genai_prices import Usage, calc_price

    probe = 100_000
    kinds = (
        {"input_tokens": probe},
        {"input_tokens": probe, "cache_read_tokens": probe},
        {"input_tokens": probe, "cache_write_tokens": probe},
        {"output_tokens": probe},
    )
    table = np.zeros((len(MODELS), len(TIERS), len(kinds)), dtype=np.int64)
    for i, m in enumerate(MODELS):
        for j, tier in enumerate(TIERS):
            context = {"service_tier": tier} if tier in ("flex", "priority") else None
            for k, usage in enumerate(kinds):
                price = calc_price(
                    Usage(**usage), m.name, provider_id=m.provider, genai_request_timestamp=start, price_context=context
                ).total_price
                table[i, j, k] = round(price * 1_000_000 * 1_000_000 / probe)
    table[:, TIERS.index("batch")] = table[:, TIERS.index("default")] // 2
    table.setflags(write=False)  # cached and shared by every world
    return table


# ------------------------------------------------------------------------------------------- traffic


def _starts(counts: I64) -> I64:
    """Index of the first item of each consecutive segment of `counts` items."""
    starts: I64 = np.cumsum(counts) - counts
    return starts


def _segment_offsets(counts: I64, values: F64) -> F64:
    """Exclusive running sum of `values` within consecutive segments of `counts` items."""
    running = np.cumsum(values) - values
    return running - np.repeat(running[_starts(counts)], counts)


def _draw_counts(world: World, rows: int, retry_share: float, rng: np.random.Generator) -> tuple[I64, I64, I64, Bool]:
    """Sessions (feature, calls) and each call's attempts, adding up to exactly `rows` attempts.

    Sessions are drawn until their attempts pass `rows`; the ones that fit are kept whole and the
    remainder is filled with one-call, one-attempt sessions. Returns (feature, steps, attempts, rejected).
    """
    p = world.f_session_p
    retry = np.minimum(world.f_retry * (retry_share / 0.02), 0.5)
    per_session = float(np.sum(p * world.f_steps_mean)) * (1.0 + 1.25 * retry_share)
    n = int(rows / per_session * 1.05) + 64
    while True:
        feature = rng.choice(world.n_features, size=n, p=p)
        steps = np.minimum(rng.geometric(1.0 / world.f_steps_mean[feature]), 60).astype(np.int64)
        call_session = np.repeat(np.arange(n), steps)
        retried = rng.random(len(call_session)) < retry[feature][call_session]
        u = rng.random(len(call_session))
        attempts = np.where(retried, 2 + (u > 0.8) + (u > 0.95), 1).astype(np.int64)  # mostly one failure
        rejected = ~retried & (rng.random(len(call_session)) < 0.002)  # a 400 (bad request): not retried
        total = np.cumsum(np.bincount(call_session, weights=attempts, minlength=n))
        k = int(np.searchsorted(total, rows, side="right"))
        pad = rows - (int(total[k - 1]) if k else 0)
        if k + pad <= n:
            break
        n *= 2
    keep = call_session < k
    ones = np.ones(pad, dtype=np.int64)
    return (
        feature[: k + pad].astype(np.int64),
        np.concatenate([steps[:k], ones]),
        np.concatenate([attempts[keep], ones]),
        np.concatenate([rejected[keep], np.zeros(pad, dtype=bool)]),
    )


def _traffic(world: World, rows: int, retry_share: float, rng: np.random.Generator) -> pl.DataFrame:
    """One row per call (before retries), sessions numbered in time order.

    Columns: session, step, feature, model, tier, environment, user (-1: none), untagged, call_ms,
    attempts, rejected (a 400, not retried), scenario (NULL: ordinary traffic).
    """
    feature, steps, attempts, rejected = _draw_counts(world, rows, retry_share, rng)
    n = len(feature)
    day = _sample_rows(world.f_day_cdf, feature, rng)
    hour = _sample_rows(world.f_hour_cdf, feature, rng)
    start_ms = world.start_ms + day * _MS_PER_DAY + hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    # sessions in time order, so the attempts come out nearly sorted and the final sort is cheap
    order = np.argsort(start_ms, kind="stable")
    old_first = _starts(steps)[order]
    feature, steps, day, hour, start_ms = feature[order], steps[order], day[order], hour[order], start_ms[order]
    session = np.repeat(np.arange(n), steps)
    step = np.arange(len(session)) - _starts(steps)[session]
    old_call = old_first[session] + step
    attempts, rejected = attempts[old_call], rejected[old_call]

    model = _pick_model(world, feature, day + hour / 24.0, rng)
    tier = _pick_tier(world, feature, model, rng)
    kind = _feature_kind(world)[feature]
    interactive = kind <= _KINDS.index("agent")
    env = np.where(interactive, rng.choice(3, size=n, p=[0.9, 0.07, 0.03]), rng.choice(3, size=n, p=[0.97, 0.03, 0.0]))
    team = world.f_team[feature]
    # users by a power law within the team's pool; background and batch jobs run without an end user
    member = np.floor(world.t_users[team] * rng.random(n) ** 2.5).astype(np.int64)
    user = np.where(interactive, world.t_user_base[team] + member, -1)
    untagged = rng.random(n) < world.untagged_share
    gaps = np.where(step > 0, 800 + rng.lognormal(math.log(3_000), 0.8, len(step)), 0.0)  # tool time between steps
    call_ms = start_ms[session] + _segment_offsets(steps, gaps).astype(np.int64)
    return pl.DataFrame(
        {
            "session": session,
            "step": step.astype(np.int32),
            "feature": feature[session].astype(np.int32),
            "model": model[session].astype(np.int32),
            "tier": tier[session].astype(np.int8),
            "environment": env[session].astype(np.int8),
            "user": user[session].astype(np.int32),
            "untagged": untagged[session],
            "call_ms": call_ms,
            "attempts": attempts.astype(np.int32),
            "rejected": rejected,
            "scenario": pl.repeat(None, len(session), dtype=pl.Categorical, eager=True),
        }
    )


def _feature_kind(world: World) -> I64:
    return np.array([_KINDS.index(ARCHETYPES[a].kind) for a in world.f_archetype], dtype=np.int64)


def _pick_slot(weights: Callable[[int], F64], slots: int, rng: np.random.Generator, n: int) -> I64:
    """A slot per row, slot k having probability `weights(k)[row]` (one pass per slot, no (rows, slots) matrix)."""
    u = rng.random(n)
    cumulative = np.zeros(n)
    slot = np.zeros(n, dtype=np.int64)
    for k in range(slots - 1):
        cumulative += weights(k)
        slot += u >= cumulative
    return slot


def _pick_model(world: World, feature: I64, day: F64, rng: np.random.Generator) -> I64:
    """A model per session from the feature's mix, moving from the old mix to the new over a 5-day ramp."""
    alpha = np.clip((day - world.f_migrate_day[feature]) / MIGRATION_RAMP_DAYS, 0.0, 1.0)
    slot = _pick_slot(
        lambda k: (1 - alpha) * world.f_mix0[feature, k] + alpha * world.f_mix1[feature, k], _SLOTS, rng, len(feature)
    )
    model = world.f_models[feature, slot]
    return np.where(model < 0, world.f_models[feature, 0], model)


def _pick_tier(world: World, feature: I64, model: I64, rng: np.random.Generator) -> I64:
    """A service tier per session; flex and priority fall back to default where the model does not offer them."""
    probs = np.array([ARCHETYPES[a].tiers for a in world.f_archetype])
    tier = _pick_slot(lambda k: probs[feature, k], len(TIERS), rng, len(feature))
    flex = np.array([m.flex for m in MODELS])[model]
    priority = np.array([m.priority for m in MODELS])[model]
    bad = ((tier == TIERS.index("flex")) & ~flex) | ((tier == TIERS.index("priority")) & ~priority)
    return np.where(bad, 0, tier)


# -------------------------------------------------------------------------------------------- tokens


def _tokens(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
    """Token counts per call: lognormal per feature, cache reads and writes, reasoning inside output.

    Agents carry their context forward: input grows with the step and later steps mostly hit the cache.
    OpenAI caches prefixes of 1,024+ tokens in 128-token steps, Gemini whole prefixes, Anthropic what the
    caller marks: a miss writes the prefix (`cache_write_tokens`), a hit reads it.
    """
    n = calls.height
    f = calls["feature"].to_numpy().astype(np.int64)
    m = calls["model"].to_numpy().astype(np.int64)
    step = calls["step"].to_numpy()
    arch = [ARCHETYPES[a] for a in world.f_archetype]
    agent = (world.f_steps_mean > 1)[f]
    cache_hit = np.array([a.cache_hit for a in arch])[f]
    embedding = np.array([x.embedding for x in MODELS])[m]

    size = np.exp(world.f_in_mu[f] + np.array([a.input_sigma for a in arch])[f] * rng.standard_normal(n))
    size *= np.where(agent, 1.0 + 0.35 * step, 1.0)
    input_tokens = np.clip(size, 12, np.array([x.max_input for x in MODELS])[m]).astype(np.int64)
    out = np.exp(world.f_out_mu[f] + np.array([a.output_sigma for a in arch])[f] * rng.standard_normal(n))
    visible = np.clip(out, 1, 8_000).astype(np.int64)
    mode = np.array([("never", "optional", "always").index(x.reasoning) for x in MODELS])[m]
    thinks = ((mode == 2) | ((mode == 1) & (rng.random(n) < 0.35))) & ~embedding
    r_mu = np.log([a.reasoning_median for a in arch])[f]
    reasoning = np.where(thinks, np.clip(np.exp(r_mu + 0.9 * rng.standard_normal(n)), 16, 32_000), 0).astype(np.int64)
    output_tokens = np.where(embedding, 0, visible + reasoning)

    prefix = np.floor(input_tokens * rng.beta(8.0, 3.0, n)).astype(np.int64)  # the stable part of the prompt
    hit = (rng.random(n) < cache_hit) | (agent & (step > 0) & (rng.random(n) < 0.95))
    eligible = (cache_hit > 0) & (prefix >= 1_024)
    style = np.array([("none", "implicit", "explicit").index(x.cache) for x in MODELS])[m]
    openai = np.array([x.provider == "openai" for x in MODELS])[m]
    read = np.where(openai, 1_024 + (prefix - 1_024) // 128 * 128, prefix)
    return calls.with_columns(
        input_tokens=pl.Series(input_tokens),
        cached_input_tokens=pl.Series(np.where(eligible & hit & (style > 0), read, 0)),
        cache_write_tokens=pl.Series(np.where(eligible & ~hit & (style == 2), prefix, 0)),
        output_tokens=pl.Series(output_tokens),
        reasoning_tokens=pl.Series(reasoning),
    )


# ------------------------------------------------------------------------------------------ attempts


def _explode_attempts(calls: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
    """One row per attempt (adds `attempt`, `status`; drops `attempts`, `rejected`).

    Every attempt but the last fails with the provider's 429 / 5xx / timeout; the last gets 200, or 400
    for a rejected call. A refused attempt (429, 503, 529) has no tokens at all; a timeout or a 500 keeps
    the prompt's input tokens as the gateway counted them; neither has cached, cache-write, output or
    reasoning tokens.
    """
    attempts = calls["attempts"].to_numpy().astype(np.int64)
    call = np.repeat(np.arange(calls.height), attempts)
    attempt = np.arange(len(call)) - _starts(attempts)[call] + 1
    last = attempt == attempts[call]
    rejected = calls["rejected"].to_numpy()[call]
    frame = calls.drop("attempts", "rejected").select(pl.all().gather(call))
    provider = np.array([_PROVIDERS.index(x.provider) for x in MODELS])[frame["model"].to_numpy()]
    failure = np.zeros(len(call), dtype=np.int64)
    u = rng.random(len(call))
    for i, name in enumerate(_PROVIDERS):
        codes, probs = _FAILURES[name]
        drawn = np.asarray(codes)[np.minimum(np.searchsorted(np.cumsum(probs), u, side="right"), len(codes) - 1)]
        failure = np.where(provider == i, drawn, failure)
    status = np.where(last, np.where(rejected, 400, 200), failure).astype(np.int16)
    ok = pl.Series(status == 200)
    # the provider refused a rate-limited or overloaded call before reading it: no tokens, nothing billed;
    # a timeout (or a 500 mid-generation) read the prompt, so its input tokens stay on the record
    refused = pl.Series(np.isin(status, [429, 503, 529]))
    return (
        frame.with_columns(attempt=pl.Series(attempt.astype(np.int32)), status=pl.Series(status))
        .with_columns(pl.when(ok).then(pl.col(c)).otherwise(0).alias(c) for c in _CALL_ONLY)
        .with_columns(input_tokens=pl.when(refused).then(0).otherwise(pl.col("input_tokens")))
    )


_CALL_ONLY = ("cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def _latency(frame: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
    """`latency_ms` per attempt, and `ts_ms`, its start: a retry starts after the failure plus a back-off."""
    n = frame.height
    m = frame["model"].to_numpy().astype(np.int64)
    status = frame["status"].to_numpy().astype(np.int64)
    tier = frame["tier"].to_numpy()
    ttft = np.array([x.ttft_ms for x in MODELS])[m]
    tps = np.array([x.tokens_per_s for x in MODELS])[m]
    z = rng.standard_normal(n)
    ok = ttft * np.exp(0.35 * z) + frame["output_tokens"].to_numpy() / tps * 1000 * np.exp(
        0.15 * rng.standard_normal(n)
    )
    embedding = np.array([x.embedding for x in MODELS])[m]
    ok = np.where(embedding, 20 + frame["input_tokens"].to_numpy() / 40 * np.exp(0.2 * z), ok)
    ok = np.where(tier == TIERS.index("flex"), ok * 1.8, ok)  # flex is slower
    ok = np.where(tier == TIERS.index("batch"), np.exp(math.log(30 * 60_000) + 0.8 * z), ok)  # batch turnaround
    timeout = np.array([30_000, 120_000, 600_000, 600_000])[_feature_kind(world)[frame["feature"].to_numpy()]]
    z = rng.standard_normal(n)
    latency = np.select(
        [status == 200, status == 429, status == 400, status == TIMEOUT],
        [ok, np.exp(math.log(120) + 0.5 * z), np.exp(math.log(200) + 0.4 * z), timeout],
        np.exp(math.log(1_500) + 0.8 * z),  # 5xx
    ).round()
    attempt = frame["attempt"].to_numpy().astype(np.int64)
    # exponential back-off with jitter, capped at about 8.5 minutes like client libraries do
    backoff = 500.0 * 2.0 ** np.minimum(attempt - 1, 10) * rng.uniform(0.5, 1.5, n)
    counts = np.diff(np.append(np.flatnonzero(attempt == 1), n))
    ts_ms = frame["call_ms"].to_numpy() + _segment_offsets(counts, latency + backoff).astype(np.int64)
    return frame.with_columns(latency_ms=pl.Series(latency.astype(np.int64)), ts_ms=pl.Series(ts_ms))


def _cost(frame: pl.DataFrame, world: World, rng: np.random.Generator) -> pl.DataFrame:
    """`cost_pico`: the gateway's cost in 1e-12 USD, catalog prices x tokens, exact; failed attempts cost 0."""
    prices = world.m_prices[frame["model"].to_numpy(), frame["tier"].to_numpy()]  # (rows, 4) micro-USD per Mtok
    cached = frame["cached_input_tokens"].to_numpy()
    written = frame["cache_write_tokens"].to_numpy()
    pico = (
        (frame["input_tokens"].to_numpy() - cached - written) * prices[:, 0]
        + cached * prices[:, 1]
        + written * prices[:, 2]
        + frame["output_tokens"].to_numpy() * prices[:, 3]
    )
    return frame.with_columns(cost_pico=pl.Series(np.where(frame["status"].to_numpy() == 200, pico, 0)))


# -------------------------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Behaviour:
    """A named step of the pipeline: `fn(frame, world, rng) -> frame`, at the call or the attempt level.

    Call-level frames have one row per logical call (see `_traffic` for the columns, plus the token
    counts); attempt-level frames one row per attempt (adds `attempt`, `status` (0 = timeout),
    `latency_ms`, `ts_ms`, `cost_pico`). A behaviour that plants an anomaly changes or appends rows
    and sets their `scenario`; appended sessions take numbers above the existing ones.
    """

    name: str
    level: Literal["calls", "attempts"]
    fn: Callable[[pl.DataFrame, World, np.random.Generator], pl.DataFrame]


BASE_BEHAVIOURS: tuple[Behaviour, ...] = (
    Behaviour("tokens", "calls", _tokens),
    Behaviour("latency", "attempts", _latency),
    Behaviour("cost", "attempts", _cost),
)


def generate_gateway(
    rows: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    days: int = 30,
    teams: int = 30,
    retry_share: float = 0.02,
    untagged_share: float = 0.005,
    behaviours: Sequence[Behaviour] = (),
    labels: bool = False,
) -> pl.DataFrame:
    """`rows` canonical gateway records (one per attempt) over `days` days from `start`, sorted by `ts`.

    The same arguments give the same frame. What it looks like:
      - `teams` teams with 2-5 features each, drawn from `ARCHETYPES` (chat, RAG, agents, batch evals,
        embeddings ...), each with its own mix of OpenAI / Anthropic / Google models, some migrating to
        a newer model mid-period; team and feature volumes are heavy-tailed (lognormal);
      - token counts lognormal per feature; cached reads for features that cache, cache writes for
        Anthropic, reasoning tokens (inside output) for reasoning models; batch / flex / priority tiers;
      - office hours and weekly seasonality in each team's time zone, nightly batch jobs, per-team
        growth, feature launches, a few quiet days;
      - `retry_share` of calls (default 2 %) fail 1-3 times with 429 / 5xx / timeout and are retried
        under the same `trace_id` and `prompt_hash` (`attempt` 2, 3 ...), the last attempt with 200;
        0.2 % of calls get a 400 and are not retried; `untagged_share` of sessions carry no team/feature;
      - `cost_usd` is what the gateway reports: `genai-prices` catalog prices (batch at half price),
        exact to 1e-12 USD, 0 for failed attempts.
    `behaviours` run after the base steps of their level (see `Behaviour`); `labels` keeps `scenario`.
    """
    if rows < 0:
        raise ValueError("rows must be non-negative")
    world = build_world(seed=seed, start=start, days=days, teams=teams, untagged_share=untagged_share)
    calls = _traffic(world, rows, retry_share, _rng(seed, "traffic"))
    steps = (*BASE_BEHAVIOURS, *behaviours)
    for b in (b for b in steps if b.level == "calls"):
        calls = b.fn(calls, world, _rng(seed, b.name))
    frame = _explode_attempts(calls, world, _rng(seed, "attempts"))
    del calls
    for b in (b for b in steps if b.level == "attempts"):
        frame = b.fn(frame, world, _rng(seed, b.name))
    physical = {s.name: s for s in _sorted_by_time(frame).get_columns()}
    del frame
    return _canonical(physical, world, labels=labels)


def _mix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection on 64-bit integers, so distinct inputs give distinct ids."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex_ids(prefix: str, seed: int, stream: str, values: I64) -> pl.Series:
    """`prefix` + 16 hex digits of a seeded bijection of `values`: unique per value, unrelated across seeds.

    The text is written into one byte buffer with numpy and handed to Arrow as a string array.
    """
    n, head = len(values), prefix.encode()
    key = np.uint64(int(_mix64(np.array([seed * 0x10001 + zlib.crc32(stream.encode())], dtype=np.uint64))[0]))
    with np.errstate(over="ignore"):
        raw = _mix64(values.astype(np.uint64) + key).astype(">u8").view(np.uint8).reshape(n, 8)
    width = len(head) + 16
    text = np.empty((n, width), dtype=np.uint8)
    text[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    text[:, len(head) :: 2] = _HEX[raw >> 4]
    text[:, len(head) + 1 :: 2] = _HEX[raw & 15]
    offsets = np.arange(0, width * n + 1, width, dtype=np.int64)
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
    return pl.Series(pl.from_arrow(array))


def _names(names: Sequence[str], index: npt.NDArray[np.int64]) -> pl.Series:
    """`names[index]` as a Categorical column (-1 gives NULL): low-cardinality strings stay small in memory."""
    categories = list(dict.fromkeys(names))
    lookup = np.array([categories.index(x) for x in names], dtype=np.int64)
    idx = np.asarray(index, dtype=np.int64)
    codes = pl.Series(np.where(idx < 0, 0, lookup[np.maximum(idx, 0)]))
    values = pl.Series(categories, dtype=pl.Categorical).gather(codes)
    return values.scatter(np.flatnonzero(idx < 0), None) if (idx < 0).any() else values


def _sorted_by_time(frame: pl.DataFrame) -> pl.DataFrame:
    ts = frame["ts_ms"].to_numpy()
    if len(ts) and np.any(ts[1:] < ts[:-1]):
        return frame[np.argsort(ts, kind="stable")]  # nearly sorted already: sessions are in time order
    return frame


def _canonical(physical: dict[str, pl.Series], world: World, *, labels: bool) -> pl.DataFrame:
    """The DESIGN.md columns in order; request ids follow the row order.

    Takes the attempt-level columns as a dict and pops each one once used, so the physical and the
    canonical columns are not all in memory at once (about 5 GB less at 10M rows).
    """
    take = physical.pop
    n = len(physical["ts_ms"])
    f = take("feature").to_numpy().astype(np.int64)
    team = world.f_team[f]
    untagged = take("untagged").to_numpy()
    session = take("session").to_numpy().astype(np.int64)
    env = take("environment").to_numpy().astype(np.int64)
    model = take("model").to_numpy()
    users = [f"usr_{i:05d}" for i in range(int(world.t_user_base[-1] + world.t_users[-1]))]
    status_codes = np.array(sorted(_STATUS_NAMES))
    # 5 % of interactive sessions run in one of twelve experiments
    bucket = _mix64(session.astype(np.uint64) + np.uint64(world.seed))
    interactive = _feature_kind(world)[f] == _KINDS.index("interactive")
    experiment = np.where(interactive & (bucket % np.uint64(20) == 0), bucket % np.uint64(12), -1).astype(np.int64)
    del bucket, interactive
    columns: dict[str, pl.Series] = {
        "request_id": _hex_ids("req_", world.seed, "request", np.arange(n, dtype=np.int64)),
        "ts": take("ts_ms").cast(pl.Datetime("ms", "UTC")),
        "model": _names([m.name for m in MODELS], model),
        "provider": _names([m.provider for m in MODELS], model),
        **{c: take(c) for c in _TOKEN_COLUMNS},
        "team": _names(world.team_names, np.where(untagged, -1, team)),
        "feature": _names(world.f_name, np.where(untagged, -1, f)),
        "project": _names(world.f_project, f),
        "user": _names(users, take("user").to_numpy()),
        "environment": _names(ENVIRONMENTS, env),
        "api_key": _names(world.f_keys, f * len(ENVIRONMENTS) + env),
        "tags": pl.DataFrame(
            {
                "cost_center": _names([f"cc-{1000 + 10 * t}" for t in range(len(world.team_names))], team),
                "region": _names(world.t_region, team),
                "experiment": _names([f"exp-{i:02d}" for i in range(12)], experiment),
            }
        ).to_struct(),
        "trace_id": _hex_ids("tr_", world.seed, "trace", session),
        "attempt": take("attempt"),
        "status": _names([_STATUS_NAMES[c] for c in status_codes], np.searchsorted(status_codes, take("status"))),
        "prompt_hash": _hex_ids("", world.seed, "prompt", session * 64 + take("step").to_numpy()),
        "service_tier": _names(TIERS, take("tier").to_numpy()),
        "latency_ms": take("latency_ms"),
        # below 1e6 USD a float64 holds pico/1e12 within 5e-13, so the cast rounds to the exact decimal
        "cost_usd": (take("cost_pico") / 1e12).cast(pl.Decimal(18, 12)),
    }
    out = pl.DataFrame([columns.pop(name).rename(name) for name in GATEWAY_COLUMNS])
    return out.with_columns(physical["scenario"]) if labels else out


_TOKEN_COLUMNS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
_STATUS_NAMES = {TIMEOUT: "timeout", 200: "200", 400: "400", 429: "429", 500: "500", 503: "503", 529: "529"}


# ------------------------------------------------------------------------------------------- writing

Format = Literal["parquet", "jsonl", "csv"]
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


def write(
    df: pl.DataFrame,
    path: str | Path,
    fmt: Format | None = None,
    *,
    gzip: bool | None = None,
    chunk_rows: int = 500_000,
    row_group_rows: int = 262_144,
) -> Path:
    """Write `df` (columns of `generate_gateway`) as a canonical gateway file; returns the path.

    Shapes: JSONL has `ts` as RFC 3339 `Z` strings, `tags` as an object without null keys, `status` a
    number or a string (`"timeout"`), `cost_usd` a decimal number; CSV the same as text, `tags` as JSON
    text; Parquet keeps `ts` a UTC timestamp, `tags` a MAP<string, string>, `cost_usd` a decimal.
    `fmt` and `gzip` default from the suffix (`.jsonl.gz`). Written in chunks to bound memory, to a
    temporary name renamed at the end, so a reader never sees half a file.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    gz = gzip if gzip is not None else bool(suffixes) and suffixes[-1] == ".gz"
    fmt = fmt or _format_of(suffixes)
    if fmt == "parquet" and gz:
        raise ValueError("Parquet compresses its own pages; gzip applies to JSONL and CSV only")
    tmp = path.with_name(path.name + ".tmp")
    slices = [df.slice(i, chunk_rows) for i in range(0, max(df.height, 1), chunk_rows)]
    tags = [f.name for f in cast(pl.Struct, df.schema["tags"]).fields]
    try:
        if fmt == "parquet":
            _write_parquet(slices, tmp, tags, row_group_rows)
        else:
            opened = gzip_module.open(tmp, "wb", compresslevel=6) if gz else open(tmp, "wb")
            with cast(IO[bytes], opened) as fh:
                for i, part in enumerate(slices):
                    if fmt == "jsonl":
                        part.select(_jsonl_line(tags)).write_csv(fh, include_header=False, quote_style="never")
                    else:
                        text = (
                            pl.col("ts").dt.strftime(_TS_FORMAT),
                            _tags_json(tags),
                            pl.col("cost_usd").cast(pl.String),
                        )
                        part.with_columns(*text).write_csv(fh, include_header=i == 0)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _format_of(suffixes: list[str]) -> Format:
    core = suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes
    ext = core[-1] if core else ""
    formats: dict[str, Format] = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
    if ext not in formats:
        raise ValueError(f"cannot tell the format from {''.join(suffixes) or 'no suffix'}; pass fmt")
    return formats[ext]


def _json_member(name: str, expr: pl.Expr) -> pl.Expr:
    """`"name":<value>` with polars' own JSON encoding (strings escaped), or NULL when the value is NULL."""
    encoded = pl.struct(expr.alias(name)).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
    return pl.when(expr.is_null()).then(pl.lit(None, pl.String)).otherwise(encoded)


def _braced(body: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit("{"), body, pl.lit("}")])


def _tags_json(fields: Sequence[str]) -> pl.Expr:
    """`tags` as a JSON object holding only its non-null keys (string -> string)."""
    tags = pl.col("tags")
    members = [_json_member(f, tags.struct.field(f)) for f in fields]
    body = pl.concat_str(members, separator=",", ignore_nulls=True)
    return pl.when(tags.is_null()).then(pl.lit(None, pl.String)).otherwise(_braced(body)).alias("tags")


def _jsonl_line(tags: Sequence[str]) -> pl.Expr:
    """One JSON object per row, keys in DESIGN.md order, NULL fields as `null`.

    Runs of plain columns are encoded together by polars' JSON encoder (strings escaped); `ts`, `tags`,
    `status` and `cost_usd` are spliced in with their canonical shapes.
    """
    special: dict[str, pl.Expr] = {
        "ts": pl.format('"ts":"{}"', pl.col("ts").dt.strftime(_TS_FORMAT)),
        "tags": pl.format('"tags":{}', _tags_json(tags)),
        # HTTP codes as numbers, named outcomes (timeout) as strings
        "status": pl.format(
            '"status":{}',
            pl.when(pl.col("status").cast(pl.String).str.contains(r"^\d+$"))
            .then(pl.col("status").cast(pl.String))
            .otherwise(pl.format('"{}"', pl.col("status"))),
        ),
        "cost_usd": pl.format('"cost_usd":{}', pl.col("cost_usd").cast(pl.String)),
    }
    members: list[pl.Expr] = []
    run: list[str] = []
    for name in (*GATEWAY_COLUMNS, None):
        if name is not None and name not in special:
            run.append(name)
            continue
        if run:
            members.append(pl.struct(run).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}"))
            run = []
        if name is not None:
            null = pl.lit(f'"{name}":null')
            members.append(pl.when(pl.col(name).is_null()).then(null).otherwise(special[name]))
    return _braced(pl.concat_str(members, separator=",")).alias("line")


def _write_parquet(slices: list[pl.DataFrame], path: Path, tags: Sequence[str], row_group_rows: int) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for part in slices:
            table = _parquet_table(part, tags)
            writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=row_group_rows)
    finally:
        if writer is not None:
            writer.close()


def _parquet_table(df: pl.DataFrame, tags: Sequence[str]) -> pa.Table:
    """Arrow table with `tags` as MAP<string, string> (only non-null keys) and names as plain strings."""
    values = df.select(
        pl.concat_list([pl.col("tags").struct.field(n).cast(pl.String) for n in tags]).alias("v")
    ).explode("v")["v"]
    valid = values.is_not_null().to_numpy().reshape(-1, len(tags)) & df["tags"].is_not_null().to_numpy()[:, None]
    offsets = pa.array(np.concatenate([[0], np.cumsum(valid.sum(axis=1))]).astype(np.int32))
    keys = pa.array(tags, pa.string()).take(pa.array(np.tile(np.arange(len(tags)), df.height)[valid.ravel()]))
    items = values.filter(pl.Series(valid.ravel())).to_arrow().cast(pa.string())
    table = df.drop("tags").with_columns(pl.col(pl.Categorical).cast(pl.String)).to_arrow()
    plain = [pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) else f.type) for f in table.schema]
    table = table.cast(pa.schema(plain))
    return table.add_column(GATEWAY_COLUMNS.index("tags"), "tags", pa.MapArray.from_arrays(offsets, keys, items))
