"""`finops run` and `finops prices` with a price overrides file: the user's model prices win over the catalog
for every request of the model, and the listing shows what is charged, discounts included."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from finops.cli import main
from finops.price.catalog import CATALOG_SOURCE
from tests.helpers import write_file

HEADER = (
    "kind,provider,model,valid_from,valid_to,discount_pct,input_mtok,cached_input_mtok,cache_write_mtok,"
    "output_mtok,gpu_type,cluster,hourly_usd,note\n"
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


def gateway(tmp_path: Path, *records: dict[str, object]) -> Path:
    base = {"ts": "2026-10-20T10:00:00Z", "output_tokens": 0, "team": "a", "feature": "x"}
    return write_file(tmp_path, "gw.jsonl", "".join(json.dumps(base | r) + "\n" for r in records))


def spend(capsys: pytest.CaptureFixture[str], db: str) -> dict[str, tuple[Decimal | None, str]]:
    out = run(capsys, "--db", db, "sql", "--format", "json", "SELECT request_id, cost_usd, price_source FROM spend")
    return {
        r["request_id"]: (None if r["cost_usd"] is None else Decimal(str(r["cost_usd"])), r["price_source"])
        for r in json.loads(out)
    }


def listing(out: str) -> list[list[str]]:
    """The cells of each row of a `finops prices` table."""
    return [[c.strip() for c in text.split("│")[1:-1]] for text in out.splitlines() if text.startswith("│")]


def test_a_model_override_prices_every_request_of_a_catalog_model_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "spend.duckdb")
    usage = gateway(
        tmp_path,
        {"request_id": "short", "model": "claude-sonnet-4-5", "provider": "anthropic", "input_tokens": 100_000},
        {"request_id": "long", "model": "claude-sonnet-4-5", "provider": "anthropic", "input_tokens": 300_000},
        *(
            {
                "request_id": f"4o-{tier}",
                "model": "gpt-4o",
                "provider": "openai",
                "input_tokens": 10**6,
                "service_tier": tier,
            }
            for tier in ("default", "batch", "priority")
        ),
    )
    prices = write_file(
        tmp_path,
        "prices.csv",
        HEADER
        + "model,anthropic,claude-sonnet-4-5,2026-09-01,,,1,,,1,,,,negotiated flat price\n"
        + "model,openai,gpt-4o,2026-09-01,,,1,,,1,,,,negotiated flat price\n",
    )
    run(capsys, "--db", db, "ingest", str(usage), "--source", "gateway")
    run(capsys, "--db", db, "run", "--as-of", "2026-10-21", "--prices", str(prices))

    assert spend(capsys, db) == {
        "short": (Decimal("0.1"), "prices.csv line 2"),
        "long": (Decimal("0.3"), "prices.csv line 2"),
        "4o-default": (Decimal("1"), "prices.csv line 3"),
        "4o-batch": (Decimal("1"), "prices.csv line 3"),
        "4o-priority": (Decimal("1"), "prices.csv line 3"),
    }
    out = run(
        capsys, "--db", db, "prices", "--at", "2026-10-20", "--provider", "openai", "--model", "gpt-4o",
        "--tier", "all", "--prices", str(prices),
    )  # fmt: skip
    in_force = {(r[1], r[2], r[4], r[-1]) for r in listing(out) if r[1] == "gpt-4o"}
    assert in_force == {("gpt-4o", tier, "1", "prices.csv line 3") for tier in ("default", "batch", "flex", "priority")}


def test_a_model_override_prices_records_without_provider_12(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "spend.duckdb")
    usage = gateway(
        tmp_path,
        {"request_id": "with-provider", "model": "llama-internal", "provider": "selfhosted", "input_tokens": 10**6},
        {"request_id": "no-provider", "model": "llama-internal", "input_tokens": 10**6, "output_tokens": 10**6},
    )
    prices = write_file(tmp_path, "prices.csv", HEADER + "model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,\n")
    run(capsys, "--db", db, "ingest", str(usage), "--source", "gateway")
    run(capsys, "--db", db, "run", "--as-of", "2026-10-21", "--prices", str(prices))

    assert spend(capsys, db) == {
        "with-provider": (Decimal("1"), "prices.csv line 2"),
        "no-provider": (Decimal("3"), "prices.csv line 2"),
    }


def test_prices_lists_a_discount_in_force_as_spend_charges_it_14(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fixtures_dir: Path
) -> None:
    db = str(tmp_path / "spend.duckdb")
    usage = gateway(
        tmp_path,
        {
            "request_id": "s1",
            "model": "claude-sonnet-4-5",
            "provider": "anthropic",
            "input_tokens": 1000,
            "output_tokens": 1000,
        },
    )
    prices = fixtures_dir / "prices.csv"  # line 2: 10 % off anthropic claude-sonnet-* from 2026-10-01
    run(capsys, "--db", db, "ingest", str(usage), "--source", "gateway")
    run(capsys, "--db", db, "run", "--as-of", "2026-10-21", "--prices", str(prices))
    discounted = f"{CATALOG_SOURCE}, less prices.csv line 2"

    out = run(
        capsys, "--db", db, "prices", "--at", "2026-10-05", "--provider", "anthropic", "--model", "claude-sonnet-4-5",
        "--prices", str(prices),
    )  # fmt: skip

    # 3 / 0.30 / 3.75 / 6 / 15 per million less 10 %, and the same above 200k input tokens at 6 / ... / 22.50
    base, long_context = listing(out)
    assert base == ["anthropic", "claude-sonnet-4-5", "default", "", "2.7", "0.27", "3.375", "5.4", "13.5", ""] + [
        "1970-01-01",
        "10%",
        discounted,
    ]
    assert long_context[3:] == ["200,000", "5.4", "0.54", "6.75", "10.8", "20.25", "", "1970-01-01", "10%", discounted]
    assert "2 price rows in force on 2026-10-05 (USD per million tokens, after discounts)" in out
    assert spend(capsys, db) == {"s1": (Decimal("0.0162"), discounted)}  # (1000 x 3 + 1000 x 15) / 1e6 less 10 %

    before = run(
        capsys, "--db", db, "prices", "--at", "2026-09-30", "--provider", "anthropic", "--model", "claude-sonnet-4-5",
        "--prices", str(prices),
    )  # fmt: skip

    assert [r[4:] for r in listing(before)][0] == ["3", "0.3", "3.75", "6", "15", "", "1970-01-01", "", CATALOG_SOURCE]
