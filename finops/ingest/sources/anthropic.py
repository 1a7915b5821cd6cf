"""`anthropic-usage` and `anthropic-costs`: pages of Anthropic's Admin usage and cost reports.

Both endpoints return the same page shape (platform.claude.com/docs/en/api/admin):

    {"data": [{"starting_at": RFC 3339, "ending_at": RFC 3339, "results": [{...}, ...]}, ...],
     "has_more": bool, "next_page": str | null}

A file holds one page, a JSON array of pages, or JSONL with one page per line. `_flatten` turns
every result into one record, with its bucket's `starting_at` / `ending_at` merged in; a document
that is not a page, or a bucket that is not a bucket, becomes one record rejected with a sentence
saying what was expected. Record paths read `data[1].results[4]`, prefixed with `[2].` for the
third page of a JSON array; in a JSONL file every record carries the line of its page.

GET /v1/organizations/usage_report/messages -> `usage_events` (anthropic-usage), canonical <- result:

    request_id             natural key: the bucket's `starting_at/ending_at` and every string field
                           of the result (the grouping dimensions), see `_natural_key`
    ts, ts_end             the bucket's `starting_at`, `ending_at`
    provider               'anthropic'
    model                  model (optional: NULL when the report is not grouped by model)
    input_tokens           uncached_input_tokens + cache_read_input_tokens
                           + cache_creation.ephemeral_5m_input_tokens + cache_creation.ephemeral_1h_input_tokens
    cached_input_tokens    cache_read_input_tokens
    cache_write_tokens     cache_creation.ephemeral_5m_input_tokens + cache_creation.ephemeral_1h_input_tokens
    cache_write_1h_tokens  cache_creation.ephemeral_1h_input_tokens
    output_tokens          output_tokens
    requests               0: the report has no request count (see below)
    service_tier           standard -> default, batch -> batch, priority and priority_on_demand -> priority,
                           flex and flex_discount -> flex; any other value is rejected (invalid_value)
    api_key                api_key_id (NULL for Console usage)
    project                workspace_id (NULL for the default workspace)
    user                   account_id
    extra                  context_window, server_tool_use (web_search_requests), the raw service_tier,
                           inference_geo, speed, service_account_id, and every field not named here

Anthropic's cache buckets are *additive* (the input is uncached + cache reads + cache writes); the
canonical ones are *inclusive*. The four additive parts are first checked one by one, each as a
count and under its own input name, by check-only fields placed before `input_tokens` (internal
fields of the target this adapter loads with: checked, never stored). A negative, fractional or
non-numeric part therefore rejects the row with e.g. `cache_creation.ephemeral_1h_input_tokens is
-5; expected a non-negative integer` (reason `negative_value`), before any sum is looked at; the
inclusive sums are then plain SQL additions in the mapping and still pass the canonical checks
(`cached_input_tokens + cache_write_tokens <= input_tokens`, `cache_write_1h <= cache_write`).
Checking only the sums would name `input_tokens` instead of the field to fix, and a negative part
can hide in a positive sum (-3000 uncached + 5000 cache reads).

`requests` is 0, not 1: the column is NOT NULL, and a usage row of a report stands for an unknown
number of requests (its grain is whatever the report was grouped by), so 1 would invent requests
and 0 adds none to any total. Per-request figures must not divide by it for this source.

GET /v1/organizations/cost_report -> `provider_costs` (anthropic-costs)

`amount` is a decimal string in cents ("123.78912" is $1.2378912): it is read as text into an exact
DECIMAL and scaled by the exact literal 0.01 (`amount_scale`), so `amount_usd` never passes through a
binary float. `record_key` is the same natural key as above, without `amount` and `currency`.
`workspace_id`, `description`, `cost_type`, `token_type`, `model`, `context_window` keep their names;
`service_tier` is mapped as for usage (unknown tiers are kept as given, lowercased) and the raw
value stays in `extra` with `inference_geo`, `speed` and unknown fields.

Re-ingesting the same page is a duplicate; a later pull of the same bucket and grouping with new
numbers is a restatement. Pulls of one period with different `group_by[]` or `bucket_width` give
different keys and must not both be loaded: their rows overlap.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

from finops.ingest.adapter import Adapter
from finops.ingest.fields import Field, Kind, sql_str
from finops.ingest.files import Format, InputFile
from finops.ingest.sources._sniff import first_records
from finops.ingest.targets import COSTS, USAGE, Target

__all__ = ["ANTHROPIC_COSTS", "ANTHROPIC_USAGE"]

_FORMATS = frozenset({Format.JSON, Format.JSONL})
_USAGE_ENDPOINT = "GET /v1/organizations/usage_report/messages"
_COST_ENDPOINT = "GET /v1/organizations/cost_report"

# Anthropic service tier -> canonical tier (usage report values; the cost report has standard/batch)
_TIERS = {
    "standard": "default",
    "batch": "batch",
    "priority": "priority",
    "priority_on_demand": "priority",
    "flex": "flex",
    "flex_discount": "flex",
}

# ------------------------------------------------------------------------------------------- flatten


def _flatten(expected_page: str, record_check: str) -> str:
    """SQL from `_docs(_doc_no, _doc)` to records `(_d, _i, _path, _json, _bad)`, one per bucket result.

    `record_check` is a SQL expression over one result `_res` (JSON) giving a sentence when the result
    is clearly not a row of this report, else NULL.
    """
    page_bad = "'the document is not a report page: ' || left(CAST(json(_page) AS VARCHAR), 60) || " + sql_str(
        f"; expected {expected_page}"
    )
    bucket_bad = (
        "'data[' || _b || '] is not a time bucket: ' || left(CAST(json(_bucket) AS VARCHAR), 60) || "
        "'; expected an object with starting_at, ending_at and a results array'"
    )
    return f"""
    WITH _pages AS (
        SELECT _doc_no, CAST(NULL AS BIGINT) AS _p, _doc AS _page FROM _docs WHERE json_type(_doc) <> 'ARRAY'
        UNION ALL
        SELECT _doc_no, _p, _page FROM (
            SELECT _doc_no, unnest(_items) AS _page, CAST(generate_subscripts(_items, 1) - 1 AS BIGINT) AS _p
            FROM (SELECT _doc_no, from_json(_doc, '["JSON"]') AS _items FROM _docs WHERE json_type(_doc) = 'ARRAY'))
    ),
    _pg AS (
        SELECT _doc_no, _p, _page,
            CASE WHEN _p IS NULL THEN '' ELSE '[' || _p || '].' END AS _pre,
            COALESCE(json_type(_page) = 'OBJECT' AND json_type(_page -> 'data') = 'ARRAY', false) AS _ok
        FROM _pages
    ),
    _buckets AS (
        SELECT *, COALESCE(json_type(_bucket) = 'OBJECT' AND json_type(_bucket -> 'results') = 'ARRAY', false) AS _ok
        FROM (SELECT _doc_no, _p, _pre, unnest(_data) AS _bucket,
                  CAST(generate_subscripts(_data, 1) - 1 AS BIGINT) AS _b
              FROM (SELECT _doc_no, _p, _pre, from_json(_page -> 'data', '["JSON"]') AS _data FROM _pg WHERE _ok))
    ),
    _results AS (
        SELECT _doc_no, _p, _pre, _b, _bucket, unnest(_list) AS _res,
            CAST(generate_subscripts(_list, 1) - 1 AS BIGINT) AS _r
        FROM (SELECT *, from_json(_bucket -> 'results', '["JSON"]') AS _list FROM _buckets WHERE _ok)
    )
    SELECT _doc_no AS _d, COALESCE(_p, 0) * 1000000000000 AS _i, NULLIF(rtrim(_pre, '.'), '') AS _path,
        _page AS _json, {page_bad} AS _bad
    FROM _pg WHERE NOT _ok
    UNION ALL
    SELECT _doc_no, COALESCE(_p, 0) * 1000000000000 + _b * 1000000, _pre || 'data[' || _b || ']',
        _bucket, {bucket_bad}
    FROM _buckets WHERE NOT _ok
    UNION ALL
    SELECT _doc_no, COALESCE(_p, 0) * 1000000000000 + _b * 1000000 + _r,
        _pre || 'data[' || _b || '].results[' || _r || ']',
        CASE WHEN json_type(_res) = 'OBJECT'
             THEN json_merge_patch(_res, json_object('starting_at', _bucket -> 'starting_at',
                                                     'ending_at', _bucket -> 'ending_at'))
             ELSE _res END,
        CASE WHEN json_type(_res) = 'OBJECT' THEN {record_check} END
    FROM _results"""


def _has(key: str) -> str:
    return f"list_contains(json_keys(_res), {sql_str(key)})"


_USAGE_RECORD_CHECK = f"""CASE
    WHEN {_has("amount")} AND NOT {_has("uncached_input_tokens")}
        THEN 'the result is a cost report row (it has amount); expected a messages usage report row from '
             || {sql_str(_USAGE_ENDPOINT)} || '. Ingest cost reports with --source anthropic-costs'
    WHEN json_type(_res -> 'cache_creation') NOT IN ('OBJECT', 'NULL')
        THEN 'cache_creation is ' || left(CAST(json(_res -> 'cache_creation') AS VARCHAR), 60)
             || '; expected an object with ephemeral_5m_input_tokens and ephemeral_1h_input_tokens'
    END"""

_COST_RECORD_CHECK = f"""CASE
    WHEN {_has("uncached_input_tokens")} AND NOT {_has("amount")}
        THEN 'the result is a messages usage report row (it has uncached_input_tokens); expected a cost report '
             || 'row from ' || {sql_str(_COST_ENDPOINT)} || '. Ingest usage reports with --source anthropic-usage'
    END"""

_PAGE = '{{"data": [{{"starting_at", "ending_at", "results": [...]}}], "has_more", "next_page"}} from {}'

# -------------------------------------------------------------------------------------------- mapping


def _natural_key(exclude: tuple[str, ...]) -> str:
    """SQL for a deterministic key: `starting_at/ending_at {dims}`.

    The dims are every string-valued field of the result except `exclude`, as a JSON object sorted by
    name: the grouping dimensions the report was pulled with (model, workspace_id, api_key_id,
    service_tier, context_window, description, token_type, ... and any the API adds later). Null
    fields mean "not grouped by" and are left out. The times are the API's text, never re-formatted.
    """
    skip = ", ".join(sql_str(k) for k in ("starting_at", "ending_at", *exclude))
    dims = (
        "CAST(to_json(map_from_entries(list_transform(list_sort(list_filter(json_keys(_json), "
        f"lambda k: json_type(_json -> k) = 'VARCHAR' AND k NOT IN ({skip}))), "
        "lambda k: {'key': k, 'value': _json ->> k}))) AS VARCHAR)"
    )
    span = "COALESCE(_json ->> 'starting_at', '') || '/' || COALESCE(_json ->> 'ending_at', '')"
    return f"CASE WHEN json_type(_json) = 'OBJECT' THEN {span} || ' ' || {dims} END"


def _tier(*, strict: bool) -> str:
    """The canonical tier of the raw `service_tier`, read from the record so the raw value stays in `extra`.

    Unknown values are passed on as given: the usage target's enum check then rejects them (strict),
    the cost table keeps them lowercased.
    """
    raw = "(_json ->> 'service_tier')"
    whens = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _TIERS.items())
    other = raw if strict else f"lower(trim({raw}))"
    return f"CASE lower(trim({raw})) {whens} ELSE {other} END"


_CACHE_5M = "json_extract(\"cache_creation\", '$.ephemeral_5m_input_tokens')"
_CACHE_1H = "json_extract(\"cache_creation\", '$.ephemeral_1h_input_tokens')"


def _count(expr: str) -> str:
    """An additive part as BIGINT, 0 when absent; read as the count fields read it (via DOUBLE)."""
    return f"COALESCE(TRY_CAST(TRY_CAST(CAST({expr} AS VARCHAR) AS DOUBLE) AS BIGINT), 0)"


# check-only fields: every additive part is checked under its own input name before any sum
_PARTS: dict[str, str] = {
    "part_uncached_input_tokens": '"uncached_input_tokens"',
    "part_cache_read_input_tokens": '"cache_read_input_tokens"',
    "part_cache_write_5m_tokens": _CACHE_5M,
    "part_cache_write_1h_tokens": _CACHE_1H,
}


def _usage_target() -> Target:
    """USAGE with the four part checks placed before `input_tokens`; they are internal (never stored)."""
    parts = (
        Field("part_uncached_input_tokens", Kind.COUNT, required=True),
        Field("part_cache_read_input_tokens", Kind.COUNT, default="0"),
        Field("part_cache_write_5m_tokens", Kind.COUNT, default="0"),
        Field("part_cache_write_1h_tokens", Kind.COUNT, default="0"),
    )
    at = USAGE.field_names.index("input_tokens")
    return dataclasses.replace(
        USAGE,
        fields=(*USAGE.fields[:at], *parts, *USAGE.fields[at:]),
        internal=USAGE.internal | frozenset(_PARTS),
    )


_USAGE_CHECKED = _usage_target()


def _usage_mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    uncached, read = _count('"uncached_input_tokens"'), _count('"cache_read_input_tokens"')
    write_5m, write_1h = _count(_CACHE_5M), _count(_CACHE_1H)
    return {
        "request_id": _natural_key(()),
        "ts": '"starting_at"',
        "ts_end": '"ending_at"',
        "model": '"model"',
        "provider": "'anthropic'",
        **_PARTS,
        "input_tokens": f"{uncached} + {read} + {write_5m} + {write_1h}",
        "cached_input_tokens": '"cache_read_input_tokens"',
        "cache_write_tokens": f"{write_5m} + {write_1h}",
        "cache_write_1h_tokens": _CACHE_1H,
        "output_tokens": '"output_tokens"',
        "requests": "0",
        "service_tier": _tier(strict=True),
        "api_key": '"api_key_id"',
        "project": '"workspace_id"',
        "user": '"account_id"',
    }


def _cost_mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    return {
        "record_key": _natural_key(("amount", "currency")),
        "provider": "'anthropic'",
        "bucket_start": '"starting_at"',
        "bucket_end": '"ending_at"',
        "workspace_id": '"workspace_id"',
        "model": '"model"',
        "cost_type": '"cost_type"',
        "token_type": '"token_type"',
        "service_tier": _tier(strict=False),
        "context_window": '"context_window"',
        "description": '"description"',
        "amount": '"amount"',  # cents, as the decimal string the API sends
        "amount_scale": "0.01",  # DECIMAL(3,2): cents -> dollars, exactly
        "currency": '"currency"',
    }


# ------------------------------------------------------------------------------------------ recognise


def _results(file: InputFile) -> Iterator[dict[str, Any]]:
    """Result objects of the first pages in the head of the file (pages with `starting_at` buckets)."""
    for record in first_records(file):
        pages = record if isinstance(record, list) else [record]
        for page in pages:
            data = page.get("data") if isinstance(page, dict) else None
            for bucket in data if isinstance(data, list) else []:
                if isinstance(bucket, dict) and "starting_at" in bucket and isinstance(bucket.get("results"), list):
                    yield from (r for r in bucket["results"] if isinstance(r, dict))


def _is_usage_row(result: dict[str, Any]) -> bool:
    return "uncached_input_tokens" in result or "cache_creation" in result


def _is_cost_row(result: dict[str, Any]) -> bool:
    return isinstance(result.get("amount"), (str, int, float)) and not _is_usage_row(result)


def _head_has(file: InputFile, *patterns: str) -> bool:
    """For a head too long to parse (one big pretty-printed page): do its keys look like the report's?"""
    text = file.head_text()
    return all(re.search(p, text) for p in patterns)


def _recognise_usage(file: InputFile) -> bool:
    if file.format not in _FORMATS:
        return False
    results = list(_results(file))
    if results:
        return any(_is_usage_row(r) for r in results)
    return not _parses(file) and _head_has(file, r'"starting_at"\s*:', r'"uncached_input_tokens"\s*:')


def _recognise_costs(file: InputFile) -> bool:
    if file.format not in _FORMATS:
        return False
    results = list(_results(file))
    if results:
        return any(_is_cost_row(r) for r in results) and not any(_is_usage_row(r) for r in results)
    return (
        not _parses(file)
        and _head_has(file, r'"starting_at"\s*:', r'"amount"\s*:\s*"', r'"currency"\s*:')
        and not _head_has(file, r'"uncached_input_tokens"\s*:')
    )


def _parses(file: InputFile) -> bool:
    """Whether the head held complete JSON (then the parsed records are the whole story)."""
    if file.format is Format.JSONL:
        return bool(first_records(file))
    try:
        json.loads(file.head_text())
    except (ValueError, RecursionError):
        return False
    return True


# ------------------------------------------------------------------------------------------- adapters

ANTHROPIC_USAGE = Adapter(
    name="anthropic-usage",
    description=f"Anthropic Admin messages usage report pages ({_USAGE_ENDPOINT}); JSON or JSONL",
    formats=_FORMATS,
    target=USAGE,
    # service_tier, context_window, server_tool_use, inference_geo, speed, service_account_id are left
    # out on purpose: read from the record where needed, and kept whole in `extra`
    input_fields={
        "starting_at": "JSON",
        "ending_at": "JSON",
        "model": "VARCHAR",
        "api_key_id": "VARCHAR",
        "workspace_id": "VARCHAR",
        "account_id": "VARCHAR",
        "uncached_input_tokens": "JSON",
        "cache_read_input_tokens": "JSON",
        "cache_creation": "JSON",
        "output_tokens": "JSON",
    },
    mapping=_usage_mapping,
    optional=frozenset({"model"}),
    flatten=_flatten(_PAGE.format(_USAGE_ENDPOINT), _USAGE_RECORD_CHECK),
    recognise=_recognise_usage,
    choose_target=lambda file: _USAGE_CHECKED,
    labels={
        "input_tokens": "uncached_input_tokens + cache_read_input_tokens + cache_creation",
        "cache_write_tokens": "cache_creation",
        "service_tier": "service_tier",
    },
)

ANTHROPIC_COSTS = Adapter(
    name="anthropic-costs",
    description=f"Anthropic Admin cost report pages ({_COST_ENDPOINT}), amounts in cents; JSON or JSONL",
    formats=_FORMATS,
    target=COSTS,
    # service_tier (mapped from the record), inference_geo and speed stay in `extra`
    input_fields={
        "starting_at": "JSON",
        "ending_at": "JSON",
        "workspace_id": "VARCHAR",
        "model": "VARCHAR",
        "cost_type": "VARCHAR",
        "token_type": "VARCHAR",
        "context_window": "VARCHAR",
        "description": "VARCHAR",
        "amount": "JSON",
        "currency": "VARCHAR",
    },
    mapping=_cost_mapping,
    flatten=_flatten(_PAGE.format(_COST_ENDPOINT), _COST_RECORD_CHECK),
    recognise=_recognise_costs,
)
