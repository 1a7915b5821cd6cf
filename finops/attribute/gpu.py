"""GPU spend: each job's GPU time priced per UTC day, and each pool's idle capacity (polars jobs, no I/O).

A *pool* is one cluster, GPU type and UTC day. Order of operations (opencost's: allocate, price, idle, share):
  1. cut every job at 00:00 UTC, and at `as_of` when given (nothing after it is known yet): one slice
     per UTC day it ran. The job's GPU-seconds (its `gpu_seconds` as ingest stored it; else wall
     seconds x gpu_count, rounded half up to the nano-GPU-second) are split over its slices in
     proportion to their wall time, by cumulative rounding: a slice ending t microseconds after the
     start holds round(total x t / wall) - round(total x t_before / wall), so the slices of a job
     sum to its GPU-seconds exactly and a day's slice does not change when `as_of` moves past a
     later day. Fractional counts (MIG slices, time-slicing) count by fraction; failed and cancelled
     jobs are spend like any other;
  2. owner of each job: its own team and feature, else the ownership rules (project, tags, the GPU
     type as the model), else `__unattributed__`; `attribution` says which;
  3. capacity of each pool: every capacity window cut at 00:00 UTC (and `as_of`), summed;
  4. rate of each pool, USD per GPU-hour, one per pool: a capacity record's `hourly_rate` (of the
     latest-starting record of the pool that has one), else the rate `recorded` for the pool when it
     was first priced (NULL included: a pool first priced without a rate stays so), else the user's
     `gpu_rates` override for that cluster, else the user's override for any cluster, else the
     default list price of the GPU type; rates are effective-dated by UTC day and the most recently
     started row wins. `rate_origin` says which (capacity, recorded, resolved; NULL: no rate). No
     rate: every cost of the pool is NULL (never 0) and its lines stay visible;
  5. idle GPU-seconds = capacity - allocated, when positive. Allocation beyond capacity is
     over-allocation (`gpu_pools` reports it), never negative idle; a pool without capacity records
     has no idle;
  6. price each pool once: (allocated + idle) GPU-hours x rate, rounded half-even to 1e-12, then
     apportioned to its job slices and its idle by largest remainder at 1e-12: each line is within
     1e-12 of its exact cost and the lines sum to the pool's total exactly;
  7. idle policy: `idle` keeps one `__idle__` line per pool; `proportional` shares it to the teams
     that ran on the pool that day by their GPU-seconds, `even` equally (largest remainder again, for
     the cost at 1e-12 and the idle GPU-seconds at 1e-9, so shares sum exactly); a pool nobody ran on
     keeps its `__idle__` line;
  8. shape as `spend_lines` rows (GPU_LINE_SCHEMA): line_type `gpu` (a job's day) or `idle`, kind `gpu`, provider = the
     cluster, model = the GPU type, list_cost_usd = cost_usd.
Exact arithmetic runs on Int128 integers: GPU-seconds in 1e-9, dollars in 1e-12. No product of two
large integers is formed: a GPU time x a rate is split at 3600 x 1e9, an amount x a weight at the
weights' sum (weights beyond 1e18, 1e9 GPU-seconds, are first rounded to a power of ten), so records
within the ingest bounds (1e13 GPUs, 1e13 GPU-seconds, rates below 1e6 USD) cannot overflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl

from finops.attribute.owners import RULE_SCHEMA, assign_owner
from finops.errors import InputError
from finops.price.cost import COST, require_columns
from finops.schema import IDLE, SHARED

__all__ = [
    "CAPACITY_COLUMNS",
    "DEFAULT_RATE_SOURCE",
    "GPU_LINE_SCHEMA",
    "GPU_SECONDS",
    "IDLE_POLICIES",
    "JOB_COLUMNS",
    "POOL",
    "RECORDED_RATE_SCHEMA",
    "gpu_pools",
    "gpu_spend",
    "job_slices",
]

IDLE_POLICIES = ("idle", "proportional", "even")
DEFAULT_RATE_SOURCE = "default"  # `gpu_rates.source` of the bundled list-price defaults
JOB_COLUMNS = (
    "source",
    "job_id",
    "start_ts",
    "end_ts",
    "gpu_type",
    "gpu_count",
    "team",
    "feature",
    "project",
    "user",
    "cluster",
    "status",
    "tags",
)
CAPACITY_COLUMNS = ("source", "capacity_id", "cluster", "gpu_type", "gpu_count", "start_ts", "end_ts", "hourly_rate")
POOL = ["cluster", "gpu_type", "charge_day"]
GPU_SECONDS = pl.Decimal(38, 9)
# the rate a pool was first priced with (`gpu_pool_rates`): NULL hourly_usd when it had none
RECORDED_RATE_SCHEMA: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "gpu_type": pl.String(),
    "charge_day": pl.Date(),
    "hourly_usd": COST,
    "price_source": pl.String(),
}
_TOKENS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
# the `spend_lines` columns a GPU line fills, in the table's order; the others (usage keys, ...) stay NULL
GPU_LINE_SCHEMA: dict[str, pl.DataType] = {
    "line_type": pl.String(),
    "kind": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "charge_day": pl.Date(),
    **{c: pl.String() for c in ("source", "provider", "model", "price_model", "service_tier", "team", "feature")},
    **{c: pl.String() for c in ("project", "user", "attribution")},
    "list_cost_usd": COST,
    "cost_usd": COST,
    **{c: pl.Int64() for c in (*_TOKENS, "requests")},
    "gpu_type": pl.String(),
    "gpu_seconds": GPU_SECONDS,
    "trace_id": pl.String(),
    "request_id": pl.String(),
    "attempt": pl.Int32(),
    "status": pl.String(),
    "price_source": pl.String(),
}

_I = pl.Int128()
_DAY_US = 86_400_000_000
_NANO = 10**9  # GPU-seconds and GPU counts in integers of 1e-9
_PICO = 10**12  # dollars and rates in integers of 1e-12
_COST_DENOM = 3600 * _NANO  # pico-USD = nano-GPU-seconds x pico-USD per GPU-hour / (3600 x 1e9)
_MAX_WEIGHT = 10**18  # weights of one share-out are rounded to a power of ten until they sum below it
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_LABEL = "default list price (gpu_rates_default.csv)"


def gpu_spend(
    jobs: pl.LazyFrame,
    capacity: pl.LazyFrame,
    rates: pl.LazyFrame,
    policy: str,
    *,
    days: Iterable[date] | None = None,
    as_of: datetime | None = None,
    rules: pl.LazyFrame | None = None,
    recorded: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """`spend_lines` rows (GPU_LINE_SCHEMA) for the job days and idle capacity of `days` (all when None);
    `recorded` (RECORDED_RATE_SCHEMA) holds the rates pools were first priced with. See the module
    docstring for the order of operations."""
    if policy not in IDLE_POLICIES:
        raise InputError(f"Idle policy '{policy}' is not known. Valid values are: {', '.join(IDLE_POLICIES)}.")
    slices = job_slices(jobs, days=days, as_of=as_of).pipe(_assign_owner, rules)
    pools = _pools(slices, _capacity_days(capacity, days, as_of), rates, recorded)
    costed = _cost_pieces(slices, pools)
    lines = pl.concat(
        [
            _job_lines(costed.filter(pl.col("_piece") == "gpu")),
            _idle_lines(costed.filter(pl.col("_piece") == "idle"), slices, policy),
        ]
    )
    order = ["charge_day", "provider", "gpu_type", "line_type", "team", "feature", "source", "request_id"]
    return lines.sort(order, nulls_last=True)


def gpu_pools(
    jobs: pl.LazyFrame,
    capacity: pl.LazyFrame,
    rates: pl.LazyFrame,
    *,
    days: Iterable[date] | None = None,
    as_of: datetime | None = None,
    recorded: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One row per pool (cluster, GPU type, UTC day): capacity (NULL without capacity records),
    allocated, idle and over-allocated GPU-seconds, and the rate with where it came from (steps 1, 3-5)."""
    slices = job_slices(jobs, days=days, as_of=as_of)
    pools = _pools(slices, _capacity_days(capacity, days, as_of), rates, recorded)
    return pools.select(
        *POOL,
        capacity_gpu_seconds=_nanos_as_decimal("_cap_n"),
        allocated_gpu_seconds=_nanos_as_decimal("_alloc_n"),
        idle_gpu_seconds=_nanos_as_decimal("_idle_n"),
        overallocated_gpu_seconds=_nanos_as_decimal("_over_n"),
        hourly_usd=pl.col("hourly_usd"),
        price_source=pl.col("price_source"),
        rate_origin=pl.col("rate_origin"),
    ).sort(POOL, nulls_last=True)


def job_slices(
    jobs: pl.LazyFrame, *, days: Iterable[date] | None = None, as_of: datetime | None = None
) -> pl.LazyFrame:
    """Each job cut into the UTC days it ran (step 1): the job's columns, `charge_day`, `ts` (the
    slice's start), `gpu_seconds` (Decimal(38,9)) and `requests` (1 on the job's first day only).
    A job's `gpu_seconds` column is optional (NULL or absent: wall seconds x gpu_count)."""
    require_columns(jobs, JOB_COLUMNS, frame_name="jobs")
    return (
        _by_day(jobs, None, as_of)
        .pipe(_split_job_time)
        .pipe(_on_days, days)
        .with_columns(
            ts=_timestamp("_from_us"),
            requests=(pl.col("_day") == pl.col("_start_us") // _DAY_US).cast(pl.Int64),
        )
        .with_columns(gpu_seconds=_nanos_as_decimal("_gs_n"))
        .drop("_start_us", "_end_us", "_day", "_from_us", "_to_us")
    )


# ------------------------------------------------------------------------------------ steps 1 to 5


def _by_day(frame: pl.LazyFrame, days: Iterable[date] | None, as_of: datetime | None) -> pl.LazyFrame:
    """One row per UTC day each [start_ts, end_ts) touches, cut at `as_of`: `_day` (days since
    1970-01-01), `_from_us`/`_to_us` (the part inside that day, epoch microseconds) and `charge_day`;
    `_start_us`/`_end_us` are the whole interval's (uncut). A zero-length interval keeps one row on its
    start day."""
    start = pl.col("start_ts").dt.epoch("us")
    end = pl.max_horizontal(pl.col("end_ts").dt.epoch("us"), start)
    frame = frame.with_columns(_start_us=start, _end_us=end)
    known = pl.col("_end_us")
    if as_of is not None:
        cut = _epoch_us(as_of)
        frame = frame.filter(pl.col("_start_us") < cut)
        known = pl.min_horizontal(known, pl.lit(cut))
    first = pl.col("_start_us") // _DAY_US
    last = (pl.max_horizontal(known, pl.col("_start_us") + 1) - 1) // _DAY_US
    sliced = frame.with_columns(_known_us=known, _day=pl.int_ranges(first, last + 1)).explode("_day")
    day_start = pl.col("_day") * _DAY_US
    return _on_days(
        sliced.with_columns(
            _from_us=pl.max_horizontal("_start_us", day_start),
            _to_us=pl.min_horizontal("_known_us", day_start + _DAY_US),
            charge_day=pl.col("_day").cast(pl.Int32).cast(pl.Date),
        ).drop("_known_us"),
        days,
    )


def _on_days(sliced: pl.LazyFrame, days: Iterable[date] | None) -> pl.LazyFrame:
    """The slices of `days` (all when None)."""
    if days is None:
        return sliced
    return sliced.filter(pl.col("_day").is_in(sorted({(d - _EPOCH.date()).days for d in days})))


def _split_job_time(slices: pl.LazyFrame) -> pl.LazyFrame:
    """Step 1's split: `_gs_n`, each slice's nano-GPU-seconds, by cumulative rounding of the job's total
    over its wall time (see the module docstring); a zero-length job's one slice holds the whole total."""
    wall = (pl.col("_end_us") - pl.col("_start_us")).cast(_I)
    from_wall = _div_half_up(wall * _nanos("gpu_count"), 10**6)
    given = _nanos("gpu_seconds") if "gpu_seconds" in slices.collect_schema().names() else None
    total = from_wall if given is None else pl.coalesce(given, from_wall)
    upto = (pl.col("_to_us") - pl.col("_start_us")).cast(_I)
    before = (pl.col("_from_us") - pl.col("_start_us")).cast(_I)
    share = (
        pl.when(pl.col("_wall") == 0)
        .then(pl.col("_total"))
        .otherwise(
            _scaled_half_up(pl.col("_total"), upto, pl.col("_wall"))
            - _scaled_half_up(pl.col("_total"), before, pl.col("_wall"))
        )
    )
    return slices.with_columns(_wall=wall, _total=total).with_columns(_gs_n=share).drop("_wall", "_total")


def _assign_owner(slices: pl.LazyFrame, rules: pl.LazyFrame | None) -> pl.LazyFrame:
    """Step 2, with the token spend's owner rules: the GPU type stands for the model, no API key."""
    rules = rules if rules is not None else pl.LazyFrame(schema=RULE_SCHEMA)
    keyed = slices.with_columns(api_key=pl.lit(None, pl.String()), model=pl.col("gpu_type"))
    return assign_owner(keyed, rules).drop("api_key", "model")


def _capacity_days(capacity: pl.LazyFrame, days: Iterable[date] | None, as_of: datetime | None) -> pl.LazyFrame:
    """Step 3: each capacity window's part of each UTC day, in nano-GPU-seconds (`_cap_n`)."""
    require_columns(capacity, CAPACITY_COLUMNS, frame_name="capacity")
    return (
        _by_day(capacity, days, as_of)
        .filter(pl.col("_to_us") > pl.col("_from_us"))
        .with_columns(
            _cap_n=_div_half_up((pl.col("_to_us") - pl.col("_from_us")).cast(_I) * _nanos("gpu_count"), 10**6),
            hourly_rate=pl.col("hourly_rate").cast(COST),
        )
    )


def _pool_rates(
    pools: pl.LazyFrame, capacity_days: pl.LazyFrame, rates: pl.LazyFrame, recorded: pl.LazyFrame | None
) -> pl.LazyFrame:
    """Step 4: `hourly_usd`, `price_source` and `rate_origin` of each pool, by the documented precedence."""
    rates = rates.with_columns(pl.col("hourly_usd").cast(COST))
    in_force = (pl.col("charge_day") >= pl.col("valid_from")) & (
        pl.col("valid_to").is_null() | (pl.col("charge_day") < pl.col("valid_to"))
    )

    def newest(candidates: pl.LazyFrame, label: pl.Expr) -> pl.LazyFrame:
        return (
            candidates.filter(in_force)
            .sort(["valid_from", "hourly_usd", "source"], descending=[True, True, False])
            .unique(POOL, keep="first", maintain_order=True)
            .select(*POOL, _rate=pl.col("hourly_usd"), _label=label)
        )

    user = rates.filter(pl.col("source") != DEFAULT_RATE_SOURCE)
    defaults = rates.filter(pl.col("source") == DEFAULT_RATE_SOURCE).drop("cluster")
    recorded = recorded if recorded is not None else pl.LazyFrame(schema=RECORDED_RATE_SCHEMA)
    candidates = [
        (
            "capacity",
            capacity_days.filter(pl.col("hourly_rate").is_not_null())
            .sort(["_start_us", "hourly_rate", "capacity_id"], descending=[True, True, False])
            .unique(POOL, keep="first", maintain_order=True)
            .select(*POOL, _rate=pl.col("hourly_rate"), _label=pl.lit("capacity ") + pl.col("capacity_id")),
        ),
        (
            "recorded",
            recorded.select(*POOL, _rate=pl.col("hourly_usd").cast(COST), _label=pl.col("price_source")).unique(
                POOL, keep="first", maintain_order=True
            ),
        ),
        (
            "resolved",
            newest(
                pools.join(user.filter(pl.col("cluster").is_not_null()), on=["cluster", "gpu_type"]), pl.col("source")
            ),
        ),
        (
            "resolved",
            newest(
                pools.join(user.filter(pl.col("cluster").is_null()).drop("cluster"), on="gpu_type"), pl.col("source")
            ),
        ),
        ("resolved", newest(pools.join(defaults, on="gpu_type"), pl.lit(_DEFAULT_LABEL))),
    ]
    best = (
        pl.concat(
            [c.with_columns(_rank=pl.lit(rank), _origin=pl.lit(origin)) for rank, (origin, c) in enumerate(candidates)]
        )
        .sort("_rank")
        .unique(POOL, keep="first", maintain_order=True)
    )
    return pools.join(best, on=POOL, how="left", nulls_equal=True).select(
        *POOL, hourly_usd=pl.col("_rate"), price_source=pl.col("_label"), rate_origin=pl.col("_origin")
    )


def _pools(
    slices: pl.LazyFrame, capacity_days: pl.LazyFrame, rates: pl.LazyFrame, recorded: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Steps 4-5 per pool: `_cap_n` (NULL without capacity), `_alloc_n`, `_idle_n`, `_over_n`, the
    rate (`hourly_usd`, `_rate_p` in pico-USD, `price_source`, `rate_origin`) and `_cap_source`."""
    allocated = slices.group_by(POOL).agg(_alloc_n=pl.col("_gs_n").sum())
    capacity = capacity_days.group_by(POOL).agg(_cap_n=pl.col("_cap_n").sum(), _cap_source=pl.col("source").min())
    keys = pl.concat([allocated.select(POOL), capacity.select(POOL)]).unique()
    zero = pl.lit(0, _I)
    alloc = pl.col("_alloc_n").fill_null(zero)
    has_capacity = pl.col("_cap_n").is_not_null()
    return (
        keys.join(allocated, on=POOL, how="left", nulls_equal=True)
        .join(capacity, on=POOL, how="left", nulls_equal=True)
        .join(_pool_rates(keys, capacity_days, rates, recorded), on=POOL, how="left", nulls_equal=True)
        .with_columns(
            _alloc_n=alloc,
            _idle_n=pl.when(has_capacity).then(pl.max_horizontal(pl.col("_cap_n") - alloc, zero)).otherwise(zero),
            _over_n=pl.when(has_capacity).then(pl.max_horizontal(alloc - pl.col("_cap_n"), zero)).otherwise(zero),
            _rate_p=(pl.col("hourly_usd") * pl.lit(_PICO)).cast(_I),
        )
    )


# ------------------------------------------------------------------------------------ steps 6 to 8


def _cost_pieces(slices: pl.LazyFrame, pools: pl.LazyFrame) -> pl.LazyFrame:
    """Step 6: the pool's cost, rounded once, apportioned over its job slices and its idle (`_cost_p`).
    Rows are the slices (`_piece` 'gpu') and one row per pool with idle GPU-seconds (`_piece` 'idle')."""
    rate = pools.select(*POOL, "_rate_p", "hourly_usd", "price_source")
    jobs = slices.join(rate, on=POOL, how="left", nulls_equal=True).with_columns(
        _piece=pl.lit("gpu"), _key=pl.concat_str("source", "job_id", separator="\x1f")
    )
    idle = pools.filter(pl.col("_idle_n") > 0).select(
        *POOL,
        "_rate_p",
        "hourly_usd",
        "price_source",
        _gs_n=pl.col("_idle_n"),
        source=pl.col("_cap_source"),
        _piece=pl.lit("idle"),
        _key=pl.lit(""),
    )
    pieces = pl.concat([jobs, idle], how="diagonal_relaxed")
    # each piece's exact cost is _gs_n x _rate_p / _COST_DENOM: its floor and remainder, and the pool's
    # total rounded half-even once from their sums
    floor, rem = _times_rate(pl.col("_gs_n"), pl.col("_rate_p"))
    pieces = pieces.with_columns(_floor=floor, _rem=rem)
    total = _round_half_even(pl.col("_floor").sum().over(POOL), pl.col("_rem").sum().over(POOL), _COST_DENOM)
    return _apportion(pieces, by=POOL, total=total, order=["_piece", "_key"])


def _apportion(frame: pl.LazyFrame, *, by: list[str], total: pl.Expr, order: list[str]) -> pl.LazyFrame:
    """The largest-remainder step, in integer units, over rows carrying `_floor` and `_rem`: the floor and
    the remainder of an exact share num / den, one `den` per group (`_times_rate`, `_shares`). Each row
    gets its floor, and the `total - sum(floors)` units left in its group go one each to the rows with the
    largest remainders (ties by `order`). When `total` is the rounded sum of the shares, every row ends
    within one unit of its exact share, no row goes below its floor, and the rows sum to `total` exactly.
    The result is `_units`; NULL where `_floor` is NULL."""
    descending = [False] * len(by) + [True] + [False] * len(order)
    return (
        frame.with_columns(_total=total)
        .with_columns(_extra=pl.col("_total") - pl.col("_floor").sum().over(by))
        .sort([*by, "_rem", *order], descending=descending, nulls_last=True)
        .with_columns(_pos=pl.int_range(pl.len()).over(by))
        .with_columns(_units=pl.col("_floor") + (pl.col("_pos") < pl.col("_extra")).cast(_I))
        .drop("_total", "_floor", "_rem", "_extra", "_pos")
    )


def _shares(frame: pl.LazyFrame, *, by: list[str], amount: pl.Expr, weight: pl.Expr, order: list[str]) -> pl.LazyFrame:
    """`amount` (the same on every row of a group) shared over the rows of each group by `weight`, exactly
    (`_units`, summing to the amount). The amount x weight / sum(weight) is never formed as a product:
    amount = q x sum + r, and the row's share is q x weight + r x weight / sum, where r x weight stays
    below sum^2. Weights summing beyond _MAX_WEIGHT (1e9 GPU-seconds) are first rounded to a power of ten
    (each moves by less than 1e-17 of their sum), which keeps sum^2 far inside Int128."""
    raw_sum = pl.col("_share_w0").sum().over(by)
    digits = (raw_sum.cast(pl.Float64) / _MAX_WEIGHT).log10().ceil().clip(lower_bound=0)
    scale = pl.lit(10.0).pow(digits).cast(_I)
    total = pl.col("_share_w").sum().over(by)
    part = (pl.col("_amount") % total) * pl.col("_share_w")
    return (
        frame.with_columns(_amount=amount, _share_w0=weight.cast(_I))
        .with_columns(_share_w=_div_half_up(pl.col("_share_w0"), scale))
        .with_columns(_floor=(pl.col("_amount") // total) * pl.col("_share_w") + part // total, _rem=part % total)
        .pipe(_apportion, by=by, total=pl.col("_amount"), order=order)
        .drop("_amount", "_share_w0", "_share_w")
    )


def _idle_lines(idle: pl.LazyFrame, slices: pl.LazyFrame, policy: str) -> pl.LazyFrame:
    """Step 7: the idle of each pool as `__idle__`, or shared to the teams that ran on the pool."""
    pool_name = pl.format("{}/{}", pl.col("cluster"), pl.col("gpu_type"))
    idle = idle.select(*POOL, "_gs_n", "source", "price_source", _cost_p=pl.col("_units"))
    if policy == "idle":
        return _shape_idle(
            idle.with_columns(team=pl.lit(IDLE), feature=pl.lit(IDLE), attribution=pl.format("idle: {}", pool_name))
        )
    users = slices.filter(pl.col("_gs_n") > 0).group_by(*POOL, "team").agg(_w=pl.col("_gs_n").sum())
    if policy == "even":
        users = users.with_columns(_w=pl.lit(1, _I))
    shared = (
        idle.join(users, on=POOL, how="inner", nulls_equal=True)
        .pipe(_shares, by=POOL, amount=pl.col("_cost_p"), weight=pl.col("_w"), order=["team"])
        .with_columns(_cost_p=pl.col("_units"))
        .pipe(_shares, by=POOL, amount=pl.col("_gs_n"), weight=pl.col("_w"), order=["team"])
        .with_columns(
            _gs_n=pl.col("_units"),
            feature=pl.lit(SHARED),
            attribution=pl.format("idle shared: {} ({})", pl.lit(policy), pool_name),
        )
    )
    unused = idle.join(users.select(POOL).unique(), on=POOL, how="anti", nulls_equal=True).with_columns(
        team=pl.lit(IDLE),
        feature=pl.lit(IDLE),
        attribution=pl.format("idle: {} (nobody ran on it; policy {})", pool_name, pl.lit(policy)),
    )
    return pl.concat([_shape_idle(shared), _shape_idle(unused)])


def _job_lines(costed: pl.LazyFrame) -> pl.LazyFrame:
    """Step 8 for job slices: one `gpu` line per job and UTC day."""
    cost = _picos_as_decimal("_units")
    return _shape(
        costed,
        line_type=pl.lit("gpu"),
        **{c: pl.col(c) for c in ("ts", "charge_day", "source", "team", "feature", "project", "user")},
        provider=pl.col("cluster"),
        model=pl.col("gpu_type"),
        attribution=pl.col("attribution"),
        list_cost_usd=cost,
        cost_usd=cost,
        requests=pl.col("requests"),
        gpu_type=pl.col("gpu_type"),
        gpu_seconds=pl.col("gpu_seconds"),
        request_id=pl.col("job_id"),
        status=pl.col("status"),
        price_source=pl.col("price_source"),
    )


def _shape_idle(idle: pl.LazyFrame) -> pl.LazyFrame:
    """Step 8 for idle capacity: one `idle` line per pool and owner (team or `__idle__`)."""
    cost = _picos_as_decimal("_cost_p")
    return _shape(
        idle,
        line_type=pl.lit("idle"),
        ts=pl.col("charge_day").cast(pl.Datetime("us", "UTC")),
        charge_day=pl.col("charge_day"),
        source=pl.col("source"),
        provider=pl.col("cluster"),
        model=pl.col("gpu_type"),
        team=pl.col("team"),
        feature=pl.col("feature"),
        attribution=pl.col("attribution"),
        list_cost_usd=cost,
        cost_usd=cost,
        gpu_type=pl.col("gpu_type"),
        gpu_seconds=_nanos_as_decimal("_gs_n"),
        price_source=pl.col("price_source"),
    )


def _shape(frame: pl.LazyFrame, **columns: pl.Expr) -> pl.LazyFrame:
    """Select GPU_LINE_SCHEMA's columns in order: as given, else 0 for counts and NULL otherwise."""
    kind = {"kind": pl.lit("gpu")}
    counts = {c: pl.lit(0) for c in (*_TOKENS, "requests")}
    chosen = {**kind, **counts, **columns}
    return frame.select(
        [chosen.get(name, pl.lit(None)).cast(dtype).alias(name) for name, dtype in GPU_LINE_SCHEMA.items()]
    )


# ------------------------------------------------------------------------------------ exact numbers


def _epoch_us(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def _timestamp(epoch_us: str) -> pl.Expr:
    return pl.from_epoch(pl.col(epoch_us), time_unit="us").dt.replace_time_zone("UTC")


def _nanos(column: str) -> pl.Expr:
    """A decimal column (at most 9 places) as an exact integer of 1e-9."""
    return (pl.col(column).cast(GPU_SECONDS) * pl.lit(_NANO)).cast(_I)


def _nanos_as_decimal(column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Decimal(38, 0)) * pl.lit(Decimal("1e-9"), GPU_SECONDS)).cast(GPU_SECONDS)


def _picos_as_decimal(column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Decimal(38, 0)) * pl.lit(Decimal("1e-12"), COST)).cast(COST)


def _div_half_up(num: pl.Expr, den: int | pl.Expr) -> pl.Expr:
    """num / den rounded half up, for num >= 0 (GPU time; the ingest rounds times the same way)."""
    return (num + den // 2) // den


def _scaled_half_up(amount: pl.Expr, num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """amount x num / den rounded half up, for 0 <= num <= den and den > 0, without the product amount x num:
    (q x den + r) x num / den = q x num + r x num / den, with r x num below den^2."""
    quotient, remainder = amount // den, amount % den
    return quotient * num + (2 * remainder * num + den) // (2 * den)


def _times_rate(gs_n: pl.Expr, rate_p: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Floor and remainder of gs_n x rate_p / _COST_DENOM (pico-USD), without the product gs_n x rate_p,
    which passes Int128 near 1e20 GPU-seconds x USD per hour: gs_n = q x _COST_DENOM + r."""
    part = (gs_n % _COST_DENOM) * rate_p
    return (gs_n // _COST_DENOM) * rate_p + part // _COST_DENOM, part % _COST_DENOM


def _round_half_even(floors: pl.Expr, remainders: pl.Expr, den: int) -> pl.Expr:
    """(floors x den + remainders) / den rounded half to even, for non-negative parts (money is rounded so,
    once)."""
    quotient, remainder = floors + remainders // den, remainders % den
    up = (2 * remainder > den) | ((2 * remainder == den) & (quotient % 2 == 1))
    return quotient + up.cast(_I)
