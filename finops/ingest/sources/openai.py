"""`openai-usage` and `openai-costs`: pages of OpenAI's organization Usage and Costs APIs.

Both APIs answer with pages: `{"object": "page", "data": [bucket, ...], "has_more", "next_page"}`, each
bucket `{"start_time", "end_time", "results": [result, ...]}` in epoch seconds. A file holds one page, a
JSON array of pages, or one page per line (JSONL). `flatten` turns every result into one record, with
its bucket's `start_time`/`end_time` merged in as `bucket_start_time`/`bucket_end_time`; a document
that is not a page, or a bucket without `results`, becomes one record rejected with a reason.
The current shapes and the 2024-12 ones (fewer fields, the `orgainzation.` typo in `object`) are read alike.

openai-usage -> `usage_events`, one row per result (a bucket of many requests, never one request):

    column               from the result
    request_id           natural key, below
    ts, ts_end           bucket start_time, end_time
    model                model (NULL unless grouped by model)
    provider             'openai'
    input_tokens         input_tokens (completions, embeddings, moderations; 0 where the endpoint has none)
    cached_input_tokens  input_cached_tokens      (0 when absent; part of input_tokens)
    cache_write_tokens   input_cache_write_tokens (0 when absent; part of input_tokens)
    output_tokens        output_tokens (completions; 0 elsewhere)
    requests             num_model_requests; else num_requests (file search calls), num_sessions
                         (code interpreter sessions); 0 for vector store storage
    project, user, api_key   project_id, user_id, api_key_id
    service_tier         'batch' when batch is true; else service_tier when default / flex / priority / batch;
                         else NULL. 'scale' (Scale Tier units, bought ahead under a contract) and 'auto' (a
                         request setting, not the tier that served) have no per-token price of their own, so
                         they are not guessed onto one; the value as reported stays in `extra`
    extra                `usage_kind` (the endpoint: completions, embeddings, moderations, images,
                         audio_speeches, audio_transcriptions, vector_stores, code_interpreter_sessions,
                         file_search_calls, web_search_calls, or a new one as named) and every result key
                         without a column of its own: the cost-relevant quantities (images, size, source,
                         characters, seconds, usage_bytes, num_sessions, num_requests, context_level,
                         vector_store_id), the modality token split, batch and service_tier as reported,
                         and any field OpenAI adds later. JSON nulls are left out.

Endpoints without tokens (images, audio, vector stores, code interpreter, file and web search) load as
0-token rows so that their quantities and request counts sit beside the token buckets, one `usage_kind`
each; pricing them is the price catalog's business, from `extra`.

openai-costs -> `provider_costs`, one row per result: bucket_start/bucket_end, amount.value (dollars as a
JSON number, read from its text into a DECIMAL, never through a float; credits may be negative),
amount.currency, line_item, project_id, api_key_id, quantity, quantity_unit; provider 'openai'.
DuckDB's JSON functions print a number as the shortest text of its nearest double, so an amount keeps its
digits when it was written from a double (as the API's are: 0.06, 0.30000000000000004); a longer text
(more than about 16 significant digits) would be rounded to the double's digits first.

Natural keys (`request_id`, `record_key`): the endpoint, the bucket, and every grouping dimension the
result carries, written like the query that fetched it, with values URL-encoded and NULL ones left out:

    completions?start_time=1730419200&end_time=1730505600&project_id=proj_a&model=gpt-4o&batch=false
    costs?start_time=1730419200&end_time=1730505600&project_id=proj_a&line_item=gpt-4o%2C%20input

The same bucket pulled twice is a duplicate; pulled again with new numbers, a restatement. The key names
a bucket *under one grouping*: pulls of one period with different `group_by` overlap and are not
deduplicated against each other, so pull each endpoint with one grouping.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from finops.ingest.adapter import Adapter
from finops.ingest.fields import sql_str
from finops.ingest.files import Format, InputFile
from finops.ingest.sources._sniff import first_records
from finops.ingest.targets import COSTS, USAGE

__all__ = ["OPENAI_COSTS", "OPENAI_USAGE"]

# `orgainzation.` is a real typo of the 2024-12 API shape
_ORG = "(?:organization|orgainzation)"
_USAGE_OBJECT = rf"^{_ORG}\.usage\.([a-z0-9_]+)\.result$"
_COSTS_OBJECT = rf"^{_ORG}\.costs\.result$"

# result `object` names that differ from their endpoint's path
_KIND_RENAMES = {"file_searches": "file_search_calls", "web_searches": "web_search_calls"}
_TOKEN_KINDS = ("completions", "embeddings", "moderations")  # input_tokens is required there
_CANONICAL_TIERS = ("default", "flex", "priority", "batch")

# grouping dimensions, in key order (group_by values of the endpoints; see usage_costs_endpoints_and_schemas)
_USAGE_DIMENSIONS = (
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
    "size",
    "source",
    "vector_store_id",
    "context_level",
)
_COSTS_DIMENSIONS = ("project_id", "line_item", "api_key_id")


# ------------------------------------------------------------------------------------------ flatten


def _flatten(expected: str, object_check: str, added: str) -> str:
    """SQL from `_docs(_doc_no, _doc)` to one record per result: `_d, _i, _path, _json, _bad`.

    `expected` names the page in messages; `object_check` is SQL over the result `_res` giving a reason
    it is not this source's result (or NULL); `added` is extra `json_object` arguments merged into it.
    """
    not_page = sql_str(f"; expected {expected}: a JSON object with a data array of buckets")
    not_bucket = sql_str("; expected a bucket: an object with start_time, end_time and a results array")
    return f"""
    WITH _pages AS (
        SELECT _doc_no, CAST(NULL AS BIGINT) AS _pi, _doc AS _page FROM _docs
        WHERE json_type(_doc) IS DISTINCT FROM 'ARRAY'
        UNION ALL
        SELECT _doc_no, generate_subscripts(_items, 1) - 1 AS _pi, unnest(_items) AS _page
        FROM (SELECT _doc_no, from_json(_doc, '["JSON"]') AS _items FROM _docs WHERE json_type(_doc) = 'ARRAY')
    ),
    _buckets AS (
        SELECT _doc_no, _pi, COALESCE('[' || _pi || '].', '') AS _pp,
            generate_subscripts(_data, 1) - 1 AS _bi, unnest(_data) AS _bucket
        FROM (SELECT *, from_json(_page -> 'data', '["JSON"]') AS _data FROM _pages
              WHERE json_type(_page -> 'data') = 'ARRAY')
    ),
    _results AS (
        SELECT _doc_no, _pi, _pp, _bi, _bucket, generate_subscripts(_rs, 1) - 1 AS _ri, unnest(_rs) AS _res
        FROM (SELECT *, from_json(_bucket -> 'results', '["JSON"]') AS _rs FROM _buckets
              WHERE json_type(_bucket -> 'results') = 'ARRAY')
    )
    SELECT _doc_no AS _d, [COALESCE(_pi, 0), _bi, _ri] AS _i,
        _pp || 'data[' || _bi || '].results[' || _ri || ']' AS _path,
        CASE WHEN json_type(_res) = 'OBJECT' THEN json_merge_patch(_res, json_object(
            'bucket_start_time', _bucket -> 'start_time', 'bucket_end_time', _bucket -> 'end_time'{added}))
            ELSE _res END AS _json,
        CASE WHEN json_type(_res) = 'OBJECT' THEN {object_check} END AS _bad
    FROM _results
    UNION ALL
    SELECT _doc_no, [COALESCE(_pi, 0), -1, -1], CASE WHEN _pi IS NOT NULL THEN '[' || _pi || ']' END, _page,
        'the document is ' || {_shown("_page")} || {not_page}
    FROM _pages WHERE json_type(_page -> 'data') IS DISTINCT FROM 'ARRAY'
    UNION ALL
    SELECT _doc_no, [COALESCE(_pi, 0), _bi, -1], _pp || 'data[' || _bi || ']', _bucket,
        _pp || 'data[' || _bi || '] is ' || {_shown("_bucket")} || {not_bucket}
    FROM _buckets WHERE json_type(_bucket -> 'results') IS DISTINCT FROM 'ARRAY'
    """


def _shown(expr: str, limit: int = 80) -> str:
    """SQL quoting an input value in a message: its text, cut to `limit` characters with '...'."""
    text = f"CAST({expr} AS VARCHAR)"
    return f"CASE WHEN length({text}) > {limit} THEN left({text}, {limit - 3}) || '...' ELSE {text} END"


def _object_check(own: str, expected: str, other: str, other_source: str) -> str:
    """Why a result is not this source's (NULL when it is), naming the other source for its results."""
    obj = "(_res ->> 'object')"
    hint = sql_str(f"; it is read by --source {other_source}")
    return (
        f"CASE WHEN {obj} IS NULL THEN {sql_str(f'the result has no object field; expected {expected}')} "
        f"WHEN NOT regexp_full_match({obj}, {sql_str(own)}) THEN 'the result is an ' || {_shown(obj)} || "
        f"{sql_str(f'; expected {expected}')} || CASE WHEN regexp_full_match({obj}, {sql_str(other)}) "
        f"THEN {hint} ELSE '' END END"
    )


def _usage_kind(obj: str) -> str:
    """The endpoint a usage result comes from, e.g. `file_search_calls` for `...usage.file_searches.result`."""
    name = f"NULLIF(regexp_extract({obj}, {sql_str(_USAGE_OBJECT)}, 1), '')"
    renames = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _KIND_RENAMES.items())
    return f"CASE {name} {renames} ELSE {name} END"


_USAGE_FLATTEN = _flatten(
    "an OpenAI Usage API page",
    _object_check(_USAGE_OBJECT, "organization.usage.<endpoint>.result", _COSTS_OBJECT, "openai-costs"),
    ", 'usage_kind', " + _usage_kind("(_res ->> 'object')"),
)
_COSTS_FLATTEN = _flatten(
    "an OpenAI Costs API page",
    _object_check(_COSTS_OBJECT, "organization.costs.result", _USAGE_OBJECT, "openai-usage"),
    "",
)


# ------------------------------------------------------------------------------------------ mapping


def _raw(key: str) -> str:
    """A result key as text, read from the record itself (keys kept in `extra` have no column)."""
    return f"(_json ->> {sql_str(key)})"


def _raw_json(key: str) -> str:
    """A result key as JSON (NULL for JSON null), read from the record itself."""
    return f"CASE WHEN json_type(_json -> {sql_str(key)}) <> 'NULL' THEN _json -> {sql_str(key)} END"


def _natural_key(prefix: str, dimensions: tuple[str, ...]) -> str:
    """`prefix?start_time=..&end_time=..&dim=value...`, NULL dimensions left out, values URL-encoded."""
    parts = [
        prefix,
        sql_str("?start_time="),
        _raw("bucket_start_time"),
        sql_str("&end_time="),
        _raw("bucket_end_time"),
        *(f"{sql_str('&' + d + '=')} || url_encode({_raw(d)})" for d in dimensions),
    ]
    return "concat(" + ", ".join(parts) + ")"


_ZERO = "CAST('0' AS JSON)"
_KIND = _raw("usage_kind")


def _count(column: str, required_by: tuple[str, ...]) -> str:
    """A count the endpoints in `required_by` must report (missing is a reject there); elsewhere it or 0."""
    kinds = ", ".join(sql_str(k) for k in required_by)
    return f'CASE WHEN {_KIND} IN ({kinds}) THEN "{column}" ELSE COALESCE("{column}", {_ZERO}) END'


def _usage_mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    tier = f"lower({_raw('service_tier')})"
    tiers = ", ".join(sql_str(t) for t in _CANONICAL_TIERS)
    return {
        "request_id": _natural_key(_KIND, _USAGE_DIMENSIONS),
        "ts": '"bucket_start_time"',
        "ts_end": '"bucket_end_time"',
        "model": '"model"',
        "provider": "'openai'",
        "input_tokens": _count("input_tokens", _TOKEN_KINDS),
        "cached_input_tokens": '"input_cached_tokens"',
        "cache_write_tokens": '"input_cache_write_tokens"',
        "output_tokens": _count("output_tokens", ("completions",)),
        # model requests; for tool endpoints without them, calls or sessions; vector storage has none
        "requests": f'COALESCE("num_model_requests", {_raw_json("num_requests")}, {_raw_json("num_sessions")}, '
        f"{_ZERO})",
        "project": '"project_id"',
        "user": '"user_id"',
        "api_key": '"api_key_id"',
        # batch=true wins over any tier; 'scale', 'auto' and unknown tiers -> NULL (kept in extra as reported)
        "service_tier": f"CASE WHEN {_raw('batch')} = 'true' THEN 'batch' WHEN {tier} IN ({tiers}) THEN {tier} END",
    }


def _costs_mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    return {
        "record_key": _natural_key("'costs'", _COSTS_DIMENSIONS),
        "provider": "'openai'",
        "bucket_start": '"bucket_start_time"',
        "bucket_end": '"bucket_end_time"',
        "project_id": '"project_id"',
        "api_key_id": '"api_key_id"',
        "line_item": '"line_item"',
        "amount": "json_extract(\"amount\", '$.value')",
        "currency": "json_extract_string(\"amount\", '$.currency')",
        "quantity": '"quantity"',
        "quantity_unit": '"quantity_unit"',
    }


# ------------------------------------------------------------------------------------------ recognise

_OBJECT_IN_TEXT = re.compile(r'"object"\s*:\s*"([a-z_.]+)"')


def _result_objects(file: InputFile) -> list[str]:
    """The `object` of the results at the head of the file (from its text when the head does not parse)."""
    pages = first_records(file)
    if not pages:  # e.g. one page larger than the head: look for the results' `object` in the text
        return _OBJECT_IN_TEXT.findall(file.head_text()) if '"data"' in file.head_text() else []
    found = []
    for page in pages:
        buckets = page.get("data") if isinstance(page, dict) else None
        for bucket in buckets if isinstance(buckets, list) else []:
            results = bucket.get("results") if isinstance(bucket, dict) else None
            for result in results if isinstance(results, list) else []:
                if isinstance(result, dict) and isinstance(result.get("object"), str):
                    found.append(result["object"])
    return found


def _recognises(pattern: str) -> Callable[[InputFile], bool]:
    compiled = re.compile(pattern)

    def recognise(file: InputFile) -> bool:
        return any(compiled.match(o) for o in _result_objects(file))

    return recognise


_USAGE_INPUT = {
    "object": "VARCHAR",
    "bucket_start_time": "JSON",
    "bucket_end_time": "JSON",
    "input_tokens": "JSON",
    "input_cached_tokens": "JSON",
    "input_cache_write_tokens": "JSON",
    "output_tokens": "JSON",
    "num_model_requests": "JSON",
    "project_id": "VARCHAR",
    "user_id": "VARCHAR",
    "api_key_id": "VARCHAR",
    "model": "VARCHAR",
}
_COSTS_INPUT = {
    "object": "VARCHAR",
    "bucket_start_time": "JSON",
    "bucket_end_time": "JSON",
    "amount": "JSON",
    "line_item": "VARCHAR",
    "project_id": "VARCHAR",
    "api_key_id": "VARCHAR",
    "quantity": "JSON",
    "quantity_unit": "VARCHAR",
}

OPENAI_USAGE = Adapter(
    name="openai-usage",
    description="OpenAI organization Usage API pages (completions, embeddings, moderations, images, audio, tools)",
    formats=frozenset({Format.JSON, Format.JSONL}),
    target=USAGE,
    input_fields=_USAGE_INPUT,
    mapping=_usage_mapping,
    optional=frozenset({"model"}),
    flatten=_USAGE_FLATTEN,
    recognise=_recognises(_USAGE_OBJECT),
    labels={
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "requests": "num_model_requests",
        "service_tier": "service_tier",
    },
)

OPENAI_COSTS = Adapter(
    name="openai-costs",
    description="OpenAI organization Costs API pages (dollars per day, line item, project, API key)",
    formats=frozenset({Format.JSON, Format.JSONL}),
    target=COSTS,
    input_fields=_COSTS_INPUT,
    mapping=_costs_mapping,
    flatten=_COSTS_FLATTEN,
    recognise=_recognises(_COSTS_OBJECT),
)
