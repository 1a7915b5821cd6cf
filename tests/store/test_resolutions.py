"""`model_resolutions` follows the overrides file: a model priced by an override that is gone again resolves
to the catalog, and is priced by it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from finops.pipeline import run_once
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_bad_input import line

HEADER = (
    "kind,provider,model,valid_from,valid_to,discount_pct,input_mtok,cached_input_mtok,cache_write_mtok,"
    "output_mtok,gpu_type,cluster,hourly_usd,note\n"
)


def test_removing_an_override_resolves_its_model_to_the_catalog_again(db: Database, tmp_path: Path) -> None:
    override = write_file(tmp_path, "prices.csv", HEADER + "model,,gpt-4o,2026-01-01,,,1,,,1,,,,flat price\n")
    empty = write_file(tmp_path, "empty.csv", HEADER)
    first = line(
        "a", ts="2026-10-01T10:00:00Z", model="gpt-4o", provider="azure", input_tokens=1_000_000, output_tokens=0
    )
    second = line(
        "b", ts="2026-10-02T10:00:00Z", model="gpt-4o", provider="azure", input_tokens=1_000_000, output_tokens=0
    )
    ingest_one(db, write_file(tmp_path, "a.jsonl", first + "\n"), "gateway")
    run_once(db, as_of=datetime(2026, 10, 2, tzinfo=UTC), price_overrides=override)
    ingest_one(db, write_file(tmp_path, "b.jsonl", second + "\n"), "gateway")

    run_once(db, as_of=datetime(2026, 10, 3, tzinfo=UTC), price_overrides=empty)

    priced = rows(db, "SELECT request_id, cost_usd IS NOT NULL AS priced, price_source FROM spend ORDER BY 1")
    assert [(r["request_id"], r["priced"]) for r in priced] == [("a", True), ("b", True)]
    assert "prices.csv" in str(priced[0]["price_source"]) and "genai-prices" in str(priced[1]["price_source"])
    [resolution] = rows(db, "SELECT resolution FROM model_resolutions WHERE provider = 'azure'")
    assert "your price" not in str(resolution["resolution"])
