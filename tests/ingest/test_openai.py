"""`openai-usage` and `openai-costs`: API pages in, bucket rows out (input -> result -> expected)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from finops.ingest import IngestOptions, IngestReport, ingest_paths
from finops.ingest.files import sniff
from finops.ingest.sources.openai import OPENAI_COSTS, OPENAI_USAGE
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

NOV_1 = 1730419200  # 2024-11-01T00:00:00Z, the bucket of OpenAI's own examples
NOV_2 = NOV_1 + 86400
DAY_1 = datetime(2024, 11, 1, tzinfo=UTC)
DAY_2 = datetime(2024, 11, 2, tzinfo=UTC)
BUCKET = f"start_time={NOV_1}&end_time={NOV_2}"
NULL_DIMENSIONS = {"project_id": None, "user_id": None, "api_key_id": None, "model": None}


def page(*results: dict[str, Any], start: int = NOV_1, end: int = NOV_2) -> dict[str, Any]:
    """One API page holding one bucket."""
    bucket = {"object": "bucket", "start_time": start, "end_time": end, "results": list(results)}
    return {"object": "page", "data": [bucket], "has_more": False, "next_page": None}


def completions(**fields: Any) -> dict[str, Any]:
    """A completions result in the current shape, nothing grouped; `fields` override or add."""
    result = {
        "object": "organization.usage.completions.result",
        "input_tokens": 1000,
        "input_cached_tokens": 400,
        "input_cache_write_tokens": 100,
        "input_uncached_tokens": 500,
        "output_tokens": 500,
        "num_model_requests": 5,
        **NULL_DIMENSIONS,
        "batch": None,
        "service_tier": None,
    }
    return {**result, **fields}


def usage(kind: str, **fields: Any) -> dict[str, Any]:
    """A result of another usage endpoint, e.g. `usage("images", images=2, num_model_requests=2)`."""
    return {"object": f"organization.usage.{kind}.result", **NULL_DIMENSIONS, **fields}


def cost(value: str, **fields: Any) -> str:
    """A costs result whose amount is the JSON number text `value`, digit for digit."""
    result = json.dumps({"object": "organization.costs.result", "line_item": None, "project_id": None, **fields})
    return result[:-1] + f', "amount": {{"value": {value}, "currency": "usd"}}}}'


def costs_page(*results: str) -> str:
    bucket = f'{{"object": "bucket", "start_time": {NOV_1}, "end_time": {NOV_2}, "results": [{", ".join(results)}]}}'
    return f'{{"object": "page", "data": [{bucket}], "has_more": false, "next_page": null}}'


def ingest_text(db: Database, tmp_path: Path, source: str, content: Any, name: str = "page.json") -> IngestReport:
    """Write `content` (a page, a list of pages, or text as is) to a file and ingest it."""
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    return ingest_one(db, write_file(tmp_path, name, text), source)


def usage_frame(db: Database, columns: str) -> pl.DataFrame:
    return pl.DataFrame(rows(db, f"SELECT {columns} FROM usage_events ORDER BY request_id"))


def extras(db: Database) -> list[dict[str, Any]]:
    return [json.loads(r["extra"]) for r in rows(db, "SELECT extra FROM usage_events ORDER BY request_id")]


def counts(report: IngestReport) -> tuple[int, int, int, int]:
    return report.lines, report.accepted, report.duplicates, report.rejected


# ------------------------------------------------------------------------------------- completions


def test_completions_current_shape_maps_to_bucket_rows(db: Database, tmp_path: Path) -> None:
    grouped = completions(project_id="proj_a", api_key_id="key_a", model="gpt-4o-2024-08-06", batch=False)
    small = {"input_tokens": 20, "input_cached_tokens": 0, "input_cache_write_tokens": 0, "output_tokens": 7}
    content = page(
        {**grouped, "service_tier": "default"},
        completions(project_id="proj_b", user_id="user_b", model="gpt-4o-mini", num_model_requests=1, **small),
    )

    report = ingest_text(db, tmp_path, "openai-usage", content)

    assert counts(report) == (2, 2, 0, 0)
    result = usage_frame(
        db,
        'request_id, ts, ts_end, provider, model, project, "user", api_key, service_tier, input_tokens, '
        "cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, requests",
    )
    expected = pl.DataFrame(
        {
            "request_id": [
                f"completions?{BUCKET}&project_id=proj_a&api_key_id=key_a&model=gpt-4o-2024-08-06&batch=false"
                "&service_tier=default",
                f"completions?{BUCKET}&project_id=proj_b&user_id=user_b&model=gpt-4o-mini",
            ],
            "ts": [DAY_1, DAY_1],
            "ts_end": [DAY_2, DAY_2],
            "provider": ["openai", "openai"],
            "model": ["gpt-4o-2024-08-06", "gpt-4o-mini"],
            "project": ["proj_a", "proj_b"],
            "user": [None, "user_b"],
            "api_key": ["key_a", None],
            "service_tier": ["default", None],
            "input_tokens": [1000, 20],
            "cached_input_tokens": [400, 0],
            "cache_write_tokens": [100, 0],
            "output_tokens": [500, 7],
            "reasoning_tokens": [0, 0],
            "requests": [5, 1],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)
    reported = {"batch": False, "service_tier": "default", "input_uncached_tokens": 500}
    assert extras(db) == [
        {**reported, "usage_kind": "completions"},
        {"input_uncached_tokens": 500, "usage_kind": "completions"},
    ]


def test_completions_2024_12_shape_with_typo_is_read(db: Database, tmp_path: Path) -> None:
    old = {
        "object": "orgainzation.usage.completions.result",
        "input_tokens": 1000,
        "output_tokens": 500,
        "input_cached_tokens": 800,
        "num_model_requests": 5,
        **NULL_DIMENSIONS,
        "project_id": "proj_a",
        "model": "gpt-4o",
        "batch": True,
    }

    report = ingest_text(db, tmp_path, "openai-usage", page(old))

    assert counts(report) == (1, 1, 0, 0)
    result = usage_frame(db, "request_id, input_tokens, cached_input_tokens, cache_write_tokens, service_tier")
    expected = pl.DataFrame(
        {
            "request_id": [f"completions?{BUCKET}&project_id=proj_a&model=gpt-4o&batch=true"],
            "input_tokens": [1000],
            "cached_input_tokens": [800],
            "cache_write_tokens": [0],
            "service_tier": ["batch"],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)
    assert extras(db) == [{"batch": True, "usage_kind": "completions"}]


def test_service_tier_canonical_or_null_with_reported_value_in_extra(db: Database, tmp_path: Path) -> None:
    tiers = [
        (None, True),
        ("default", True),
        ("default", False),
        ("flex", None),
        ("PRIORITY", None),
        ("scale", None),
        ("auto", None),
        ("turbo", None),
    ]
    content = page(*(completions(service_tier=tier, batch=batch) for tier, batch in tiers))

    report = ingest_text(db, tmp_path, "openai-usage", content)

    assert counts(report) == (8, 8, 0, 0)
    result = rows(
        db,
        "SELECT extra->>'service_tier' AS reported, extra->>'batch' AS batch, service_tier FROM usage_events "
        "ORDER BY reported NULLS FIRST, batch",
    )
    assert [tuple(r.values()) for r in result] == [
        (None, "true", "batch"),
        ("PRIORITY", None, "priority"),
        ("auto", None, None),
        ("default", "false", "default"),
        ("default", "true", "batch"),
        ("flex", None, "flex"),
        ("scale", None, None),
        ("turbo", None, None),
    ]


# ------------------------------------------------------------------------------- other endpoints


def test_embeddings_and_moderations_count_input_tokens_only(db: Database, tmp_path: Path) -> None:
    content = page(
        usage("embeddings", input_tokens=16, num_model_requests=2, project_id="proj_a", model="text-embedding-3-small"),
        usage("moderations", input_tokens=9, num_model_requests=3, project_id="proj_a", model="omni-moderation-latest"),
    )

    report = ingest_text(db, tmp_path, "openai-usage", content)

    assert counts(report) == (2, 2, 0, 0)
    result = usage_frame(db, "request_id, input_tokens, output_tokens, requests")
    expected = pl.DataFrame(
        {
            "request_id": [
                f"embeddings?{BUCKET}&project_id=proj_a&model=text-embedding-3-small",
                f"moderations?{BUCKET}&project_id=proj_a&model=omni-moderation-latest",
            ],
            "input_tokens": [16, 9],
            "output_tokens": [0, 0],
            "requests": [2, 3],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)
    assert extras(db) == [{"usage_kind": "embeddings"}, {"usage_kind": "moderations"}]


def test_images_and_audio_load_with_zero_tokens_and_quantities_in_extra(db: Database, tmp_path: Path) -> None:
    image = {"size": "1024x1024", "source": "image.generation", "project_id": "proj_a", "model": "dall-e-3"}
    content = page(
        usage("images", images=2, num_model_requests=2, **image),
        usage("audio_speeches", characters=45, num_model_requests=1, model="tts-1"),
        usage("audio_transcriptions", seconds=20, num_model_requests=1, model="whisper-1"),
    )

    report = ingest_text(db, tmp_path, "openai-usage", content)

    assert counts(report) == (3, 3, 0, 0)
    result = usage_frame(db, "request_id, model, input_tokens, output_tokens, requests")
    expected = pl.DataFrame(
        {
            "request_id": [
                f"audio_speeches?{BUCKET}&model=tts-1",
                f"audio_transcriptions?{BUCKET}&model=whisper-1",
                f"images?{BUCKET}&project_id=proj_a&model=dall-e-3&size=1024x1024&source=image.generation",
            ],
            "model": ["tts-1", "whisper-1", "dall-e-3"],
            "input_tokens": [0, 0, 0],
            "output_tokens": [0, 0, 0],
            "requests": [1, 1, 2],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)
    assert extras(db) == [
        {"characters": 45, "usage_kind": "audio_speeches"},
        {"seconds": 20, "usage_kind": "audio_transcriptions"},
        {"images": 2, "size": "1024x1024", "source": "image.generation", "usage_kind": "images"},
    ]


def test_tool_endpoints_load_with_calls_or_sessions_as_requests(db: Database, tmp_path: Path) -> None:
    # real shapes: vector stores and code interpreter group by project only; the search results name their kind
    # `file_searches` / `web_searches`
    content = page(
        {"object": "organization.usage.vector_stores.result", "usage_bytes": 1024, "project_id": "proj_a"},
        {"object": "organization.usage.code_interpreter_sessions.result", "num_sessions": 3, "project_id": "proj_a"},
        {"object": "organization.usage.file_searches.result", "num_requests": 2, "vector_store_id": "vs_1"},
        usage("web_searches", num_model_requests=4, num_requests=6, model="gpt-4o", context_level="high"),
    )

    report = ingest_text(db, tmp_path, "openai-usage", content)

    assert counts(report) == (4, 4, 0, 0)
    result = usage_frame(db, "request_id, model, input_tokens, output_tokens, requests")
    expected = pl.DataFrame(
        {
            "request_id": [
                f"code_interpreter_sessions?{BUCKET}&project_id=proj_a",
                f"file_search_calls?{BUCKET}&vector_store_id=vs_1",
                f"vector_stores?{BUCKET}&project_id=proj_a",
                f"web_search_calls?{BUCKET}&model=gpt-4o&context_level=high",
            ],
            "model": [None, None, None, "gpt-4o"],
            "input_tokens": [0, 0, 0, 0],
            "output_tokens": [0, 0, 0, 0],
            "requests": [3, 2, 0, 4],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)
    assert extras(db) == [
        {"num_sessions": 3, "usage_kind": "code_interpreter_sessions"},
        {"num_requests": 2, "vector_store_id": "vs_1", "usage_kind": "file_search_calls"},
        {"usage_bytes": 1024, "usage_kind": "vector_stores"},
        {"num_requests": 6, "context_level": "high", "usage_kind": "web_search_calls"},
    ]


def test_unknown_new_fields_and_endpoints_kept_in_extra_not_rejected(db: Database, tmp_path: Path) -> None:
    content = page(
        completions(model="gpt-5", output_reasoning_tokens=120, region="eu"),
        usage("realtime_sessions", minutes=12, num_model_requests=2),
    )

    usage_report = ingest_text(db, tmp_path, "openai-usage", content)
    costs_report = ingest_text(db, tmp_path, "openai-costs", costs_page(cost("0.06", region="eu")), "costs.json")

    assert (counts(usage_report), counts(costs_report)) == ((2, 2, 0, 0), (1, 1, 0, 0))
    assert [r["request_id"] for r in rows(db, "SELECT request_id FROM usage_events ORDER BY 1")] == [
        f"completions?{BUCKET}&model=gpt-5",
        f"realtime_sessions?{BUCKET}",
    ]
    assert extras(db) == [
        {"input_uncached_tokens": 500, "output_reasoning_tokens": 120, "region": "eu", "usage_kind": "completions"},
        {"minutes": 12, "usage_kind": "realtime_sessions"},
    ]
    assert rows(db, "SELECT extra FROM provider_costs") == [{"extra": '{"region":"eu"}'}]


# ------------------------------------------------------------------------------------------ costs


def test_costs_amounts_parse_exactly_from_json_number_text(db: Database, tmp_path: Path) -> None:
    line_item = {"project_id": "proj_a", "api_key_id": "key_a", "quantity_unit": "tokens"}
    content = costs_page(
        cost("0.06", line_item="gpt-4o-2024-08-06, input", quantity=24000, **line_item),
        cost("0.30000000000000004", line_item="gpt-4o-2024-08-06, output", quantity=30000, **line_item),
        cost("1234.567890123", project_id="proj_b", line_item="dall-e-3, 1024x1024"),
        cost("-2.5", project_id="proj_b", line_item="credit"),
        cost("1e-7", project_id="proj_b"),
    )

    report = ingest_text(db, tmp_path, "openai-costs", content)

    assert counts(report) == (5, 5, 0, 0)
    result = rows(db, "SELECT record_key, amount_usd, quantity FROM provider_costs ORDER BY amount_usd")
    key = f"costs?{BUCKET}"
    assert [tuple(r.values()) for r in result] == [
        (f"{key}&project_id=proj_b&line_item=credit", Decimal("-2.5"), None),
        (f"{key}&project_id=proj_b", Decimal("0.0000001"), None),
        (f"{key}&project_id=proj_a&line_item=gpt-4o-2024-08-06%2C%20input&api_key_id=key_a", Decimal("0.06"), 24000),
        (f"{key}&project_id=proj_a&line_item=gpt-4o-2024-08-06%2C%20output&api_key_id=key_a", Decimal("0.3"), 30000),
        (f"{key}&project_id=proj_b&line_item=dall-e-3%2C%201024x1024", Decimal("1234.567890123"), None),
    ]
    common = rows(
        db,
        "SELECT DISTINCT provider, bucket_start, bucket_end, charge_day, currency, quantity_unit FROM provider_costs "
        "WHERE api_key_id = 'key_a'",
    )
    assert common == [
        {
            "provider": "openai",
            "bucket_start": DAY_1,
            "bucket_end": DAY_2,
            "charge_day": DAY_1.date(),
            "currency": "USD",
            "quantity_unit": "tokens",
        }
    ]


def test_costs_2024_12_shape_with_typo_is_read(db: Database, tmp_path: Path) -> None:
    old = {"object": "orgainzation.costs.result", "amount": {"value": 0.06, "currency": "usd"}, "line_item": None}
    content = costs_page(json.dumps({**old, "project_id": "proj_a"}))

    report = ingest_text(db, tmp_path, "openai-costs", content)

    assert counts(report) == (1, 1, 0, 0)
    assert rows(db, "SELECT record_key, project_id, amount_usd, api_key_id, quantity FROM provider_costs") == [
        {
            "record_key": f"costs?{BUCKET}&project_id=proj_a",
            "project_id": "proj_a",
            "amount_usd": Decimal("0.06"),
            "api_key_id": None,
            "quantity": None,
        }
    ]


def test_costs_non_usd_currency_rejected_without_a_rate(db: Database, tmp_path: Path) -> None:
    content = costs_page(cost("5").replace('"usd"', '"eur"'))

    report = ingest_text(db, tmp_path, "openai-costs", content)

    assert report.rejected_by_reason == {"unsupported_currency": 1}


def test_costs_amount_beyond_the_money_limit_rejects_that_result_only(db: Database, tmp_path: Path) -> None:
    content = costs_page(
        cost("1e17", project_id="proj_big"),
        cost("-1e17", project_id="proj_credit"),
        cost("1e15", project_id="proj_limit"),
        cost("0.06", project_id="proj_a"),
    )

    report = ingest_text(db, tmp_path, "openai-costs", content, name="page.jsonl")

    assert counts(report) == (4, 2, 0, 2)
    assert report.rejected_by_reason == {"invalid_number": 2}
    expected = "expected a decimal number (digits, optional sign, '.', exponent) from -1e15 to 1e15"
    assert rows(db, "SELECT record_path, reason, message FROM rejected_usage ORDER BY record_path") == [
        {
            "record_path": "data[0].results[0]",
            "reason": "invalid_number",
            "message": f"amount.value is 100000000000000000.0; {expected}",
        },
        {
            "record_path": "data[0].results[1]",
            "reason": "invalid_number",
            "message": f"amount.value is -100000000000000000.0; {expected}",
        },
    ]
    assert rows(db, "SELECT project_id, amount_usd FROM provider_costs ORDER BY amount_usd") == [
        {"project_id": "proj_a", "amount_usd": Decimal("0.06")},
        {"project_id": "proj_limit", "amount_usd": Decimal("1000000000000000")},
    ]


def test_costs_fx_rate_beyond_decimal_range_or_converted_beyond_limit_rejects_the_row(
    db: Database, tmp_path: Path
) -> None:
    def eur(value: str, project: str) -> str:
        return cost(value, project_id=project).replace('"usd"', '"eur"')

    big = write_file(tmp_path, "big.json", costs_page(eur("1000000000000", "proj_big"), eur("5", "proj_a")))
    huge_rate = write_file(tmp_path, "rate.json", costs_page(eur("5", "proj_a")))

    converted = ingest_one(db, big, "openai-costs", fx_rates={"EUR": Decimal("10000")})
    refused = ingest_one(db, huge_rate, "openai-costs", fx_rates={"EUR": Decimal("1e10")})

    assert counts(converted) == (2, 1, 0, 1)
    assert counts(refused) == (1, 0, 0, 1)
    assert rows(db, "SELECT source_file, reason, message FROM rejected_usage ORDER BY source_file") == [
        {
            "source_file": str(big),
            "reason": "invalid_number",
            "message": "amount 1000000000000 EUR at --fx-rate EUR=10000 is beyond 1e15 USD; expected at most 1e15 "
            "USD either way once converted",
        },
        {
            "source_file": str(huge_rate),
            "reason": "unsupported_currency",
            "message": "--fx-rate EUR=1E+10 cannot convert amount 5 EUR; expected a rate from 0.00000001 to "
            "9999999999.99999999 USD per unit",
        },
    ]
    assert rows(db, "SELECT project_id, amount_usd, currency FROM provider_costs") == [
        {"project_id": "proj_a", "amount_usd": Decimal("50000"), "currency": "EUR"}
    ]


# ------------------------------------------------------------------------------- dedup, restatement


def test_reingest_same_files_adds_nothing_all_duplicates(db: Database, fixtures_dir: Path) -> None:
    paths = sorted((fixtures_dir / "raw" / "openai").iterdir())
    first = [o.report for o in ingest_paths(db, paths, "auto", IngestOptions())]
    stored = rows(db, "SELECT (SELECT count(*) FROM usage_events) AS u, (SELECT count(*) FROM provider_costs) AS c")

    second = [o.report for o in ingest_paths(db, paths, "auto", IngestOptions())]

    assert all(r is not None and r.lines > 0 and counts(r) == (r.lines, r.lines, 0, 0) for r in first)
    assert all(r is not None and counts(r) == (r.lines, 0, r.lines, 0) for r in second)
    again = rows(db, "SELECT (SELECT count(*) FROM usage_events) AS u, (SELECT count(*) FROM provider_costs) AS c")
    assert again == stored


def test_restated_bucket_replaces_row_and_keeps_revision(db: Database, tmp_path: Path) -> None:
    ingest_text(db, tmp_path, "openai-usage", page(completions(model="gpt-4o")), "pull-1.json")
    ingest_text(db, tmp_path, "openai-costs", costs_page(cost("0.06")), "costs-1.json")

    restated = page(completions(model="gpt-4o", input_tokens=1200))
    usage_report = ingest_text(db, tmp_path, "openai-usage", restated, "pull-2.json")
    costs_report = ingest_text(db, tmp_path, "openai-costs", costs_page(cost("0.07")), "costs-2.json")

    assert (usage_report.restated, counts(usage_report)) == (1, (1, 1, 0, 0))
    assert (costs_report.restated, counts(costs_report)) == (1, (1, 1, 0, 0))
    assert rows(db, "SELECT input_tokens, batch_id FROM usage_events") == [
        {"input_tokens": 1200, "batch_id": usage_report.batch_id}
    ]
    assert rows(db, "SELECT amount_usd FROM provider_costs") == [{"amount_usd": Decimal("0.07")}]
    revisions = rows(
        db,
        "SELECT target_table, record_key, new_batch_id, "
        "COALESCE(old_row->>'input_tokens', old_row->>'amount_usd') AS old_value FROM revisions ORDER BY 1",
    )
    assert [tuple(r.values()) for r in revisions] == [
        ("provider_costs", f"costs?{BUCKET}", costs_report.batch_id, "0.06"),
        ("usage_events", f"completions?{BUCKET}&model=gpt-4o", usage_report.batch_id, "1000"),
    ]


def test_two_revisions_of_one_bucket_in_one_file_keep_the_later(db: Database, tmp_path: Path) -> None:
    earlier = page(completions(model="gpt-4o", output_tokens=400))
    later = page(completions(model="gpt-4o", output_tokens=650))

    report = ingest_text(db, tmp_path, "openai-usage", f"{json.dumps(earlier)}\n{json.dumps(later)}\n", "p.jsonl")

    assert (counts(report), report.superseded) == ((2, 1, 1, 0), 1)
    assert rows(db, "SELECT output_tokens FROM usage_events") == [{"output_tokens": 650}]


# ------------------------------------------------------------------------------------ file shapes


def test_one_page_page_array_and_jsonl_pages_read_alike(db: Database, tmp_path: Path) -> None:
    day_1 = page(completions(model="gpt-4o"))
    day_2 = page(completions(model="gpt-4o"), start=NOV_2, end=NOV_2 + 86400)

    one = ingest_text(db, tmp_path, "openai-usage", day_1, "one.json")
    array = ingest_text(db, tmp_path, "openai-usage", [day_1, day_2], "array.json")
    jsonl = ingest_text(db, tmp_path, "openai-usage", f"{json.dumps(day_1)}\n{json.dumps(day_2)}", "pages.jsonl")

    assert [(r.file_format, *counts(r)) for r in (one, array, jsonl)] == [
        ("json", 1, 1, 0, 0),
        ("json", 2, 1, 1, 0),
        ("jsonl", 2, 0, 2, 0),
    ]
    assert rows(db, "SELECT ts FROM usage_events ORDER BY ts") == [{"ts": DAY_1}, {"ts": DAY_2}]


def test_non_page_document_rejected_with_reason(db: Database, tmp_path: Path) -> None:
    api_error = {"error": {"message": "Invalid admin key", "type": "invalid_request_error"}}

    report = ingest_text(db, tmp_path, "openai-usage", [api_error, page(completions())])

    assert counts(report) == (2, 1, 0, 1)
    assert rows(db, "SELECT line_number, record_path, reason, message, raw FROM rejected_usage") == [
        {
            "line_number": 1,
            "record_path": "[0]",
            "reason": "unexpected_shape",
            "message": 'the document is {"error":{"message":"Invalid admin key","type":"invalid_request_error"}}; '
            "expected an OpenAI Usage API page: a JSON object with a data array of buckets",
            "raw": '{"error":{"message":"Invalid admin key","type":"invalid_request_error"}}',
        }
    ]


def test_bad_lines_buckets_and_results_rejected_with_line_and_path(db: Database, tmp_path: Path) -> None:
    no_results = {"object": "page", "data": [{"object": "bucket", "start_time": NOV_1, "end_time": NOV_2}]}
    bad_results = page(completions(), completions(input_cached_tokens=1500), completions(input_tokens="1000"))
    lines = [json.dumps(no_results), "{not json", json.dumps(bad_results), costs_page(cost("0.06"))]

    report = ingest_text(db, tmp_path, "openai-usage", "\n".join(lines), "pages.jsonl")

    assert counts(report) == (6, 1, 0, 5)
    result = rows(db, "SELECT line_number, record_path, reason, message FROM rejected_usage ORDER BY 1, 2")
    assert [tuple(r.values()) for r in result] == [
        (
            1,
            "data[0]",
            "unexpected_shape",
            f'data[0] is {{"object":"bucket","start_time":{NOV_1},"end_time":{NOV_2}}}; expected a bucket: an object '
            "with start_time, end_time and a results array",
        ),
        (2, None, "invalid_json", "the line is not valid JSON: '{not json'; expected one JSON object per line"),
        (
            3,
            "data[0].results[1]",
            "token_invariant",
            "cached_input_tokens (1500) + cache_write_tokens (100) exceed input_tokens (1000); expected input_tokens "
            "to include cached and cache-write tokens",
        ),
        (
            3,
            "data[0].results[2]",
            "wrong_type",
            'input_tokens is "1000"; expected a non-negative integer of at most 1e13',
        ),
        (
            4,
            "data[0].results[0]",
            "unexpected_shape",
            "the result is an organization.costs.result; expected organization.usage.<endpoint>.result; it is read "
            "by --source openai-costs",
        ),
    ]


def test_a_reject_names_the_field_as_the_page_calls_it(db: Database, tmp_path: Path) -> None:
    ingest_text(db, tmp_path, "openai-usage", page(completions(num_model_requests=-1)))

    [reject] = rows(db, "SELECT reason, message FROM rejected_usage")
    assert reject == {
        "reason": "negative_value",
        "message": "num_model_requests is -1; expected a non-negative integer of at most 1e13",
    }


def test_missing_required_tokens_rejected_for_token_endpoints_only(db: Database, tmp_path: Path) -> None:
    no_tokens = {k: v for k, v in completions().items() if k != "input_tokens"}
    content = page(no_tokens, usage("embeddings", num_model_requests=1), usage("images", images=1))

    report = ingest_text(db, tmp_path, "openai-usage", content)

    assert (counts(report), report.rejected_by_reason) == ((3, 1, 0, 2), {"missing_field": 2})
    assert rows(db, "SELECT request_id FROM usage_events") == [{"request_id": f"images?{BUCKET}"}]


def test_empty_buckets_yield_no_records(db: Database, tmp_path: Path) -> None:
    report = ingest_text(db, tmp_path, "openai-usage", page())

    assert counts(report) == (0, 0, 0, 0)


# ----------------------------------------------------------------------------------- --source auto


def test_auto_source_picks_openai_adapters_for_fixtures(db: Database, fixtures_dir: Path) -> None:
    paths = sorted((fixtures_dir / "raw" / "openai").iterdir())

    outcomes = list(ingest_paths(db, paths, "auto", IngestOptions()))

    assert {o.path.name: o.report.source if o.report else o.error for o in outcomes} == {
        "costs_2025-01-02_line_items.json": "openai-costs",
        "costs_2025-01.jsonl": "openai-costs",
        "usage_completions_2025-01.jsonl": "openai-usage",
        "usage_completions_2025-06-02.json": "openai-usage",
        "usage_embeddings_2025-01-01_07.json": "openai-usage",
        "usage_images_2025-01-01_07.json": "openai-usage",
    }


def test_recognise_false_for_foreign_records_and_empty_pages(tmp_path: Path) -> None:
    gateway = write_file(tmp_path, "g.jsonl", '{"request_id": "r1", "ts": 1730419200, "model": "gpt-4o"}\n')
    empty = write_file(tmp_path, "e.json", json.dumps(page()))
    typo = write_file(tmp_path, "t.json", json.dumps(page(completions(object="orgainzation.usage.completions.result"))))
    costs = write_file(tmp_path, "c.jsonl", costs_page(cost("0.06")) + "\n")

    result = [(a.recognise(sniff(p))) for p in (gateway, empty, typo, costs) for a in (OPENAI_USAGE, OPENAI_COSTS)]

    assert result == [False, False, False, False, True, False, False, True]


# ------------------------------------------------------------------------------- fixtures, real data


def test_fixture_costs_by_project_equal_their_line_items(db: Database, fixtures_dir: Path) -> None:
    directory = fixtures_dir / "raw" / "openai"
    ingest_one(db, directory / "costs_2025-01.jsonl", "openai-costs")
    ingest_one(db, directory / "costs_2025-01-02_line_items.json", "openai-costs")

    result = rows(
        db,
        "SELECT project_id, sum(amount_usd) FILTER (line_item IS NULL) AS by_project, "
        "sum(amount_usd) FILTER (line_item IS NOT NULL) AS by_line_item FROM provider_costs "
        "WHERE charge_day = DATE '2025-01-02' GROUP BY project_id ORDER BY project_id",
    )

    assert [r["project_id"] for r in result] == ["proj_chat", "proj_research"]
    assert [r["by_project"] for r in result] == [r["by_line_item"] for r in result]


def test_real_openai_examples_ingest_balanced_without_rejects(db: Database, shared_data: Path) -> None:
    paths = sorted((shared_data / "provider_api" / "openai").glob("*.example_response*.json"))

    outcomes = list(ingest_paths(db, paths, "auto", IngestOptions()))

    assert len(outcomes) == 13
    for outcome in outcomes:
        report, name = outcome.report, outcome.path.name
        assert report is not None, (name, outcome.error)
        assert report.source == ("openai-costs" if "costs" in name else "openai-usage"), name
        assert report.lines == report.accepted + report.duplicates + report.rejected == 1, name
        assert report.rejected == 0, (name, report.samples)
