"""`litellm`: LiteLLM proxy logs, as `StandardLoggingPayload` records or `LiteLLM_SpendLogs` exports.

LiteLLM writes the same request twice, in two shapes, and this adapter reads both (JSON object, JSON
array, JSONL, CSV, Parquet). Every canonical field is one SQL expression that takes whichever of the
shape's columns is present, so a JSON file may even mix the two shapes.

Mapping (payload: StandardLoggingPayload from the logging callbacks; export: a LiteLLM_SpendLogs row):

    request_id         payload `id` (a cache hit: `id` + `_cache_hit` + startTime); export `request_id`
    ts                 `startTime`: epoch seconds in payloads; a timestamp in exports, which is usually
                       written without an offset and then needs --timezone (LiteLLM stores UTC)
    model, provider    `model` as sent; `custom_llm_provider`, normalised (vertex_ai -> google, ...)
    input/output       `prompt_tokens` (made inclusive, below), `completion_tokens`
    cache, reasoning   the usage object: `metadata.usage_object`, `hidden_params.usage_object`,
                       `response.usage`, or an export's `metadata.additional_usage_values`
    team               `metadata.user_api_key_team_alias`, else the team id (`metadata`, `team_id`)
    api_key            `metadata.user_api_key_alias`, else the key's SHA-256 hash (`metadata`, `api_key`)
    user               `metadata.user_api_key_user_id`, else `user`, else `end_user`
    project            `metadata.user_api_key_project_alias` / `_id`, else a `project:` tag
    tags, feature,     `request_tags` (a list in payloads, JSON text in exports; below)
      environment
    trace_id           payload `trace_id`; export `session_id` (LiteLLM writes the trace id there)
    status             `status` (exports: or `metadata.status`): success -> 200; failure -> the
                       `error_information.error_code` when an HTTP code, a timeout class -> timeout,
                       else error; any other value is rejected by the status check
    latency_ms         export `request_duration_ms`; else endTime - startTime; else `response_time`
    reported_cost_usd  payload `response_cost`, export `spend`: LiteLLM's own price, never ours

Token buckets. Our `input_tokens` includes cached and cache-write tokens (DESIGN). LiteLLM's
`prompt_tokens` follows OpenAI and already includes `prompt_tokens_details.cached_tokens`; for
Anthropic-style usage (the usage carries `cache_read_input_tokens` / `cache_creation_input_tokens`)
what it includes has changed between releases: cache reads and writes (releases before April 2025,
and again by v1.80, see BerriAI/litellm#11364), cache reads only (from #9838, April 2025; #13207 shows
it on v1.74.9), or neither (Anthropic's convention, proposed for `/v1/messages` in #23342). By default
(`--litellm-prompt-tokens auto`) the expression tells them apart by the numbers: `prompt_tokens` below
the cache reads means neither is included, below reads + writes means writes are missing; the missing
part is added. The numbers cannot tell "reads only" from "both" when the uncached input is at least the
cache writes (it is then read as "both"): a user on a reads-only release declares `reads` (or `all`,
`none`), which applies to every row. Usage without Anthropic keys is taken as inclusive, so an
impossible OpenAI-style row still fails the token invariant.

Tags. `request_tags` is a list of strings: `key:value` becomes `{"key": "value"}` (split at the first
colon, both sides trimmed; `User-Agent: curl/8` gives `User-Agent`), any other tag `{"tag": "true"}`;
a repeated key keeps its last value, and an empty list gives no tags. The `feature`, `project` and
`environment` (or `env`) keys of `key:value` tags also fill those canonical fields.

Kept out of `extra`: prompts, responses and request bodies, LiteLLM's price-map entry and cost
breakdown, error text, guardrail payloads, IP addresses and user agents, and redundant counters.
Small descriptive fields (`call_type`, `model_group`, `model_id`, `api_base`, `stream`, ...) and
anything unknown are kept in `extra`. The key hash is kept only when it is a SHA-256 digest (as LiteLLM
stores it) and an alias only when it does not look like a key (`sk-...`): never a secret.
"""

from __future__ import annotations

from finops.ingest.adapter import Adapter
from finops.ingest.fields import sql_str
from finops.ingest.files import Format, InputFile
from finops.ingest.sources._sniff import first_records, header
from finops.ingest.targets import USAGE

__all__ = ["LITELLM"]

# input keys read, and how JSON records give them (scalars as text, numbers and nested values as JSON)
_TEXT = ("id", "request_id", "trace_id", "session_id", "model", "custom_llm_provider", "end_user", "user")
_TEXT_SPEND_LOGS = ("team_id", "api_key", "status")
_JSON = (
    "startTime",
    "endTime",
    "response_time",
    "request_duration_ms",
    "prompt_tokens",
    "completion_tokens",
    "response_cost",
    "spend",
    "cache_hit",
    "request_tags",
    "metadata",
    "error_information",
    "hidden_params",
    "response",
)
_INPUT_FIELDS = {**{k: "VARCHAR" for k in (*_TEXT, *_TEXT_SPEND_LOGS)}, **{k: "JSON" for k in _JSON}}

# known keys deliberately not kept (not even in `extra`)
_IGNORED = frozenset(
    {
        "messages",  # the prompt
        "model_parameters",  # request parameters, system prompts included
        "proxy_server_request",  # the whole request body (SpendLogs)
        "model_map_information",  # LiteLLM's price-map entry: the price is ours to apply
        "cost_breakdown",
        "response_cost_failure_debug_info",
        "error_str",  # error text and tracebacks
        "guardrail_information",
        "standard_built_in_tools_params",
        "requester_ip_address",
        "user_agent",
        "cache_key",
        "total_tokens",  # prompt + completion
    }
)

_JSON_FORMATS = (Format.JSON, Format.JSONL)

# LiteLLM's `custom_llm_provider` -> our provider names (others are kept, lower-cased)
_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure",
    "azure_text": "azure",
    "azure_ai": "azure",
    "anthropic": "anthropic",
    "anthropic_text": "anthropic",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "gemini": "google",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "xai": "x-ai",
    "cohere_chat": "cohere",
}

_PAYLOAD_KEYS = frozenset({"id", "call_type", "startTime"})
_SPEND_LOG_KEYS = frozenset({"request_id", "spend", "startTime"})
_TOKEN_KEYS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


# ------------------------------------------------------------------------------------------- SQL helpers
#
# Each canonical field is one expression, so a value used twice would be computed twice: `_let` binds
# values once (a one-element list_transform), and `_first_value` / `_first_text` read many JSON paths
# with one parse per document. Lambda parameters start with `_` so they never shadow an input column.

Paths = tuple[str, tuple[str, ...]]  # (a JSON document expression, JSON paths in it)


def _let(bindings: dict[str, str], body: str, name: str = "_v") -> str:
    """`body` with `name.<key>` bound to each binding, every binding evaluated once per row."""
    struct = ", ".join(f"{sql_str(k)}: {v}" for k, v in bindings.items())
    return f"list_transform([{{{struct}}}], lambda {name}: {body})[1]"


def _path_list(paths: tuple[str, ...]) -> str:
    return "[" + ", ".join(sql_str(p) for p in paths) + "]"


def _first_value(sources: list[Paths]) -> str | None:
    """The first of these JSON values that is present and not JSON null, as JSON; NULL when none is."""
    lists = [f"json_extract({doc}, {_path_list(paths)})" for doc, paths in sources if paths]
    if not lists:
        return None
    values = lists[0] if len(lists) == 1 else f"flatten([{', '.join(lists)}])"
    return f"list_filter({values}, lambda _j: _j IS NOT NULL AND _j <> 'null')[1]"


def _first_text(sources: list[Paths]) -> str | None:
    """The first of these JSON values that is present and not blank, as trimmed text."""
    lists = [f"json_extract_string({doc}, {_path_list(paths)})" for doc, paths in sources if paths]
    if not lists:
        return None
    values = lists[0] if len(lists) == 1 else f"flatten([{', '.join(lists)}])"
    return f"list_filter(list_transform({values}, lambda _s: NULLIF(trim(_s), '')), lambda _s: _s IS NOT NULL)[1]"


def _int(expr: str) -> str:
    """A JSON or text number as BIGINT, for arithmetic only (the field checks read the original)."""
    return f"TRY_CAST(CAST({expr} AS VARCHAR) AS BIGINT)"


def _decimal(expr: str) -> str:
    return f"TRY_CAST({expr} AS DECIMAL(38,9))"


def _coalesce(*exprs: str | None) -> str | None:
    """COALESCE of the expressions that exist; None when none does."""
    present = [e for e in exprs if e is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else f"COALESCE({', '.join(present)})"


class _Input:
    """The columns one file offers, and how to read them whatever the format."""

    def __init__(self, fmt: Format, columns: frozenset[str]) -> None:
        self.fmt = fmt
        self.columns = columns

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def col(self, name: str) -> str | None:
        return f'"{name}"' if name in self.columns else None

    def text(self, name: str) -> str | None:
        """Plain text of a scalar column (a JSON string unquoted); NULL when blank."""
        if name not in self.columns:
            return None
        if self.fmt in _JSON_FORMATS and _INPUT_FIELDS[name] == "JSON":
            return f"NULLIF(trim(\"{name}\" ->> '$'), '')"
        return f"NULLIF(trim(CAST(\"{name}\" AS VARCHAR)), '')"

    def doc(self, name: str) -> str | None:
        """A nested column as JSON: JSON records give JSON; a CSV cell (JSON text) or a Parquet
        struct/map/list is converted, and a cell that is not JSON is NULL."""
        if name not in self.columns:
            return None
        if self.fmt in _JSON_FORMATS:
            return f'"{name}"'
        return f'TRY_CAST("{name}" AS JSON)'

    def under(self, name: str, prefixes: tuple[str, ...], paths: tuple[str, ...]) -> list[Paths]:
        """`paths` under each of `prefixes` of the nested column `name` (nothing when it is absent)."""
        doc = self.doc(name)
        return [(doc, tuple(f"{pre}.{p}" for pre in prefixes for p in paths))] if doc else []


# ----------------------------------------------------------------------------------------------- mapping

# where each LiteLLM version keeps the usage object (OpenAI shape plus Anthropic's cache counters)
_USAGE_AT = (
    ("metadata", ("$.usage_object", "$.additional_usage_values")),
    ("hidden_params", ("$.usage_object",)),
    ("response", ("$.usage",)),
)
_CACHE_READ = ("cache_read_input_tokens", "prompt_tokens_details.cached_tokens")
_CACHE_WRITE = ("cache_creation_input_tokens", "prompt_tokens_details.cache_creation_tokens")
_CACHE_WRITE_1H = (
    "prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
)
_REASONING = ("completion_tokens_details.reasoning_tokens",)
_ANTHROPIC_KEYS = ("cache_read_input_tokens", "cache_creation_input_tokens")


def _usage(i: _Input, paths: tuple[str, ...]) -> str | None:
    """The first of these usage-object paths present in any place the usage object is kept."""
    return _first_value([part for name, prefixes in _USAGE_AT for part in i.under(name, prefixes, paths)])


def _token_fields(i: _Input) -> dict[str, str]:
    """input/output tokens and their inclusive parts (see the module docstring for the conventions)."""
    fields: dict[str, str] = {}
    prompt = i.col("prompt_tokens")
    if i.col("completion_tokens"):
        fields["output_tokens"] = '"completion_tokens"'
    read, write = _usage(i, _CACHE_READ), _usage(i, _CACHE_WRITE)
    parts = {
        "cached_input_tokens": read,
        "cache_write_tokens": write,
        "cache_write_1h_tokens": _usage(i, _CACHE_WRITE_1H),
        "reasoning_tokens": _usage(i, _REASONING),
    }
    fields.update({k: v for k, v in parts.items() if v is not None})
    if prompt and read and write:
        bound = {
            "p": _int(prompt),
            "r": f"COALESCE({_int(read)}, 0)",
            "w": f"COALESCE({_int(write)}, 0)",
            "additive": f"{_usage(i, _ANTHROPIC_KEYS)} IS NOT NULL",
            "raw": f"CAST({prompt} AS VARCHAR)",
        }
        fields["input_tokens"] = _let(
            bound,
            "CASE WHEN NOT _v.additive OR $prompt_includes = 'all' THEN _v.raw "
            "WHEN $prompt_includes = 'none' THEN CAST(_v.p + _v.r + _v.w AS VARCHAR) "
            "WHEN $prompt_includes = 'reads' THEN CAST(_v.p + _v.w AS VARCHAR) "
            "WHEN _v.p < _v.r THEN CAST(_v.p + _v.r + _v.w AS VARCHAR) "
            "WHEN _v.p < _v.r + _v.w THEN CAST(_v.p + _v.w AS VARCHAR) ELSE _v.raw END",
        )
    elif prompt:
        fields["input_tokens"] = prompt
    return fields


def _tag_entries(tags: str) -> str:
    """The JSON array `tags` as a list of {key, value, kv} structs: `key:value`, or a plain tag -> 'true'."""
    items = f"list_filter(list_transform(from_json({tags}, '[\"VARCHAR\"]'), lambda _t: trim(_t)), lambda _t: _t <> '')"
    key = "trim(substr(_t, 1, strpos(_t, ':') - 1))"
    return (
        f"list_transform({items}, lambda _t: CASE WHEN strpos(_t, ':') > 1 AND {key} <> '' "
        f"THEN {{'key': {key}, 'value': trim(substr(_t, strpos(_t, ':') + 1)), 'kv': true}} "
        "ELSE {'key': _t, 'value': 'true', 'kv': false} END)"
    )


def _tags(i: _Input) -> str | None:
    """The tags object: a repeated key keeps its last value; an object passes as it is; a value that is
    neither (a string, a number, text that is not JSON) is passed on for the tags check to reject."""
    raw, tags = i.text("request_tags"), i.doc("request_tags")
    if raw is None or tags is None:
        return None
    last = (
        "list_filter(_w.e, lambda _e, _n: NOT list_contains("
        "list_transform(list_slice(_w.e, _n + 1, len(_w.e)), lambda _x: _x.key), _e.key))"
    )
    pairs = f"list_transform({last}, lambda _e: {{'key': _e.key, 'value': _e.value}})"
    as_object = _let(
        {"e": _tag_entries("_v.j")},
        f"CASE WHEN len(_w.e) = 0 THEN NULL ELSE to_json(map_from_entries({pairs})) END",
        "_w",
    )
    return _let(
        {"raw": raw, "j": tags},
        "CASE WHEN _v.raw IS NULL THEN NULL WHEN _v.j IS NULL THEN to_json(_v.raw) "
        f"WHEN json_type(_v.j) <> 'ARRAY' THEN _v.j ELSE {as_object} END",
    )


def _tag_value(i: _Input, *keys: str) -> str | None:
    """The value of the last `key:value` tag with one of these keys."""
    tags = i.doc("request_tags")
    if tags is None:
        return None
    wanted = ", ".join(sql_str(k) for k in keys)
    value = f"NULLIF(list_filter({_tag_entries('_v.j')}, lambda _e: _e.kv AND _e.key IN ({wanted}))[-1].value, '')"
    return _let({"j": tags}, f"CASE WHEN json_type(_v.j) = 'ARRAY' THEN {value} END")


def _metadata(i: _Input, *keys: str) -> str | None:
    """The first of these top-level `metadata` keys that has text."""
    return _first_text(i.under("metadata", ("$",), keys))


def _error(i: _Input, key: str) -> str | None:
    """A field of `error_information` (payloads) or `metadata.error_information` (exports)."""
    return _first_text(
        i.under("error_information", ("$",), (key,)) + i.under("metadata", ("$.error_information",), (key,))
    )


def _status(i: _Input) -> str | None:
    """success -> 200; failure -> the provider's HTTP code, `timeout` for a timeout class, else `error`."""
    status = _coalesce(i.text("status"), _metadata(i, "status"))
    if status is None:
        return None
    code, error_class = _error(i, "error_code"), _error(i, "error_class")
    bound = {"status": status}
    on_failure = "'error'"
    if error_class:
        bound["error_class"] = error_class
        on_failure = "CASE WHEN lower(_v.error_class) LIKE '%timeout%' THEN 'timeout' ELSE 'error' END"
    if code:
        bound["code"] = code
        on_failure = f"CASE WHEN regexp_full_match(_v.code, '[1-5][0-9][0-9]') THEN _v.code ELSE {on_failure} END"
    return _let(
        bound, f"CASE lower(_v.status) WHEN 'success' THEN '200' WHEN 'failure' THEN {on_failure} ELSE _v.status END"
    )


def _latency_ms(i: _Input) -> str | None:
    """Milliseconds, as exact decimals: the export's duration, else end - start, else `response_time`."""
    start, end, duration, response_time = (
        i.text(c) for c in ("startTime", "endTime", "request_duration_ms", "response_time")
    )
    candidates = [_decimal(duration) if duration else None]
    if start and end:
        # epoch seconds (payloads), else timestamps (exports; both in one zone, so the difference needs none)
        candidates.append(_decimal(f"({_decimal(end)} - {_decimal(start)}) * 1000"))
        candidates.append(
            _decimal(
                f"date_diff('microsecond', TRY_CAST({start} AS TIMESTAMPTZ), TRY_CAST({end} AS TIMESTAMPTZ)) / 1000"
            )
        )
    if response_time:
        candidates.append(_decimal(f"{_decimal(response_time)} * 1000"))
    return _coalesce(*candidates)


def _request_id(i: _Input) -> str | None:
    payload_id, start = i.text("id"), i.text("startTime")
    request_id = _coalesce(payload_id, i.col("request_id"))
    if request_id is None or payload_id is None or start is None or "cache_hit" not in i:
        return request_id
    # a LiteLLM cache hit logs the cached response's id again: give the served request its own key,
    # the way LiteLLM's SpendLogs does (`<id>_cache_hit<time>`), but from the record's own start time
    hit = "lower(CAST(\"cache_hit\" AS VARCHAR)) = 'true'"
    return (
        f"CASE WHEN {payload_id} IS NOT NULL AND {hit} THEN {payload_id} || '_cache_hit' || {start} "
        f"ELSE {request_id} END"
    )


def _api_key(i: _Input) -> str | None:
    """The key's alias, else its SHA-256 hash as LiteLLM stores it; never a value that looks like a key."""
    alias = _first_text(i.under("metadata", ("$",), ("user_api_key_alias",)))
    digest = _coalesce(
        _first_text(i.under("metadata", ("$",), ("user_api_key_hash", "user_api_key"))), i.text("api_key")
    )
    if alias is None and digest is None:
        return None
    bound = {"alias": alias or "CAST(NULL AS VARCHAR)", "digest": digest or "CAST(NULL AS VARCHAR)"}
    return _let(
        bound,
        "COALESCE(CASE WHEN NOT starts_with(_v.alias, 'sk-') THEN _v.alias END, "
        "CASE WHEN regexp_full_match(_v.digest, '[0-9a-f]{64}') OR _v.digest = 'litellm_proxy_master_key' "
        "THEN _v.digest END)",
    )


def _provider(i: _Input) -> str | None:
    """`custom_llm_provider` in our provider names; empty -> NULL, so the target infers it from the model."""
    provider = i.text("custom_llm_provider")
    if provider is None:
        return None
    whens = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _PROVIDERS.items())
    return f"CASE lower({provider}) {whens} ELSE {provider} END"


def _mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    i = _Input(fmt, columns)
    mapping: dict[str, str | None] = {
        "request_id": _request_id(i),
        "ts": i.col("startTime"),
        "model": i.col("model"),
        "provider": _provider(i),
        **_token_fields(i),
        "team": _coalesce(
            _metadata(i, "user_api_key_team_alias", "team_alias", "user_api_key_team_id", "team_id"),
            i.text("team_id"),
        ),
        "api_key": _api_key(i),
        "user": _coalesce(
            _metadata(i, "user_api_key_user_id"),
            i.text("user"),
            i.text("end_user"),
            _metadata(i, "user_api_key_end_user_id"),
        ),
        "project": _coalesce(
            _metadata(i, "user_api_key_project_alias", "user_api_key_project_id"), _tag_value(i, "project")
        ),
        "feature": _tag_value(i, "feature"),
        "environment": _tag_value(i, "environment", "env"),
        "tags": _tags(i),
        "trace_id": _coalesce(i.text("trace_id"), i.text("session_id")),
        "status": _status(i),
        "latency_ms": _latency_ms(i),
        "reported_cost_usd": _coalesce(i.col("response_cost"), i.col("spend")),
    }
    return {k: v for k, v in mapping.items() if v is not None}


# ------------------------------------------------------------------------------------------- recognise


def _looks_like_litellm(keys: set[str]) -> bool:
    return _SPEND_LOG_KEYS <= keys or (_PAYLOAD_KEYS <= keys and bool(keys & _TOKEN_KEYS))


def _recognise(file: InputFile) -> bool:
    if file.format in (Format.CSV, Format.PARQUET):
        return _looks_like_litellm(set(header(file)))
    records = first_records(file)
    if not records and file.format is Format.JSON:
        # a JSON array longer than the sniffed head does not parse there: look for the keys themselves
        head = file.head_text()
        return _looks_like_litellm({k for k in _PAYLOAD_KEYS | _SPEND_LOG_KEYS | _TOKEN_KEYS if f'"{k}":' in head})
    return any(isinstance(r, dict) and _looks_like_litellm(set(r)) for r in records)


LITELLM = Adapter(
    name="litellm",
    description="LiteLLM StandardLoggingPayload records (JSON, JSONL) and LiteLLM_SpendLogs exports (CSV, Parquet)",
    formats=frozenset(Format),
    target=USAGE,
    input_fields=_INPUT_FIELDS,
    mapping=_mapping,
    ignored_fields=_IGNORED,
    recognise=_recognise,
    labels={
        "request_id": "id",
        "provider": "custom_llm_provider",
        "input_tokens": "prompt_tokens",
        "cached_input_tokens": "usage cache_read_input_tokens / prompt_tokens_details.cached_tokens",
        "cache_write_tokens": "usage cache_creation_input_tokens",
        "cache_write_1h_tokens": "usage ephemeral_1h_input_tokens",
        "reasoning_tokens": "usage completion_tokens_details.reasoning_tokens",
        "team": "metadata.user_api_key_team_alias",
        "api_key": "metadata.user_api_key_alias",
        "user": "metadata.user_api_key_user_id",
        "project": "metadata.user_api_key_project_alias",
        "feature": "request_tags (feature:)",
        "environment": "request_tags (env:)",
        "tags": "request_tags",
        "trace_id": "trace_id",
        "status": "status",
        "latency_ms": "endTime - startTime",
        "reported_cost_usd": "response_cost",
    },
)
