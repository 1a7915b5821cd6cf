"""The `litellm` source: StandardLoggingPayload records (JSON object, JSON array, JSONL) and
LiteLLM_SpendLogs exports (CSV, Parquet, JSON rows), with LiteLLM's token conventions made inclusive."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.ingest import IngestOptions, ingest_paths
from finops.ingest.files import HEAD_BYTES
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "raw" / "litellm"
PAYLOADS = FIXTURES / "standard_logging_payloads.jsonl"
SPEND_LOGS = FIXTURES / "spend_logs.csv"

KEY_HASH = hashlib.sha256(b"sk-test-key").hexdigest()
COLUMNS = (
    'request_id, CAST(ts AS VARCHAR) AS ts, provider, model, team, feature, project, "user", environment, api_key, '
    "tags, trace_id, status, latency_ms, input_tokens, cached_input_tokens, cache_write_tokens, "
    "cache_write_1h_tokens, output_tokens, reasoning_tokens, reported_cost_usd"
)


def payload(**fields: Any) -> dict[str, Any]:
    """One StandardLoggingPayload in the shape LiteLLM logs it (trimmed); a `None` field is dropped."""
    record: dict[str, Any] = {
        "id": "chatcmpl-1",
        "trace_id": "trace-1",
        "call_type": "acompletion",
        "cache_hit": None,
        "stream": False,
        "status": "success",
        "custom_llm_provider": "openai",
        "saved_cache_cost": 0.0,
        "startTime": 1791187392.411,
        "endTime": 1791187394.323,
        "completionStartTime": 1791187394.323,
        "response_time": 1.912,
        "model": "gpt-4o",
        "metadata": {
            "user_api_key_hash": KEY_HASH,
            "user_api_key_alias": "search-prod",
            "user_api_key_team_id": "team-uuid-1",
            "user_api_key_org_id": None,
            "user_api_key_user_id": "u-anna",
            "user_api_key_team_alias": "search",
            "spend_logs_metadata": None,
            "requester_ip_address": "",
            "applied_guardrails": [],
            "usage_object": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
        },
        "cache_key": None,
        "response_cost": 0.0045,
        "total_tokens": 1200,
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "request_tags": ["feature:semantic-search", "env:prod"],
        "end_user": "",
        "api_base": "https://api.openai.com/v1",
        "model_group": "gpt-4o",
        "model_id": "m-1",
        "requester_ip_address": "10.0.0.7",
        "messages": [{"role": "user", "content": "Hello, world!"}],
        "response": {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
        "model_parameters": {"temperature": 0.2},
        "hidden_params": {"model_id": "m-1", "api_base": "https://api.openai.com", "response_cost": 0.0045},
        "model_map_information": {"model_map_key": "gpt-4o", "model_map_value": {"input_cost_per_token": 2.5e-06}},
        "error_str": None,
        "error_information": {"error_code": "", "error_class": "", "llm_provider": "", "traceback": ""},
        "response_cost_failure_debug_info": None,
        "guardrail_information": None,
        "standard_built_in_tools_params": {"web_search_options": None, "file_search": None},
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def with_metadata(**fields: Any) -> dict[str, Any]:
    """A payload whose metadata has these fields changed (`None` removes one)."""
    record = payload()
    record["metadata"] = {k: v for k, v in {**record["metadata"], **fields}.items() if v is not None}
    return record


def ingest_records(db: Database, tmp_path: Path, *records: dict[str, Any], **options: Any) -> None:
    path = write_file(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    report = ingest_one(db, path, "litellm", **options)
    assert report.lines == report.accepted + report.duplicates + report.rejected


def usage(db: Database, where: str = "true", params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    got = rows(db, f"SELECT {COLUMNS} FROM usage WHERE {where} ORDER BY ts, request_id", params)
    for r in got:
        r["tags"] = json.loads(r["tags"]) if r["tags"] else None
    return got


def rejects(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT line_number, reason, message, raw FROM rejected_usage ORDER BY line_number")


# ------------------------------------------------------------------------------------------- payloads


def test_real_example_payload_loads_with_exact_values(db: Database, shared_data: Path) -> None:
    path = shared_data / "provider_api" / "litellm" / "standard_logging_payload.example.json"

    report = ingest_one(db, path, "litellm")

    assert (report.lines, report.accepted, report.rejected) == (1, 1, 0)
    [row] = rows(db, f"SELECT {COLUMNS}, ts AS ts_value, charge_day, provider_inferred, requests FROM usage")
    assert row == {
        "request_id": "chatcmpl-2299b6a2-82a3-465a-b47c-04e685a2227f",
        "ts": "2025-12-17 19:34:28.28466+00",
        "ts_value": datetime(2025, 12, 17, 19, 34, 28, 284660, tzinfo=UTC),  # startTime 1766000068.28466
        "charge_day": date(2025, 12, 17),
        "provider": "openai",
        "provider_inferred": False,
        "model": "gpt-4o",
        "team": None,
        "feature": None,
        "project": None,
        "user": None,
        "environment": None,
        "api_key": None,
        "tags": None,  # request_tags []
        "trace_id": "97311c60-9a61-4f48-a814-70139ee57868",
        "status": "200",
        "latency_ms": Decimal("1794.690000000"),  # endTime - startTime, exactly
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 20,
        "reasoning_tokens": 0,
        "reported_cost_usd": Decimal("0.000225000000"),  # response_cost 0.00022500000000000002
        "requests": 1,
    }


@pytest.mark.parametrize("form", ["object", "array", "jsonl", "jsonl.gz"])
def test_payload_forms_load_the_same_record(db: Database, tmp_path: Path, form: str) -> None:
    records = [payload(), payload(id="chatcmpl-2", startTime=1791187400.5, endTime=1791187401.0)]
    if form == "object":
        paths = [write_file(tmp_path, f"p{n}.json", json.dumps(r, indent=2)) for n, r in enumerate(records)]
    elif form == "array":
        paths = [write_file(tmp_path, "p.json", json.dumps(records, indent=2))]
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
        paths = [write_file(tmp_path, f"p.{form}", text, gzipped=form.endswith(".gz"))]

    for path in paths:
        ingest_one(db, path, "litellm")

    first = {
        "request_id": "chatcmpl-1",
        "ts": "2026-10-05 08:03:12.411+00",
        "provider": "openai",
        "model": "gpt-4o",
        "team": "search",
        "feature": "semantic-search",
        "project": None,
        "user": "u-anna",
        "environment": "prod",
        "api_key": "search-prod",
        "tags": {"feature": "semantic-search", "env": "prod"},
        "trace_id": "trace-1",
        "status": "200",
        "latency_ms": Decimal("1912.000000000"),
        "input_tokens": 1000,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 200,
        "reasoning_tokens": 0,
        "reported_cost_usd": Decimal("0.004500000000"),
    }
    second = {
        **first,
        "request_id": "chatcmpl-2",
        "ts": "2026-10-05 08:03:20.5+00",
        "latency_ms": Decimal("500.000000000"),
    }
    assert usage(db) == [first, second]


def test_fixture_payloads_load_and_the_cut_line_is_rejected(db: Database) -> None:
    report = ingest_one(db, PAYLOADS, "litellm")

    assert (report.lines, report.accepted, report.duplicates, report.rejected) == (30, 29, 0, 1)
    [cut] = rejects(db)
    assert (cut["line_number"], cut["reason"]) == (12, "invalid_json")
    teams = rows(db, "SELECT team, count(*) AS n FROM usage GROUP BY team ORDER BY team")
    assert teams == [
        {"team": "d38e9f25-1cab-4072-9f4b-3e6c7d8f9a03", "n": 1},  # no team alias: the team id
        {"team": "platform", "n": 7},
        {"team": "search", "n": 12},
        {"team": "support", "n": 9},
    ]
    providers = rows(db, "SELECT provider, count(*) AS n FROM usage GROUP BY ALL ORDER BY ALL")
    assert providers == [
        {"provider": "anthropic", "n": 6},
        {"provider": "google", "n": 3},
        {"provider": "openai", "n": 20},
    ]
    # the 1-hour cache write of line 10: prompt_tokens 7,240 already includes 6,120 read + 1,024 written
    [anthropic] = usage(db, "cache_write_1h_tokens > 0")
    assert (anthropic["input_tokens"], anthropic["cached_input_tokens"], anthropic["cache_write_tokens"]) == (
        7240,
        6120,
        1024,
    )
    assert anthropic["tags"] == {"feature": "ticket-triage", "customer": "globex"}


def test_fixture_failed_attempt_and_its_retry_share_a_trace(db: Database) -> None:
    ingest_one(db, PAYLOADS, "litellm")

    attempts = rows(
        db,
        "SELECT status, input_tokens, reported_cost_usd FROM usage WHERE trace_id IN "
        "(SELECT trace_id FROM usage WHERE status IN ('429', 'timeout')) ORDER BY ts",
    )

    assert attempts == [
        {"status": "429", "input_tokens": 0, "reported_cost_usd": Decimal("0E-12")},
        {"status": "200", "input_tokens": 4211, "reported_cost_usd": Decimal("0.016547500000")},
        {"status": "timeout", "input_tokens": 0, "reported_cost_usd": Decimal("0E-12")},
        {"status": "200", "input_tokens": 1733, "reported_cost_usd": Decimal("0.005422500000")},
    ]


def test_cache_hit_payload_gets_its_own_request_id(db: Database, tmp_path: Path) -> None:
    hit = payload(cache_hit=True, startTime=1791187500.25, endTime=1791187500.26, response_cost=0.0)

    ingest_records(db, tmp_path, payload(), hit)

    assert [(r["request_id"], r["reported_cost_usd"]) for r in usage(db)] == [
        ("chatcmpl-1", Decimal("0.004500000000")),
        ("chatcmpl-1_cache_hit1791187500.25", Decimal("0E-12")),
    ]
    assert db.scalar("SELECT count(*) FROM revisions") == 0


# ----------------------------------------------------------------------------------------- token buckets

ANTHROPIC_USAGE = {"cache_read_input_tokens": 3000, "cache_creation_input_tokens": 500}


@pytest.mark.parametrize(
    ("prompt_tokens", "convention"),
    [
        (3540, "current LiteLLM: input + cache reads + cache writes"),
        (3040, "LiteLLM v1.65-v1.7x: input + cache reads"),
        (40, "Anthropic's own: uncached input only"),
    ],
)
@pytest.mark.parametrize("where", ["metadata.usage_object", "hidden_params.usage_object", "response.usage"])
def test_anthropic_cache_tokens_are_made_inclusive_whatever_the_litellm_version(
    db: Database, tmp_path: Path, prompt_tokens: int, convention: str, where: str
) -> None:
    usage_object = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 3000},
        **ANTHROPIC_USAGE,
    }
    record = payload(custom_llm_provider="anthropic", model="claude-sonnet-4-5", prompt_tokens=prompt_tokens)
    record["metadata"].pop("usage_object")
    parent, key = where.split(".")
    record[parent] = {**record[parent], key: usage_object}

    ingest_records(db, tmp_path, record)

    [row] = usage(db)
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (3540, 3000, 500)


@pytest.mark.parametrize(
    ("declared", "prompt_tokens"),
    [("reads", 5000), ("all", 5500), ("none", 2000), ("auto", 5500)],
)
def test_a_declared_prompt_tokens_convention_applies_where_the_numbers_cannot_tell(
    db: Database, tmp_path: Path, declared: str, prompt_tokens: int
) -> None:
    # 2000 uncached tokens, more than the 500 cache writes: "reads only" (5000) and "all" (5500) could both be
    # read as "all" by the numbers; declared, each gives the same inclusive 5500
    record = payload(custom_llm_provider="anthropic", model="claude-sonnet-4-5", prompt_tokens=prompt_tokens)
    record["metadata"]["usage_object"] = {"prompt_tokens": prompt_tokens, "completion_tokens": 200, **ANTHROPIC_USAGE}

    ingest_records(db, tmp_path, record, litellm_prompt_tokens=declared)

    [row] = usage(db)
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (5500, 3000, 500)


def test_anthropic_one_hour_cache_writes_come_from_the_cache_creation_details(db: Database, tmp_path: Path) -> None:
    usage_object = {
        "prompt_tokens": 3540,
        "completion_tokens": 200,
        "prompt_tokens_details": {
            "cached_tokens": 3000,
            "cache_creation_tokens": 500,
            "cache_creation_token_details": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 400},
        },
        **ANTHROPIC_USAGE,
    }

    ingest_records(db, tmp_path, with_metadata(usage_object=usage_object) | {"prompt_tokens": 3540})

    [row] = usage(db)
    assert (row["input_tokens"], row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (3540, 500, 400)


def test_openai_cached_and_reasoning_tokens_are_already_inclusive(db: Database, tmp_path: Path) -> None:
    usage_object = {
        "prompt_tokens": 1840,
        "completion_tokens": 900,
        "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 640},
    }

    ingest_records(
        db, tmp_path, with_metadata(usage_object=usage_object) | {"prompt_tokens": 1840, "completion_tokens": 900}
    )

    [row] = usage(db)
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (
        1840,
        1536,
        900,
        640,
    )


def test_openai_style_usage_with_more_cached_than_prompt_tokens_is_rejected(db: Database, tmp_path: Path) -> None:
    usage_object = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 200}}

    ingest_records(db, tmp_path, with_metadata(usage_object=usage_object) | {"prompt_tokens": 100})

    [reject] = rejects(db)
    assert reject["reason"] == "token_invariant"
    assert "cached_input_tokens (200) + cache_write_tokens (0) exceed input_tokens (100)" in reject["message"]


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (-3, "negative_value", "prompt_tokens is -3; expected a non-negative integer of at most 1e13"),
        ("12", "wrong_type", 'prompt_tokens is "12"; expected a non-negative integer of at most 1e13'),
        (None, "missing_field", "prompt_tokens is missing; expected a non-negative integer of at most 1e13"),
    ],
)
def test_bad_prompt_tokens_are_rejected_with_reason(
    db: Database, tmp_path: Path, value: Any, reason: str, message: str
) -> None:
    record = payload()
    record["prompt_tokens"] = value
    record = {k: v for k, v in record.items() if v is not None}

    ingest_records(db, tmp_path, payload(id="ok"), record)

    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (2, reason)
    assert reject["message"] == message


def test_a_bad_cache_count_is_named_by_where_litellm_keeps_it(db: Database, tmp_path: Path) -> None:
    record = payload()
    record["metadata"]["usage_object"]["prompt_tokens_details"] = {"cached_tokens": -1}

    ingest_records(db, tmp_path, record)

    [reject] = rejects(db)
    assert reject["message"] == (
        "usage cache_read_input_tokens / prompt_tokens_details.cached_tokens is -1; "
        "expected a non-negative integer of at most 1e13"
    )


# ----------------------------------------------------------------------------------- attribution, status


@pytest.mark.parametrize(
    ("request_tags", "tags", "feature", "environment", "project"),
    [
        (
            ["feature:search", "env:prod", "beta"],
            {"feature": "search", "env": "prod", "beta": "true"},
            "search",
            "prod",
            None,
        ),
        (["env:staging", "env:ci"], {"env": "ci"}, None, "ci", None),
        (
            ["User-Agent: curl/8.5.0", " a : b:c ", "project:atlas"],
            {"User-Agent": "curl/8.5.0", "a": "b:c", "project": "atlas"},
            None,
            None,
            "atlas",
        ),
        (["feature", ":x", "environment:qa"], {"feature": "true", ":x": "true", "environment": "qa"}, None, "qa", None),
        ([], None, None, None, None),
    ],
)
def test_request_tags_become_an_object_and_fill_feature(
    db: Database,
    tmp_path: Path,
    request_tags: list[str],
    tags: dict[str, str] | None,
    feature: str | None,
    environment: str | None,
    project: str | None,
) -> None:
    ingest_records(db, tmp_path, payload(request_tags=request_tags))

    [row] = usage(db)
    assert (row["tags"], row["feature"], row["environment"], row["project"]) == (tags, feature, environment, project)


def test_request_tags_that_are_not_a_list_are_rejected(db: Database, tmp_path: Path) -> None:
    ingest_records(db, tmp_path, payload(request_tags="feature:search"))

    [reject] = rejects(db)
    assert reject["reason"] == "wrong_type"
    assert reject["message"] == 'request_tags is "feature:search"; expected a JSON object of string values'


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, ("search", "search-prod", "u-anna")),
        ({"user_api_key_team_alias": None, "user_api_key_alias": None}, ("team-uuid-1", KEY_HASH, "u-anna")),
        ({"user_api_key_alias": "sk-live-1234", "user_api_key_hash": "sk-live-1234"}, ("search", None, "u-anna")),
        ({"user_api_key_alias": "", "user_api_key_hash": "not-a-digest"}, ("search", None, "u-anna")),
        (
            {"user_api_key_user_id": None, "user_api_key_team_id": None, "user_api_key_team_alias": None},
            (None, "search-prod", None),
        ),
    ],
)
def test_team_key_and_user_come_from_metadata_and_never_a_secret(
    db: Database, tmp_path: Path, metadata: dict[str, Any], expected: tuple[str | None, ...]
) -> None:
    ingest_records(db, tmp_path, with_metadata(**metadata))

    [row] = usage(db)
    assert (row["team"], row["api_key"], row["user"]) == expected


def test_end_user_is_the_user_when_the_key_has_no_user(db: Database, tmp_path: Path) -> None:
    ingest_records(db, tmp_path, with_metadata(user_api_key_user_id=None) | {"end_user": "customer-8812"})

    assert usage(db)[0]["user"] == "customer-8812"


@pytest.mark.parametrize(
    ("status", "error_information", "expected"),
    [
        ("success", None, "200"),
        ("failure", {"error_code": "429", "error_class": "RateLimitError", "llm_provider": "openai"}, "429"),
        ("failure", {"error_code": "529", "error_class": "InternalServerError"}, "529"),
        ("failure", {"error_code": "", "error_class": "Timeout"}, "timeout"),
        ("failure", {"error_code": "litellm.APIError", "error_class": "APIError"}, "error"),
        ("failure", {"error_code": "", "error_class": ""}, "error"),
        ("failure", None, "error"),
    ],
)
def test_status_maps_success_and_failure(
    db: Database, tmp_path: Path, status: str, error_information: dict[str, str] | None, expected: str
) -> None:
    record = payload(status=status)
    record.pop("error_information")
    if error_information is not None:
        record["error_information"] = error_information

    ingest_records(db, tmp_path, record)

    assert usage(db)[0]["status"] == expected


def test_unknown_status_is_rejected_with_reason(db: Database, tmp_path: Path) -> None:
    ingest_records(db, tmp_path, payload(status="pending"))

    [reject] = rejects(db)
    assert reject["reason"] == "invalid_value"
    assert reject["message"].startswith("status is pending; expected an HTTP status code (100-599)")


def test_latency_falls_back_to_response_time(db: Database, tmp_path: Path) -> None:
    record = payload(response_time=2.5)
    del record["endTime"]

    ingest_records(db, tmp_path, record)

    assert usage(db)[0]["latency_ms"] == Decimal("2500.000000000")


def test_provider_names_are_normalised_and_inferred_when_missing(db: Database, tmp_path: Path) -> None:
    records = [
        payload(id="a", custom_llm_provider="vertex_ai", model="gemini-2.5-flash"),
        payload(id="b", custom_llm_provider="azure_ai", model="gpt-4o"),
        payload(id="c", custom_llm_provider="", model="claude-sonnet-4-5"),
        payload(id="d", custom_llm_provider="Groq", model="llama-3.3-70b"),
    ]

    ingest_records(db, tmp_path, *records)

    got = rows(db, "SELECT request_id, provider, provider_inferred FROM usage ORDER BY request_id")
    assert [(r["request_id"], r["provider"], r["provider_inferred"]) for r in got] == [
        ("a", "google", False),
        ("b", "azure", False),
        ("c", "anthropic", True),
        ("d", "groq", False),
    ]


def test_big_known_fields_stay_out_of_extra_and_unknown_ones_are_kept(db: Database, tmp_path: Path) -> None:
    record = payload(status_fields={"llm_api_status": "success"}, x_deployment_region="eu-west-1")

    ingest_records(db, tmp_path, record)

    extra = json.loads(db.scalar("SELECT extra FROM usage_events"))
    assert extra == {
        "call_type": "acompletion",
        "stream": False,
        "saved_cache_cost": 0.0,
        "completionStartTime": 1791187394.323,
        "api_base": "https://api.openai.com/v1",
        "model_group": "gpt-4o",
        "model_id": "m-1",
        "status_fields": {"llm_api_status": "success"},
        "x_deployment_region": "eu-west-1",
    }


# ---------------------------------------------------------------------------------------- spend logs


def test_spend_logs_csv_loads_with_the_declared_zone(db: Database) -> None:
    report = ingest_one(db, SPEND_LOGS, "litellm", zone="UTC")

    assert (report.lines, report.accepted, report.duplicates, report.rejected) == (20, 20, 0, 0)
    [multi_line] = usage(db, "request_id = 'chatcmpl-89e7d15f-1736-4f25-a44c-af9c4dabb481'")
    assert multi_line == {
        "request_id": "chatcmpl-89e7d15f-1736-4f25-a44c-af9c4dabb481",
        "ts": "2026-10-05 09:22:07.64+00",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5-20250929",
        "team": "support",
        "feature": "ticket-triage",
        "project": None,
        "user": "u-ben",
        "environment": None,
        "api_key": "support-bot",
        "tags": {"feature": "ticket-triage", "customer": "acme"},
        "trace_id": multi_line["trace_id"],
        "status": "200",
        "latency_ms": Decimal("6920.000000000"),
        "input_tokens": 6301,  # prompt_tokens 181 left out the 6,120 cache-write tokens (LiteLLM v1.7x)
        "cached_input_tokens": 0,
        "cache_write_tokens": 6120,
        "cache_write_1h_tokens": 0,
        "output_tokens": 377,
        "reasoning_tokens": 0,
        "reported_cost_usd": Decimal("0.029318000000"),
    }
    statuses = rows(db, "SELECT status, count(*) AS n FROM usage GROUP BY ALL ORDER BY ALL")
    assert statuses == [{"status": "200", "n": 18}, {"status": "408", "n": 1}, {"status": "529", "n": 1}]
    [no_alias] = usage(db, "tags IS NULL")
    assert (no_alias["team"], no_alias["api_key"]) == (
        "d38e9f25-1cab-4072-9f4b-3e6c7d8f9a03",
        "f0a9583b913ddad3a1f12794a3898002a97e500b81b692785c4c7b94e9dcc59d",
    )
    total = db.scalar("SELECT sum(reported_cost_usd) FROM usage")
    assert total == Decimal("0.123436930000")


def test_spend_logs_retry_shares_the_session_as_trace(db: Database) -> None:
    ingest_one(db, SPEND_LOGS, "litellm", zone="UTC")

    [failed] = usage(db, "status = '529'")
    retry = usage(db, "trace_id = $t", {"t": failed["trace_id"]})

    assert [(r["status"], r["input_tokens"], r["cached_input_tokens"], r["cache_write_tokens"]) for r in retry] == [
        ("529", 0, 0, 0),
        ("200", 7392, 7144, 108),
    ]


def test_spend_logs_csv_without_a_zone_is_rejected_as_naive(db: Database) -> None:
    report = ingest_one(db, SPEND_LOGS, "litellm")

    assert (report.lines, report.accepted, report.rejected) == (20, 0, 20)
    assert report.rejected_by_reason == {"naive_timestamp": 20}
    got = rejects(db)
    # physical lines: the 3rd record's metadata cell spans lines 4-44
    assert [r["line_number"] for r in got] == [2, 3, 4, *range(45, 62)]
    assert got[0]["message"] == (
        "startTime is 2026-10-05 08:10:02.115; expected a timestamp with a UTC offset or Z; this one has none. "
        "Declare the zone the file was written in with --timezone"
    )
    assert got[2]["raw"].startswith("chatcmpl-89e7d15f-1736-4f25-a44c-af9c4dabb481,acompletion,")
    assert got[2]["raw"].count("\n") == 40


def spend_logs_as(tmp_path: Path, form: str) -> Path:
    """The CSV fixture as Parquet (column types inferred) or as the JSON rows LiteLLM's /spend/logs returns."""
    if form == "parquet":
        target = tmp_path / "spend_logs.parquet"
        duckdb.sql(f"COPY (SELECT * FROM read_csv('{SPEND_LOGS}')) TO '{target}' (FORMAT parquet)")
        return target
    records = []
    for row in csv.DictReader(io.StringIO(SPEND_LOGS.read_text())):
        record: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
        record["metadata"] = json.loads(row["metadata"])
        record["request_tags"] = json.loads(row["request_tags"])
        for key in ("startTime", "endTime", "completionStartTime"):
            record[key] = row[key].replace(" ", "T") + "Z"
        for key in ("prompt_tokens", "completion_tokens", "total_tokens", "request_duration_ms"):
            record[key] = int(row[key])
        record["spend"] = float(row["spend"])
        records.append(record)
    return write_file(tmp_path, "spend_logs.json", json.dumps(records, indent=1))


@pytest.mark.parametrize("form", ["parquet", "json"])
def test_spend_logs_in_other_formats_load_like_the_csv(db: Database, tmp_path: Path, form: str) -> None:
    ingest_one(db, SPEND_LOGS, "litellm", zone="UTC")
    from_csv = usage(db)
    db.execute("DELETE FROM usage_events")

    report = ingest_one(db, spend_logs_as(tmp_path, form), "litellm", zone="UTC")

    assert (report.lines, report.accepted, report.rejected) == (20, 20, 0)
    assert usage(db) == from_csv


# ------------------------------------------------------------------------------- dedup, auto, balance


@pytest.mark.parametrize(
    ("path", "zone", "counts"), [(PAYLOADS, None, (30, 0, 29, 1)), (SPEND_LOGS, "UTC", (20, 0, 20, 0))]
)
def test_reingesting_a_file_adds_nothing(
    db: Database, path: Path, zone: str | None, counts: tuple[int, int, int, int]
) -> None:
    ingest_one(db, path, "litellm", zone=zone)
    before = db.scalar("SELECT count(*) FROM usage_events")

    again = ingest_one(db, path, "litellm", zone=zone)

    assert (again.lines, again.accepted, again.duplicates, again.rejected) == counts
    assert db.scalar("SELECT count(*) FROM usage_events") == before
    assert db.scalar("SELECT count(*) FROM revisions") == 0


def test_auto_picks_litellm_for_both_shapes_and_not_for_a_gateway_file(
    db: Database, tmp_path: Path, shared_data: Path
) -> None:
    gateway = write_file(
        tmp_path,
        "gateway.jsonl",
        json.dumps(
            {
                "request_id": "g1",
                "ts": "2026-10-05T10:00:00Z",
                "model": "gpt-4o",
                "input_tokens": 10,
                "output_tokens": 2,
            }
        )
        + "\n",
    )
    example = shared_data / "provider_api" / "litellm" / "standard_logging_payload.example.json"
    paths = [PAYLOADS, SPEND_LOGS, example, gateway]

    outcomes = list(ingest_paths(db, paths, "auto", IngestOptions(zone="UTC")))

    assert [(o.path.name, o.report.source if o.report else o.error) for o in outcomes] == [
        ("standard_logging_payloads.jsonl", "litellm"),
        ("spend_logs.csv", "litellm"),
        ("standard_logging_payload.example.json", "litellm"),
        ("gateway.jsonl", "gateway"),
    ]
    assert all(o.report and o.report.detected for o in outcomes)


def test_auto_recognises_a_payload_array_longer_than_the_sniffed_head(db: Database, tmp_path: Path) -> None:
    prompt = [{"role": "user", "content": "x" * 4000}]
    records = [payload(id=f"chatcmpl-{n}", messages=prompt) for n in range(HEAD_BYTES // 4000 + 10)]
    path = write_file(tmp_path, "payloads.json", json.dumps(records, indent=2))
    assert path.stat().st_size > HEAD_BYTES

    [outcome] = ingest_paths(db, [path], "auto", IngestOptions())

    assert outcome.report is not None
    assert (outcome.report.source, outcome.report.accepted) == ("litellm", len(records))


def test_every_batch_balances_lines_with_accepted_duplicates_and_rejected(db: Database, tmp_path: Path) -> None:
    bad = copy.deepcopy(payload(id="bad"))
    bad["completion_tokens"] = -1
    ingest_records(db, tmp_path, payload(), payload(), bad)
    ingest_one(db, PAYLOADS, "litellm")
    ingest_one(db, PAYLOADS, "litellm")
    ingest_one(db, SPEND_LOGS, "litellm")
    ingest_one(db, SPEND_LOGS, "litellm", zone="UTC")

    batches = rows(db, "SELECT lines, accepted, duplicates, rejected FROM ingest_batches ORDER BY batch_id")

    assert [tuple(b.values()) for b in batches] == [
        (3, 1, 1, 1),
        (30, 29, 0, 1),
        (30, 0, 29, 1),
        (20, 0, 0, 20),
        (20, 20, 0, 0),
    ]
    assert all(b["lines"] == b["accepted"] + b["duplicates"] + b["rejected"] for b in batches)
    assert db.scalar("SELECT count(*) FROM rejected_usage") == 1 + 1 + 1 + 20
