"""The canonical tables ingest writes, as specs: fields, invariants, derived columns, dedup key.

Each adapter maps its input onto one target's field names; the engine turns the spec into SQL that
checks every row column-wise (see `fields.py`) and loads the clean rows idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from finops.ingest.fields import Field, Kind, Problem, sql_str

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


def _in_usd(amount: str) -> str:
    """An amount converted to USD with the rate the user gave for its currency (`$fx`)."""
    rate = 'TRY_CAST(json_extract_string($fx, upper("currency")) AS DECIMAL(18,8))'
    return (
        f'CASE WHEN "currency" IS NULL OR upper("currency") = \'USD\' THEN {amount} '
        f"ELSE TRY_CAST({amount} * {rate} AS DECIMAL(38,12)) END"
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
    ),
    derived=(
        ("charge_day", 'CAST("ts" AS DATE)'),
        ("provider_inferred", '"provider" IS NULL AND ' + infer_provider_sql('"model"') + " IS NOT NULL"),
        ("provider", 'COALESCE(lower("provider"), ' + infer_provider_sql('"model"') + ")"),
        ("reported_cost_usd", _in_usd('"reported_cost_usd"')),
    ),
    internal=frozenset({"currency"}),
)

GPU_JOBS = Target(
    table="gpu_jobs",
    key_column="job_id",
    fields=(
        Field("job_id", Kind.TEXT, required=True),
        Field("start_ts", Kind.TIMESTAMP, required=True),
        Field("end_ts", Kind.TIMESTAMP),
        Field("gpu_seconds", Kind.QUANTITY),
        Field("gpu_type", Kind.TEXT, required=True),
        Field("gpu_count", Kind.POSITIVE_QUANTITY, default="CAST(1 AS DECIMAL(38,9))"),
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
        _CURRENCY_INVARIANT,
    ),
    derived=(
        # gpu_seconds is GPU time (wall seconds x GPUs); given alone, it fixes the end
        (
            "gpu_seconds",
            'COALESCE("gpu_seconds", TRY_CAST(TRY_CAST(epoch("end_ts" - "start_ts") AS DECIMAL(38,9)) '
            '* "gpu_count" AS DECIMAL(38,9)))',
        ),
        (
            "end_ts",
            'COALESCE("end_ts", "start_ts" + to_microseconds(TRY_CAST("gpu_seconds" / "gpu_count" '
            "* 1000000 AS BIGINT)))",
        ),
        ("charge_day", 'CAST("start_ts" AS DATE)'),
        ("reported_cost_usd", _in_usd('"reported_cost_usd"')),
    ),
    internal=frozenset({"currency"}),
)

GPU_CAPACITY = Target(
    table="gpu_capacity",
    key_column="capacity_id",
    fields=(
        Field("capacity_id", Kind.TEXT, required=True),
        Field("cluster", Kind.TEXT, required=True),
        Field("gpu_type", Kind.TEXT, required=True),
        Field("gpu_count", Kind.POSITIVE_QUANTITY, required=True),
        Field("start_ts", Kind.TIMESTAMP, required=True),
        Field("end_ts", Kind.TIMESTAMP, required=True),
        Field("hourly_rate", Kind.MONEY),
        Field("currency", Kind.TEXT),
    ),
    invariants=(
        Problem(
            '"end_ts" <= "start_ts"',
            "invalid_value",
            "'end (' || CAST(\"end_ts\" AS VARCHAR) || ') is not after start; expected the end after the start'",
        ),
        _CURRENCY_INVARIANT,
    ),
    derived=(("hourly_rate", _in_usd('"hourly_rate"')),),
    internal=frozenset({"currency"}),
)

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
    invariants=(_CURRENCY_INVARIANT,),
    derived=(
        ("charge_day", 'CAST("bucket_start" AS DATE)'),
        ("amount_usd", _in_usd('TRY_CAST("amount" * "amount_scale" AS DECIMAL(38,12))')),
        ("currency", "COALESCE(upper(\"currency\"), 'USD')"),
    ),
    internal=frozenset({"amount", "amount_scale"}),
)

TARGETS = {t.table: t for t in (USAGE, GPU_JOBS, GPU_CAPACITY, COSTS)}
