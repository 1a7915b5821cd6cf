"""`anthropic-usage` and `anthropic-costs`: Admin usage / cost report pages into usage_events and provider_costs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops.ingest import IngestReport
from finops.ingest.files import HEAD_BYTES, sniff
from finops.ingest.sources.anthropic import ANTHROPIC_COSTS, ANTHROPIC_USAGE
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "raw" / "anthropic"

SONNET = "claude-sonnet-4-5-20250929"
WS = "wrkspc_01TestWorkspaceAaaaaaaaa"
KEY = "apikey_01TestKeyBbbbbbbbbbbbbbbb"


def usage_result(**fields: Any) -> dict[str, Any]:
    """One messages usage report result as the API documents it, grouped by key, workspace, model, tier, window."""
    result: dict[str, Any] = {
        "uncached_input_tokens": 1000,
        "cache_creation": {"ephemeral_1h_input_tokens": 50, "ephemeral_5m_input_tokens": 200},
        "cache_read_input_tokens": 3000,
        "output_tokens": 400,
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": KEY,
        "workspace_id": WS,
        "model": SONNET,
        "service_tier": "standard",
        "context_window": "0-200k",
        "account_id": None,
        "service_account_id": None,
        "inference_geo": None,
    }
    result.update(fields)
    return result


def cost_result(**fields: Any) -> dict[str, Any]:
    """One cost report result, grouped by workspace_id and description."""
    result: dict[str, Any] = {
        "currency": "USD",
        "amount": "123.78912",
        "workspace_id": WS,
        "description": "Claude Sonnet 4.5 Usage - Input Tokens",
        "cost_type": "tokens",
        "context_window": "0-200k",
        "model": SONNET,
        "service_tier": "standard",
        "token_type": "uncached_input_tokens",
        "inference_geo": None,
    }
    result.update(fields)
    return result


def bucket(day: str, *results: Any) -> dict[str, Any]:
    end = date.fromisoformat(day) + timedelta(days=1)
    return {"starting_at": f"{day}T00:00:00Z", "ending_at": f"{end.isoformat()}T00:00:00Z", "results": list(results)}


def page(*buckets: Any, has_more: bool = False) -> dict[str, Any]:
    return {"data": list(buckets), "has_more": has_more, "next_page": "page_MjAyNQ==" if has_more else None}


def write_json(directory: Path, name: str, doc: Any) -> Path:
    return write_file(directory, name, json.dumps(doc, indent=2))


def write_jsonl(directory: Path, name: str, *docs: Any) -> Path:
    return write_file(directory, name, "".join(json.dumps(d) + "\n" for d in docs))


def balanced(report: IngestReport) -> IngestReport:
    assert report.lines == report.accepted + report.duplicates + report.rejected, report.as_dict()
    return report


def rejects(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT line_number, record_path, reason, message FROM rejected_usage ORDER BY line_number")


# ------------------------------------------------------------------------------------------- usage


def test_additive_cache_parts_become_inclusive_buckets_exactly(db: Database, tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        "usage.json",
        page(
            bucket(
                "2025-10-06",
                usage_result(
                    uncached_input_tokens=1_840_213,
                    cache_read_input_tokens=9_650_871,
                    cache_creation={"ephemeral_5m_input_tokens": 412_090, "ephemeral_1h_input_tokens": 148_004},
                    output_tokens=623_517,
                ),
            )
        ),
    )

    report = balanced(ingest_one(db, path, "anthropic-usage"))
    result = rows(
        db,
        "SELECT source, provider, provider_inferred, model, CAST(ts AS VARCHAR) AS ts, "
        "CAST(ts_end AS VARCHAR) AS ts_end, CAST(charge_day AS VARCHAR) AS charge_day, input_tokens, "
        "cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, "
        "requests, service_tier, api_key, project, "
        '"user" FROM usage',
    )

    expected = {
        "source": "anthropic-usage",
        "provider": "anthropic",
        "provider_inferred": False,
        "model": SONNET,
        "ts": "2025-10-06 00:00:00+00",
        "ts_end": "2025-10-07 00:00:00+00",
        "charge_day": "2025-10-06",
        "input_tokens": 1_840_213 + 9_650_871 + 412_090 + 148_004,  # 12,051,178
        "cached_input_tokens": 9_650_871,
        "cache_write_tokens": 412_090 + 148_004,
        "cache_write_1h_tokens": 148_004,
        "output_tokens": 623_517,
        "reasoning_tokens": 0,
        "requests": 0,
        "service_tier": "default",
        "api_key": KEY,
        "project": WS,
        "user": None,
    }
    assert (report.lines, report.accepted) == (1, 1)
    assert result == [expected]
    assert expected["input_tokens"] == 12_051_178


def test_missing_cache_parts_count_as_zero_and_ungrouped_rows_have_no_model(db: Database, tmp_path: Path) -> None:
    ungrouped = {"uncached_input_tokens": 500, "output_tokens": 20, "model": None, "service_tier": None}
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", ungrouped)))

    report = balanced(ingest_one(db, path, "anthropic-usage"))
    result = rows(
        db,
        "SELECT request_id, model, input_tokens, cached_input_tokens, cache_write_tokens, service_tier FROM usage",
    )

    assert report.accepted == 1
    assert result == [
        {
            "request_id": "2025-10-06T00:00:00Z/2025-10-07T00:00:00Z {}",
            "model": None,
            "input_tokens": 500,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "service_tier": None,
        }
    ]


@pytest.mark.parametrize(
    ("tier", "canonical"),
    [
        ("standard", "default"),
        ("batch", "batch"),
        ("priority", "priority"),
        ("priority_on_demand", "priority"),
        ("flex", "flex"),
        ("flex_discount", "flex"),
    ],
)
def test_service_tier_maps_onto_the_canonical_tier(db: Database, tmp_path: Path, tier: str, canonical: str) -> None:
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", usage_result(service_tier=tier))))

    report = balanced(ingest_one(db, path, "anthropic-usage"))
    result = rows(db, "SELECT service_tier, extra->>'service_tier' AS raw FROM usage")

    assert report.accepted == 1
    assert result == [{"service_tier": canonical, "raw": tier}]


def test_service_tier_unknown_is_rejected_naming_the_value(db: Database, tmp_path: Path) -> None:
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", usage_result(service_tier="express"))))

    report = balanced(ingest_one(db, path, "anthropic-usage"))

    assert (report.accepted, report.rejected_by_reason) == (0, {"invalid_value": 1})
    assert rejects(db)[0]["message"] == "service_tier is express; expected one of default, batch, flex, priority"


@pytest.mark.parametrize(
    ("fields", "reason", "message"),
    [
        (
            {"cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": -1200}},
            "negative_value",
            "cache_creation.ephemeral_1h_input_tokens is -1200; expected a non-negative integer of at most 1e13",
        ),
        (
            {"cache_creation": {"ephemeral_5m_input_tokens": -7, "ephemeral_1h_input_tokens": 0}},
            "negative_value",
            "cache_creation.ephemeral_5m_input_tokens is -7; expected a non-negative integer of at most 1e13",
        ),
        (
            {"cache_read_input_tokens": -3000},
            "negative_value",
            "cache_read_input_tokens is -3000; expected a non-negative integer of at most 1e13",
        ),
        (
            # the sum (10 + 5000 - 3000 + ...) would be positive: the part is still caught
            {"uncached_input_tokens": -3000, "cache_read_input_tokens": 5000},
            "negative_value",
            "uncached_input_tokens is -3000; expected a non-negative integer of at most 1e13",
        ),
        (
            {"uncached_input_tokens": 12.5},
            "fractional_value",
            "uncached_input_tokens is 12.5; expected a non-negative integer of at most 1e13",
        ),
        (
            {"cache_read_input_tokens": "3000"},
            "wrong_type",
            'cache_read_input_tokens is "3000"; expected a non-negative integer of at most 1e13',
        ),
        (
            {"uncached_input_tokens": None},
            "missing_field",
            "uncached_input_tokens is missing; expected a non-negative integer of at most 1e13",
        ),
    ],
    ids=["negative-1h", "negative-5m", "negative-read", "negative-uncached", "fractional", "string", "missing"],
)
def test_bad_additive_part_is_rejected_naming_the_input_field(
    db: Database, tmp_path: Path, fields: dict[str, Any], reason: str, message: str
) -> None:
    good = usage_result(api_key_id="apikey_good")
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", good, usage_result(**fields))))

    report = balanced(ingest_one(db, path, "anthropic-usage"))

    assert (report.lines, report.accepted, report.rejected) == (2, 1, 1)
    assert rejects(db) == [
        {"line_number": 2, "record_path": "data[0].results[1]", "reason": reason, "message": message}
    ]


def test_cache_creation_that_is_not_an_object_is_rejected(db: Database, tmp_path: Path) -> None:
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", usage_result(cache_creation=250))))

    report = balanced(ingest_one(db, path, "anthropic-usage"))

    assert report.rejected_by_reason == {"unexpected_shape": 1}
    assert rejects(db)[0]["message"] == (
        "cache_creation is 250; expected an object with ephemeral_5m_input_tokens and ephemeral_1h_input_tokens"
    )


def test_context_window_web_search_and_unknown_fields_are_kept_in_extra(db: Database, tmp_path: Path) -> None:
    new_fields = {"speed": "fast", "inference_geo": "us", "cache_creation_30m_input_tokens": 12}
    result_in = usage_result(context_window="200k-1M", server_tool_use={"web_search_requests": 7}, **new_fields)
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", result_in)))

    report = balanced(ingest_one(db, path, "anthropic-usage"))
    extra = json.loads(rows(db, "SELECT CAST(extra AS VARCHAR) AS e FROM usage")[0]["e"])

    assert (report.accepted, report.rejected) == (1, 0)
    assert extra == {
        "context_window": "200k-1M",
        "server_tool_use": {"web_search_requests": 7},
        "service_tier": "standard",
        "speed": "fast",
        "inference_geo": "us",
        "cache_creation_30m_input_tokens": 12,
    }


def test_request_id_is_the_bucket_and_every_grouping_dimension(db: Database, tmp_path: Path) -> None:
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", usage_result(inference_geo="global"))))

    balanced(ingest_one(db, path, "anthropic-usage"))
    result = rows(db, "SELECT request_id FROM usage")

    assert result == [
        {
            "request_id": "2025-10-06T00:00:00Z/2025-10-07T00:00:00Z "
            f'{{"api_key_id":"{KEY}","context_window":"0-200k","inference_geo":"global",'
            f'"model":"{SONNET}","service_tier":"standard","workspace_id":"{WS}"}}'
        }
    ]


def test_rows_differing_only_in_one_dimension_are_both_kept(db: Database, tmp_path: Path) -> None:
    rows_in = [usage_result(context_window="0-200k"), usage_result(context_window="200k-1M"), usage_result(model=None)]
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", *rows_in)))

    report = balanced(ingest_one(db, path, "anthropic-usage"))

    assert (report.lines, report.accepted, report.duplicates) == (3, 3, 0)


# ------------------------------------------------------------------------------------- dedup, revisions


def test_reingesting_a_page_adds_nothing(db: Database, tmp_path: Path) -> None:
    doc = page(bucket("2025-10-06", usage_result(), usage_result(model="claude-opus-4-1-20250805")))
    path = write_json(tmp_path, "usage.json", doc)
    same_as_jsonl = write_jsonl(tmp_path, "usage.jsonl", doc)

    first = balanced(ingest_one(db, path, "anthropic-usage"))
    again = balanced(ingest_one(db, path, "anthropic-usage"))
    other_format = balanced(ingest_one(db, same_as_jsonl, "anthropic-usage"))

    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.lines, again.accepted, again.duplicates, again.restated) == (2, 0, 2, 0)
    assert (other_format.accepted, other_format.duplicates) == (0, 2)
    assert db.scalar("SELECT count(*) FROM usage_events") == 2


def test_later_pull_with_new_numbers_is_a_restatement_with_an_audit_row(db: Database, tmp_path: Path) -> None:
    first_pull = write_json(tmp_path, "a.json", page(bucket("2025-10-06", usage_result(output_tokens=400))))
    later_pull = write_json(tmp_path, "b.json", page(bucket("2025-10-06", usage_result(output_tokens=452))))

    first = balanced(ingest_one(db, first_pull, "anthropic-usage"))
    later = balanced(ingest_one(db, later_pull, "anthropic-usage"))
    audit = rows(
        db,
        "SELECT target_table, source, record_key, old_batch_id, new_batch_id, "
        "CAST(old_row->>'output_tokens' AS BIGINT) AS old_output FROM revisions",
    )

    assert (later.lines, later.accepted, later.restated, later.duplicates) == (1, 1, 1, 0)
    assert rows(db, "SELECT output_tokens FROM usage") == [{"output_tokens": 452}]
    assert audit == [
        {
            "target_table": "usage_events",
            "source": "anthropic-usage",
            "record_key": rows(db, "SELECT request_id FROM usage")[0]["request_id"],
            "old_batch_id": first.batch_id,
            "new_batch_id": later.batch_id,
            "old_output": 400,
        }
    ]


def test_two_revisions_of_a_bucket_in_one_file_keep_the_later(db: Database, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path,
        "pages.jsonl",
        page(bucket("2025-10-06", usage_result(output_tokens=400)), has_more=True),
        page(bucket("2025-10-06", usage_result(output_tokens=452))),
    )

    report = balanced(ingest_one(db, path, "anthropic-usage"))

    assert (report.lines, report.accepted, report.duplicates, report.superseded) == (2, 1, 1, 1)
    assert rows(db, "SELECT output_tokens FROM usage") == [{"output_tokens": 452}]


def test_cost_restatement_replaces_the_amount_and_keeps_the_old_one(db: Database, tmp_path: Path) -> None:
    first = write_json(tmp_path, "a.json", page(bucket("2025-10-06", cost_result(amount="100.5"))))
    later = write_json(tmp_path, "b.json", page(bucket("2025-10-06", cost_result(amount="101.25"))))

    balanced(ingest_one(db, first, "anthropic-costs"))
    report = balanced(ingest_one(db, later, "anthropic-costs"))

    assert (report.accepted, report.restated) == (1, 1)
    assert rows(db, "SELECT amount_usd FROM provider_costs") == [{"amount_usd": Decimal("1.012500000000")}]
    assert rows(db, "SELECT CAST(old_row->>'amount_usd' AS DECIMAL(38,12)) AS old FROM revisions") == [
        {"old": Decimal("1.005000000000")}
    ]


# ------------------------------------------------------------------------------------------- costs


def test_cost_amount_in_cents_becomes_exact_dollars(db: Database, tmp_path: Path) -> None:
    results = [
        cost_result(amount="123.78912"),
        cost_result(amount="0.01", token_type="output_tokens", description="Claude Sonnet 4.5 Usage - Output Tokens"),
        cost_result(amount="-250", cost_type="web_search", description="Web Search Usage", model=None, token_type=None),
    ]
    path = write_json(tmp_path, "costs.json", page(bucket("2025-10-06", *results)))

    report = balanced(ingest_one(db, path, "anthropic-costs"))
    result = rows(db, "SELECT amount_usd, typeof(amount_usd) AS t FROM provider_costs ORDER BY amount_usd DESC")

    assert (report.lines, report.accepted) == (3, 3)
    assert result == [
        {"amount_usd": Decimal("1.237891200000"), "t": "DECIMAL(38,12)"},
        {"amount_usd": Decimal("0.000100000000"), "t": "DECIMAL(38,12)"},
        {"amount_usd": Decimal("-2.500000000000"), "t": "DECIMAL(38,12)"},
    ]


def test_cost_fields_map_onto_provider_costs(db: Database, tmp_path: Path) -> None:
    path = write_json(tmp_path, "costs.json", page(bucket("2025-10-06", cost_result(service_tier="batch"))))

    balanced(ingest_one(db, path, "anthropic-costs"))
    result = rows(
        db,
        "SELECT record_key, provider, CAST(bucket_start AS VARCHAR) AS bucket_start, "
        "CAST(bucket_end AS VARCHAR) AS bucket_end, CAST(charge_day AS VARCHAR) AS charge_day, project_id, "
        "workspace_id, line_item, model, cost_type, token_type, service_tier, context_window, description, "
        "amount_usd, currency, CAST(extra AS VARCHAR) AS extra FROM provider_costs",
    )

    assert result == [
        {
            "record_key": "2025-10-06T00:00:00Z/2025-10-07T00:00:00Z "
            '{"context_window":"0-200k","cost_type":"tokens","description":"Claude Sonnet 4.5 Usage - Input Tokens",'
            f'"model":"{SONNET}","service_tier":"batch","token_type":"uncached_input_tokens","workspace_id":"{WS}"}}',
            "provider": "anthropic",
            "bucket_start": "2025-10-06 00:00:00+00",
            "bucket_end": "2025-10-07 00:00:00+00",
            "charge_day": "2025-10-06",
            "project_id": None,
            "workspace_id": WS,
            "line_item": None,
            "model": SONNET,
            "cost_type": "tokens",
            "token_type": "uncached_input_tokens",
            "service_tier": "batch",
            "context_window": "0-200k",
            "description": "Claude Sonnet 4.5 Usage - Input Tokens",
            "amount_usd": Decimal("1.237891200000"),
            "currency": "USD",
            "extra": '{"service_tier":"batch"}',
        }
    ]


DECIMAL = "expected a decimal number (digits, optional sign, '.', exponent) from -1e15 to 1e15"


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [
        ("$3", "invalid_number", f'amount is "$3"; {DECIMAL}'),
        ("1,234.5", "invalid_number", f'amount is "1,234.5"; {DECIMAL}'),
        (None, "missing_field", f"amount is missing; {DECIMAL}"),
    ],
    ids=["dollar-sign", "thousands-separator", "missing"],
)
def test_cost_amount_that_is_not_a_decimal_is_rejected(
    db: Database, tmp_path: Path, amount: str | None, reason: str, message: str
) -> None:
    path = write_json(tmp_path, "costs.json", page(bucket("2025-10-06", cost_result(amount=amount))))

    report = balanced(ingest_one(db, path, "anthropic-costs"))

    assert (report.accepted, report.rejected_by_reason) == (0, {reason: 1})
    assert rejects(db)[0]["message"] == message


def test_cost_amount_beyond_the_money_limit_rejects_that_row_only(db: Database, tmp_path: Path) -> None:
    results = [
        cost_result(amount="10000000000000000000"),
        cost_result(amount="250", token_type="output_tokens", description="Claude Sonnet 4.5 Usage - Output Tokens"),
    ]
    path = write_json(tmp_path, "costs.json", page(bucket("2025-10-06", *results)))

    report = balanced(ingest_one(db, path, "anthropic-costs"))

    assert (report.accepted, report.rejected_by_reason) == (1, {"invalid_number": 1})
    assert rejects(db) == [
        {
            "line_number": 1,
            "record_path": "data[0].results[0]",
            "reason": "invalid_number",
            "message": f'amount is "10000000000000000000"; {DECIMAL}',
        }
    ]
    assert rows(db, "SELECT amount_usd FROM provider_costs") == [{"amount_usd": Decimal("2.5")}]


def test_cost_in_another_currency_converted_beyond_the_limit_is_rejected(db: Database, tmp_path: Path) -> None:
    results = [
        cost_result(currency="EUR", amount="100000000000000"),  # 1e12 EUR in cents, 1e16 USD at 10000
        cost_result(currency="EUR", amount="250", token_type="output_tokens", description="Output Tokens"),
    ]
    path = write_json(tmp_path, "costs.json", page(bucket("2025-10-06", *results)))

    report = balanced(ingest_one(db, path, "anthropic-costs", fx_rates={"EUR": Decimal("10000")}))

    assert (report.accepted, report.rejected_by_reason) == (1, {"invalid_number": 1})
    assert rejects(db)[0]["message"] == (
        "amount 100000000000000 EUR at --fx-rate EUR=10000 is beyond 1e15 USD; expected at most 1e15 USD either "
        "way once converted"
    )
    assert rows(db, "SELECT amount_usd, currency FROM provider_costs") == [
        {"amount_usd": Decimal("25000"), "currency": "EUR"}
    ]


# -------------------------------------------------------------------------------------- page shapes


def test_array_of_pages_and_jsonl_pages_are_read_in_order(db: Database, tmp_path: Path) -> None:
    week = [page(bucket(f"2025-10-0{d}", usage_result(output_tokens=d)), has_more=d < 7) for d in (5, 6, 7)]
    array = write_json(tmp_path, "pages.json", week)
    jsonl = write_jsonl(tmp_path, "pages.jsonl", *[page(bucket("2025-10-08", usage_result(output_tokens=8)))])

    from_array = balanced(ingest_one(db, array, "anthropic-usage"))
    from_jsonl = balanced(ingest_one(db, jsonl, "anthropic-usage"))

    assert (from_array.lines, from_array.accepted, from_jsonl.accepted) == (3, 3, 1)
    assert rows(db, "SELECT output_tokens FROM usage ORDER BY ts") == [{"output_tokens": n} for n in (5, 6, 7, 8)]


@pytest.mark.parametrize(
    ("doc", "path", "message_start"),
    [
        (
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
            None,
            'the document is not a report page: {"type":"error","error":{"type":"authentication_error",',
        ),
        ({"data": {"starting_at": "2025-10-06T00:00:00Z"}}, None, "the document is not a report page: "),
        ([page(), "page 2"], "[1]", 'the document is not a report page: "page 2"'),
        (page({"starting_at": "2025-10-06T00:00:00Z"}), "data[0]", "data[0] is not a time bucket: "),
    ],
    ids=["error-body", "data-not-a-list", "array-with-a-string", "bucket-without-results"],
)
def test_document_that_is_not_a_page_is_rejected_with_a_reason(
    db: Database, tmp_path: Path, doc: Any, path: str | None, message_start: str
) -> None:
    file = write_json(tmp_path, "not-a-page.json", doc)

    report = balanced(ingest_one(db, file, "anthropic-usage"))
    (reject,) = rejects(db)

    assert (report.lines, report.accepted, report.rejected_by_reason) == (1, 0, {"unexpected_shape": 1})
    assert reject["record_path"] == path
    assert reject["message"].startswith(message_start)
    assert "expected" in reject["message"]


def test_usage_page_given_to_costs_is_rejected_with_a_hint(db: Database, tmp_path: Path) -> None:
    path = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", usage_result())))

    report = balanced(ingest_one(db, path, "anthropic-costs"))

    assert report.rejected_by_reason == {"unexpected_shape": 1}
    assert rejects(db)[0]["message"].endswith("Ingest usage reports with --source anthropic-usage")


def test_broken_jsonl_line_is_rejected_and_the_other_pages_load(db: Database, tmp_path: Path) -> None:
    good = json.dumps(page(bucket("2025-10-06", usage_result())))
    path = write_file(tmp_path, "pages.jsonl", good + "\n" + '{"data": [{"starting_at": \n')

    report = balanced(ingest_one(db, path, "anthropic-usage"))

    assert (report.lines, report.accepted, report.rejected) == (2, 1, 1)
    assert rejects(db)[0]["line_number"] == 2


# ----------------------------------------------------------------------------------- auto, fixtures


def test_source_auto_picks_the_anthropic_adapters(db: Database, tmp_path: Path) -> None:
    usage = write_json(tmp_path, "usage.json", page(bucket("2025-10-06", usage_result())))
    costs = write_jsonl(tmp_path, "costs.jsonl", page(bucket("2025-10-06", cost_result())))

    reports = [balanced(ingest_one(db, p, "auto")) for p in (usage, costs)]

    assert [(r.source, r.detected, r.accepted) for r in reports] == [
        ("anthropic-usage", True, 1),
        ("anthropic-costs", True, 1),
    ]


def test_source_auto_recognises_a_page_too_long_to_parse_from_its_head(db: Database, tmp_path: Path) -> None:
    results = [usage_result(api_key_id=f"apikey_{i:05d}") for i in range(1200)]
    path = write_json(tmp_path, "big.json", page(bucket("2025-10-06", *results)))
    assert path.stat().st_size > HEAD_BYTES

    report = balanced(ingest_one(db, path, "auto"))

    assert (report.source, report.lines, report.accepted) == ("anthropic-usage", 1200, 1200)


def test_recognise_leaves_the_openai_example_pages_alone(shared_data: Path) -> None:
    files = sorted((shared_data / "provider_api" / "openai").glob("organization_*.json"))
    claimed = [f.name for f in files if ANTHROPIC_USAGE.recognise(sniff(f)) or ANTHROPIC_COSTS.recognise(sniff(f))]

    assert files
    assert claimed == []


def test_fixtures_load_with_their_documented_totals(db: Database) -> None:
    reports = {p.name: balanced(ingest_one(db, p, "auto")) for p in sorted(FIXTURES.iterdir())}
    usage = rows(
        db,
        "SELECT count(*) AS n, sum(input_tokens) AS input, sum(cached_input_tokens) AS cached, "
        "sum(cache_write_tokens) AS cache_write, sum(cache_write_1h_tokens) AS cache_write_1h, "
        "sum(output_tokens) AS output, count(DISTINCT charge_day) AS days FROM usage WHERE provider = 'anthropic'",
    )

    assert {name: (r.source, r.lines, r.accepted, r.duplicates, r.rejected) for name, r in reports.items()} == {
        "cost_report-2025-10-06_2025-10-27.json": ("anthropic-costs", 302, 302, 0, 0),
        "usage_report_messages-2025-10-06_2025-10-27.jsonl": ("anthropic-usage", 85, 85, 0, 0),
        "usage_report_messages-2025-10-26_restated.json": ("anthropic-usage", 3, 2, 1, 0),
        "usage_report_messages-bad_rows.json": ("anthropic-usage", 6, 1, 0, 5),
    }
    assert reports["usage_report_messages-2025-10-26_restated.json"].restated == 2
    assert reports["usage_report_messages-bad_rows.json"].rejected_by_reason == {
        "negative_value": 1,
        "fractional_value": 1,
        "invalid_value": 1,
        "unexpected_shape": 2,
    }
    assert db.scalar("SELECT sum(amount_usd) FROM provider_costs") == Decimal("1149.524339250000")
    assert usage == [
        {
            "n": 86,
            "input": 478_396_212,
            "cached": 264_517_981,
            "cache_write": 15_109_263,
            "cache_write_1h": 3_175_603,
            "output": 27_332_133,
            "days": 22,
        }
    ]
