"""The canonical tables ingest writes, as specs: fields, invariants, derived columns, dedup key.

Each adapter maps its input onto one target's field names; the engine turns the spec into SQL that
checks every row column-wise (see `fields.py`) and loads the clean rows idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from finops.ingest.fields import (
    COUNT_LIMIT,
    COUNT_LIMIT_TEXT,
    MONEY_LIMIT,
    MONEY_LIMIT_TEXT,
    PRICE_LIMIT,
    Field,
    Kind,
    Problem,
    sql_str,
)

__all__ = ["COSTS", "GPU_CAPACITY", "GPU_JOBS", "TARGETS", "Target", "USAGE", "infer_provider_sql"]

SERVICE_TIERS = ("default", "batch", "flex", "priority")

# model-name prefixes -> provider; checked in order. `openai/gpt-4o` style gateway names come first.
_PROVIDER_PREFIXES: tuple[tuple[str, str], ...] = (
    ("openai/", "openai"),
    ("azure/", "azure"),
    ("anthropic/", "anthropic"),
    ("bedrock/", "bedrock"),
    ("vertex_ai/", "google"),
    ("gemini/", "google"),
    ("google/", "google"),
    ("mistral/", "mistral"),
    ("groq/", "groq"),
    ("together_ai/", "together"),
    ("fireworks_ai/", "fireworks"),
    ("deepseek/", "deepseek"),
    ("xai/", "x-ai"),
    ("cohere/", "cohere"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("dall-e", "openai"),
    ("gpt-image", "openai"),
    ("whisper", "openai"),
    ("tts-", "openai"),
    ("omni-moderation", "openai"),
    ("text-moderation", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
    ("codex-", "openai"),
    ("claude", "anthropic"),
    ("gemini", "google"),
    ("gemma", "google"),
    ("imagen", "google"),
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("codestral", "mistral"),
    ("magistral", "mistral"),
    ("command", "cohere"),
    ("deepseek", "deepseek"),
    ("grok", "x-ai"),
)


def infer_provider_sql(model: str) -> str:
    """SQL giving the provider a model name implies, or NULL."""
    m = f"lower({model})"
    whens = " ".join(f"WHEN starts_with({m}, {sql_str(pre)}) THEN {sql_str(prov)}" for pre, prov in _PROVIDER_PREFIXES)
    return f"CASE {whens} END"


@dataclass(frozen=True)
class Target:
    """One canonical table: what its rows must carry, and how to recognise the same row twice."""

    table: str
    key_column: str  # the natural key, together with `source`
    fields: tuple[Field, ...]
    invariants: tuple[Problem, ...] = ()
    derived: tuple[tuple[str, str], ...] = ()  # (column, SQL over the typed field columns)
    internal: frozenset[str] = frozenset()  # fields used for checks/derivations but not stored

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def stored_columns(self) -> tuple[str, ...]:
        names = [f.name for f in self.fields if f.name not in self.internal]
        for col, _ in self.derived:
            if col not in names:
                names.append(col)
        return tuple(names)

    def with_optional(self, names: frozenset[str]) -> Target:
        """The same target with some required fields made optional (e.g. `model` of a usage bucket)."""
        if not names:
            return self
        return replace(self, fields=tuple(replace(f, required=False) if f.name in names else f for f in self.fields))


def _c(name: str) -> str:
    return f'"{name}"'


def _shown(col: str) -> str:
    return f"CAST({_c(col)} AS VARCHAR)"


_TOKEN_INVARIANTS = (
    Problem(
        f"{_c('cached_input_tokens')} + {_c('cache_write_tokens')} > {_c('input_tokens')}",
        "token_invariant",
        f"'cached_input_tokens (' || {_shown('cached_input_tokens')} || ') + cache_write_tokens (' || "
        f"{_shown('cache_write_tokens')} || ') exceed input_tokens (' || {_shown('input_tokens')} || "
        "'); expected input_tokens to include cached and cache-write tokens'",
    ),
    Problem(
        f"{_c('cache_write_1h_tokens')} > {_c('cache_write_tokens')}",
        "token_invariant",
        f"'cache_write_1h_tokens (' || {_shown('cache_write_1h_tokens')} || ') exceed cache_write_tokens (' || "
        f"{_shown('cache_write_tokens')} || '); expected cache_write_tokens to include 1-hour cache writes'",
    ),
    Problem(
        f"{_c('reasoning_tokens')} > {_c('output_tokens')}",
        "token_invariant",
        f"'reasoning_tokens (' || {_shown('reasoning_tokens')} || ') exceed output_tokens (' || "
        f"{_shown('output_tokens')} || '); expected output_tokens to include reasoning tokens'",
    ),
)

_CURRENCY_INVARIANT = Problem(
    'upper("currency") <> \'USD\' AND json_extract_string($fx, upper("currency")) IS NULL',
    "unsupported_currency",
    "'currency is ' || \"currency\" || '; expected USD, or a rate given with --fx-rate ' "
    "|| upper(\"currency\") || '=<USD per unit>'",
)


# The --fx-rate of the row's currency, as the user gave it and as used: DECIMAL(18,8) holds 0.00000001 up to
# 9999999999.99999999 USD per unit (a larger rate reads as NULL, a smaller one as 0)
_RATE_TEXT = 'json_extract_string($fx, upper("currency"))'
_RATE = f"TRY_CAST({_RATE_TEXT} AS DECIMAL(18,8))"
_HOURLY = '"hourly_rate"'
_FOREIGN = '"currency" IS NOT NULL AND upper("currency") <> \'USD\''


def _plain(expr: str) -> str:
    """A decimal shown without trailing zeros in a message (9000.000000000 -> 9000)."""
    return f"regexp_replace(regexp_replace(CAST({expr} AS VARCHAR), '(\\.[0-9]*?)0+$', '\\1'), '\\.$', '')"


def _in_usd(amount: str) -> str:
    """An amount converted to USD with the rate the user gave for its currency (`$fx`).

    NULL, never an error, when the product overflows: `_conversion_problems` rejects that row.
    """
    return f"CASE WHEN NOT ({_FOREIGN}) THEN {amount} ELSE TRY(CAST({amount} * {_RATE} AS DECIMAL(38,12))) END"


def _conversion_problems(amount: str, name: str, usd: str | None = None) -> tuple[Problem, ...]:
    """Rows whose `amount` cannot be converted to USD within MONEY_LIMIT: the currency's rate does not fit
    DECIMAL(18,8) (or rounds to 0), or the converted amount is beyond the limit. After `_CURRENCY_INVARIANT`.

    `name` is how the input files call the amount. `usd` is its USD expression when that involves more than the
    rate (a scale, as for `amount_usd`), and then is checked for every row; by default only rows of another
    currency are (the field check already bounds the amount itself).
    """
    foreign = f"{_FOREIGN} AND "
    currency, rate_given = 'upper("currency")', f"'--fx-rate ' || upper(\"currency\") || '=' || {_RATE_TEXT}"
    return (
        Problem(
            f"{foreign}{amount} IS NOT NULL AND COALESCE({_RATE}, 0) = 0",
            "unsupported_currency",
            f"{rate_given} || ' cannot convert {name} ' || {_plain(amount)} || ' ' || {currency} "
            "|| '; expected a rate from 0.00000001 to 9999999999.99999999 USD per unit'",
        ),
        Problem(
            f"{'' if usd else foreign}{amount} IS NOT NULL "
            f"AND NOT COALESCE(abs({usd or _in_usd(amount)}) <= {MONEY_LIMIT}, false)",
            "invalid_number",
            f"'{name} ' || {_plain(amount)} || ' ' || COALESCE({currency}, 'USD') || CASE WHEN {_FOREIGN} "
            f"THEN ' at ' || {rate_given} ELSE '' END || ' is beyond {MONEY_LIMIT_TEXT} USD; expected at most "
            f"{MONEY_LIMIT_TEXT} USD either way once converted'",
        ),
    )


USAGE = Target(
    table="usage_events",
    key_column="request_id",
    fields=(
        Field("request_id", Kind.TEXT, required=True),
        Field("ts", Kind.TIMESTAMP, required=True),
        Field("ts_end", Kind.TIMESTAMP),
        Field("model", Kind.TEXT, required=True),
        Field("provider", Kind.TEXT),
        Field("input_tokens", Kind.COUNT, required=True),
        Field("cached_input_tokens", Kind.COUNT, default="0"),
        Field("cache_write_tokens", Kind.COUNT, default="0"),
        Field("cache_write_1h_tokens", Kind.COUNT, default="0"),
        Field("output_tokens", Kind.COUNT, required=True),
        Field("reasoning_tokens", Kind.COUNT, default="0"),
        Field("requests", Kind.COUNT, default="1"),
        Field("team", Kind.TEXT),
        Field("feature", Kind.TEXT),
        Field("project", Kind.TEXT),
        Field("user", Kind.TEXT),
        Field("environment", Kind.TEXT),
        Field("api_key", Kind.TEXT),
        Field("tags", Kind.OBJECT),
        Field("trace_id", Kind.TEXT),
        Field("attempt", Kind.POSITIVE_INT),
        Field("status", Kind.STATUS),
        Field("prompt_hash", Kind.TEXT),
        Field("service_tier", Kind.ENUM, choices=SERVICE_TIERS),
        Field("latency_ms", Kind.QUANTITY),
        Field("reported_cost_usd", Kind.MONEY),
        Field("currency", Kind.TEXT),
    ),
    invariants=(
        *_TOKEN_INVARIANTS,
        Problem(
            '"ts_end" < "ts"',
            "invalid_value",
            "'ts_end (' || CAST(\"ts_end\" AS VARCHAR) || ') is before ts; expected the end after the start'",
        ),
        _CURRENCY_INVARIANT,
        *_conversion_problems('"reported_cost_usd"', "cost_usd"),
    ),
    derived=(
        ("charge_day", 'CAST("ts" AS DATE)'),
        # CASE, not COALESCE: the prefix tests run only for rows that came without a provider
        (
            "provider_inferred",
            'CASE WHEN "provider" IS NULL THEN ' + infer_provider_sql('"model"') + " IS NOT NULL ELSE false END",
        ),
        (
            "provider",
            'CASE WHEN "provider" IS NOT NULL THEN lower("provider") ELSE ' + infer_provider_sql('"model"') + " END",
        ),
        ("reported_cost_usd", _in_usd('"reported_cost_usd"')),
    ),
    internal=frozenset({"currency"}),
)

# ---------------------------------------------------------------------------------------------- GPU
# Exact GPU-time arithmetic: DuckDB divides decimals as DOUBLE, so durations go through integers.


# (end - start) x gpu_count in GPU-seconds: whole microseconds -> DECIMAL(38,6) seconds, times the
# count, rounded half up to the column's 1e-9; NULL (never an error) on overflow
_WALL_SECONDS = (
    'CAST(epoch_us(CAST("end_ts" AS TIMESTAMPTZ)) - epoch_us(CAST("start_ts" AS TIMESTAMPTZ)) AS DECIMAL(38,0)) '
    "* CAST(0.000001 AS DECIMAL(7,6))"
)
_GPU_SECONDS_FROM_END = f'TRY(CAST({_WALL_SECONDS} * "gpu_count" AS DECIMAL(38,9)))'


def _nanos(col: str) -> str:
    return f"CAST(CAST({_c(col)} AS DECIMAL(38,9)) * 1000000000 AS HUGEINT)"


# start + gpu_seconds / gpu_count, rounded half up to the microsecond; NULL on overflow or a zero count
_WALL_MICROS_FROM_GPU_SECONDS = (
    f"({_nanos('gpu_seconds')} * 2000000 + {_nanos('gpu_count')}) // (2 * {_nanos('gpu_count')})"
)
_END_FROM_GPU_SECONDS = (
    f'TRY(CAST("start_ts" AS TIMESTAMPTZ) + to_microseconds(CAST({_WALL_MICROS_FROM_GPU_SECONDS} AS BIGINT)))'
)
_JOB_ONLY = ("team", "feature", "project", "user", "status", "gpu_seconds", "reported_cost_usd", "tags")

GPU_JOBS = Target(
    table="gpu_jobs",
    key_column="job_id",
    fields=(
        # required, but checked by the invariants below so a stray capacity record gets its own reason
        Field("job_id", Kind.TEXT),
        Field("start_ts", Kind.TIMESTAMP, required=True),
        Field("end_ts", Kind.TIMESTAMP),
        Field("gpu_seconds", Kind.QUANTITY, maximum=COUNT_LIMIT),
        Field("gpu_type", Kind.TEXT, required=True),
        Field("gpu_count", Kind.POSITIVE_QUANTITY, default="CAST(1 AS DECIMAL(38,9))", maximum=COUNT_LIMIT),
        Field("team", Kind.TEXT),
        Field("feature", Kind.TEXT),
        Field("project", Kind.TEXT),
        Field("user", Kind.TEXT),
        Field("cluster", Kind.TEXT),
        Field("status", Kind.TEXT),
        Field("tags", Kind.OBJECT),
        Field("reported_cost_usd", Kind.MONEY),
        Field("currency", Kind.TEXT),
    ),
    invariants=(
        Problem(
            '"job_id" IS NULL AND ' + " AND ".join(f"{_c(c)} IS NULL" for c in _JOB_ONLY),
            "wrong_record_kind",
            "'the record has no job_id and no job fields, so it looks like a capacity record, but this file holds "
            "GPU jobs (its first records carry job_id); expected one kind per file: put capacity records in a file "
            "of their own'",
        ),
        Problem(
            '"job_id" IS NULL',
            "missing_field",
            "'job_id is missing; expected a string (every record of a GPU jobs file needs one: it is the dedup key)'",
        ),
        Problem(
            '"end_ts" IS NULL AND "gpu_seconds" IS NULL',
            "missing_field",
            "'end and gpu_seconds are both missing; expected one of them'",
        ),
        Problem(
            '"end_ts" < "start_ts"',
            "invalid_value",
            "'end (' || CAST(\"end_ts\" AS VARCHAR) || ') is before start (' || CAST(\"start_ts\" AS VARCHAR) "
            "|| '); expected the end after the start'",
        ),
        # only end given: the GPU time it implies is held to the bound a given gpu_seconds is (NULL: beyond
        # what DECIMAL(38,9) holds), so that no product of the pricing over it can overflow
        Problem(
            f'"end_ts" IS NOT NULL AND "gpu_seconds" IS NULL '
            f"AND NOT COALESCE({_GPU_SECONDS_FROM_END} <= {COUNT_LIMIT}, false)",
            "invalid_value",
            f"'(end - start) x gpu_count is ' || {_plain(_WALL_SECONDS)} || ' s x ' || {_plain(_c('gpu_count'))} "
            f"|| ' = ' || COALESCE({_plain(_GPU_SECONDS_FROM_END)}, 'more than DECIMAL(38,9) holds') "
            f"|| ' GPU-seconds; expected at most {COUNT_LIMIT_TEXT} GPU-seconds per job'",
        ),
        # both given: they must tell the same GPU time, give or take one wall second (at least one
        # GPU-second) of rounding, e.g. whole-second timestamps next to a finer gpu_seconds; beyond
        # that one of them is wrong, and trusting either would misprice the job
        Problem(
            f'"end_ts" IS NOT NULL AND "gpu_seconds" IS NOT NULL '
            f'AND NOT COALESCE(abs("gpu_seconds" - {_GPU_SECONDS_FROM_END}) <= greatest("gpu_count", 1), false)',
            "inconsistent_gpu_time",
            f"'gpu_seconds (' || {_plain(_c('gpu_seconds'))} || ') does not match (end - start) x gpu_count = ' "
            f"|| COALESCE({_plain(_GPU_SECONDS_FROM_END)}, 'more than DECIMAL(38,9) holds') || ' (' "
            f"|| {_plain(_WALL_SECONDS)} || ' s x ' "
            f"|| {_plain(_c('gpu_count'))} || '); expected gpu_seconds = wall seconds x gpu_count, within one "
            "wall second (and at least one GPU-second). Give one of end and gpu_seconds, or make them agree'",
        ),
        Problem(
            f'"end_ts" IS NULL AND "gpu_seconds" IS NOT NULL AND ({_END_FROM_GPU_SECONDS} IS NULL '
            f"OR {_END_FROM_GPU_SECONDS} > $now + to_seconds($max_future_s))",
            "future_timestamp",
            f"'gpu_seconds (' || {_plain(_c('gpu_seconds'))} || ') at gpu_count ' || {_plain(_c('gpu_count'))} "
            f"|| ' puts the end at ' || COALESCE(CAST({_END_FROM_GPU_SECONDS} AS VARCHAR), 'no representable time') "
            "|| '; expected GPU time (wall seconds x gpu_count) ending no later than the ingest time plus "
            "FINOPS_MAX_FUTURE_S (milliseconds given as seconds?)'",
        ),
        _CURRENCY_INVARIANT,
        *_conversion_problems('"reported_cost_usd"', "cost_usd"),
    ),
    derived=(
        # gpu_seconds is GPU time (wall seconds x GPUs); given alone, it fixes the end
        ("gpu_seconds", f'COALESCE("gpu_seconds", {_GPU_SECONDS_FROM_END})'),
        ("end_ts", f'COALESCE("end_ts", {_END_FROM_GPU_SECONDS})'),
        # a job is stored whole, on the UTC day it started; pricing splits it across days
        ("charge_day", 'CAST("start_ts" AS DATE)'),
        ("reported_cost_usd", _in_usd('"reported_cost_usd"')),
    ),
    internal=frozenset({"currency"}),
)

GPU_CAPACITY = Target(
    table="gpu_capacity",
    key_column="capacity_id",
    fields=(
        # the record's own id, else cluster/gpu_type/start (derived below)
        Field("capacity_id", Kind.TEXT),
        Field("cluster", Kind.TEXT, required=True),
        Field("gpu_type", Kind.TEXT, required=True),
        Field("gpu_count", Kind.POSITIVE_QUANTITY, required=True, maximum=COUNT_LIMIT),
        Field("start_ts", Kind.TIMESTAMP, required=True),
        Field("end_ts", Kind.TIMESTAMP, required=True),
        Field("hourly_rate", Kind.MONEY),
        # the rate as written (the adapter maps `hourly_rate` to both): only to refuse more decimals than
        # hourly_rate is stored with, which its typed value has already rounded away
        Field("hourly_rate_text", Kind.TEXT),
        Field("currency", Kind.TEXT),
        Field("job_id", Kind.TEXT),  # only to tell a stray job record apart
    ),
    invariants=(
        Problem(
            '"job_id" IS NOT NULL',
            "wrong_record_kind",
            "'the record has job_id ''' || \"job_id\" || ''', so it is a GPU job, but this file holds capacity records "
            "(its first records have no job_id); expected one kind per file: put jobs in a file of their own'",
        ),
        Problem(
            '"end_ts" <= "start_ts"',
            "invalid_value",
            "'end (' || CAST(\"end_ts\" AS VARCHAR) || ') is not after start; expected the end after the start'",
        ),
        _CURRENCY_INVARIANT,
        *_conversion_problems('"hourly_rate"', "hourly_rate"),
        Problem(
            f"{_HOURLY} IS NOT NULL AND abs({_in_usd(_HOURLY)}) >= {PRICE_LIMIT}",
            "invalid_number",
            f"'hourly_rate ' || {_plain(_HOURLY)} || ' is not below {PRICE_LIMIT:,} USD per GPU-hour; expected a "
            "rate below it (as in the price overrides file)'",
        ),
        # below PRICE_LIMIT (checked above), DECIMAL(38,24) holds the rate as written to 24 places
        Problem(
            f'{_HOURLY} IS NOT NULL AND TRY_CAST("hourly_rate_text" AS DECIMAL(38,24)) '
            f"IS DISTINCT FROM CAST({_HOURLY} AS DECIMAL(38,24))",
            "invalid_number",
            """'hourly_rate is ''' || "hourly_rate_text" || '''; expected at most 12 decimal places (the """
            """precision it is stored with, as in the price overrides file)'""",
        ),
    ),
    derived=(
        (
            "capacity_id",
            'COALESCE("capacity_id", "cluster" || \'/\' || "gpu_type" || \'/\' '
            "|| replace(CAST(timezone('UTC', CAST(\"start_ts\" AS TIMESTAMPTZ)) AS VARCHAR), ' ', 'T') || 'Z')",
        ),
        ("hourly_rate", _in_usd('"hourly_rate"')),
    ),
    internal=frozenset({"currency", "job_id", "hourly_rate_text"}),
)

# the amount in dollars (Anthropic's are in cents), then in USD; NULL on overflow, never an error
_AMOUNT_USD = _in_usd('TRY(CAST("amount" * "amount_scale" AS DECIMAL(38,12)))')

COSTS = Target(
    table="provider_costs",
    key_column="record_key",
    fields=(
        Field("record_key", Kind.TEXT, required=True),
        Field("provider", Kind.TEXT, required=True),
        Field("bucket_start", Kind.TIMESTAMP, required=True),
        Field("bucket_end", Kind.TIMESTAMP),
        Field("project_id", Kind.TEXT),
        Field("api_key_id", Kind.TEXT),
        Field("workspace_id", Kind.TEXT),
        Field("line_item", Kind.TEXT),
        Field("model", Kind.TEXT),
        Field("cost_type", Kind.TEXT),
        Field("token_type", Kind.TEXT),
        Field("service_tier", Kind.TEXT),
        Field("context_window", Kind.TEXT),
        Field("description", Kind.TEXT),
        Field("amount", Kind.MONEY, required=True, allow_negative=True),
        Field("amount_scale", Kind.QUANTITY, default="CAST(1 AS DECIMAL(38,9))"),
        Field("currency", Kind.TEXT),
        Field("quantity", Kind.QUANTITY),
        Field("quantity_unit", Kind.TEXT),
    ),
    invariants=(_CURRENCY_INVARIANT, *_conversion_problems('"amount"', "amount", _AMOUNT_USD)),
    derived=(
        ("charge_day", 'CAST("bucket_start" AS DATE)'),
        ("amount_usd", _AMOUNT_USD),
        ("currency", "COALESCE(upper(\"currency\"), 'USD')"),
    ),
    internal=frozenset({"amount", "amount_scale"}),
)

TARGETS = {t.table: t for t in (USAGE, GPU_JOBS, GPU_CAPACITY, COSTS)}
