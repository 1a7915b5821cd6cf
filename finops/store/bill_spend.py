"""Reads and writes of the provider-bill step (the rules themselves are `finops.attribute.bills`).

For each UTC day it is given, in one transaction:
  1. drop a provider bucket's stale `provider_usage` line when a restatement gave it a new `usage` line;
  2. read the day's token usage (grouped by day, provider, source, model, team, feature and priced or
     not: the job's result is the same as over single lines) and its `provider_costs` rows;
  3. flip provider usage buckets between `usage` (they count) and `provider_usage` (the gateway's measure
     of that provider/day counts; they stay for the `reconciliation` view);
  4. resolve the model names the bills give (stored in `model_resolutions`, like usage's);
  5. replace the day's `bill_adjustment` and `unobserved` lines with the job's.
Rebuilding a day twice gives the same lines: everything is recomputed from usage, bills and catalog.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from finops.attribute.bills import (
    BILL_COLUMNS,
    BILL_LINE_TYPES,
    PROVIDER_USAGE,
    PROVIDER_USAGE_SOURCES,
    bill_models,
    bill_spend,
    usage_measures,
)
from finops.store.db import Database
from finops.store.spend import frame, registered, resolutions_for

__all__ = ["rebuild_bill_lines"]

_DAYS = "list_contains($days, charge_day)"
_USAGE_TYPES = ("usage", PROVIDER_USAGE)

_USAGE_GROUPS = f"""
    SELECT charge_day, provider, source, model, price_model, team, feature, sum(cost_usd) AS cost_usd,
           CAST(sum(input_tokens) AS BIGINT) AS input_tokens, CAST(sum(output_tokens) AS BIGINT) AS output_tokens
    FROM spend_lines
    WHERE {_DAYS} AND kind = 'tokens' AND list_contains($usage_types, line_type)
    GROUP BY charge_day, provider, source, model, price_model, team, feature, cost_usd IS NULL"""

_BILLS = f"SELECT {', '.join(BILL_COLUMNS)}, project_id, api_key_id FROM provider_costs WHERE {_DAYS}"

# a restated record gets a new 'usage' line from the pricing step; its older line may carry the
# 'provider_usage' type this step gave it, which the pricing step's replace does not look for
_STALE = f"""
    DELETE FROM spend_lines
    WHERE {_DAYS} AND line_type = '{PROVIDER_USAGE}'
      AND usage_key IN (
          SELECT usage_key FROM spend_lines
          WHERE {_DAYS} AND line_type = 'usage' AND list_contains($provider_sources, source)
      )"""

_FLIP = f"""
    UPDATE spend_lines
    SET line_type = CASE WHEN m.measure = 'gateway' THEN '{PROVIDER_USAGE}' ELSE 'usage' END
    FROM _measures AS m
    WHERE spend_lines.charge_day = m.charge_day AND spend_lines.provider = m.provider
      AND list_contains($provider_sources, spend_lines.source)
      AND list_contains($usage_types, spend_lines.line_type)
      AND spend_lines.line_type <> CASE WHEN m.measure = 'gateway' THEN '{PROVIDER_USAGE}' ELSE 'usage' END"""


def rebuild_bill_lines(db: Database, days: list[date], run_id: int) -> None:
    """Recompute which usage counts and the `bill_adjustment` and `unobserved` lines of these days."""
    if not days:
        return
    sources, usage_types = list(PROVIDER_USAGE_SOURCES), list(_USAGE_TYPES)
    with db.transaction():
        db.execute(_STALE, {"days": days, "provider_sources": sources})  # 1
        usage = frame(db, _USAGE_GROUPS, {"days": days, "usage_types": usage_types})  # 2
        bills = frame(db, _BILLS, {"days": days})
        with registered(db, "_measures", usage_measures(usage.lazy()).collect()):  # 3
            db.execute(_FLIP, {"usage_types": usage_types, "provider_sources": sources})
        names = bill_models(bills.lazy()).collect()  # 4
        resolutions = resolutions_for(db, names) if names.height else _no_resolutions()
        lines = bill_spend(usage.lazy(), bills.lazy(), resolutions.lazy()).collect()  # 5
        db.execute(
            f"DELETE FROM spend_lines WHERE {_DAYS} AND list_contains($types, line_type)",
            {"days": days, "types": list(BILL_LINE_TYPES)},
        )
        if lines.height:
            with registered(db, "_bill_lines", lines):
                db.execute(
                    "INSERT INTO spend_lines BY NAME SELECT * REPLACE (CAST(usage_key AS UHUGEINT) AS usage_key), "
                    "$run AS run_id FROM _bill_lines",
                    {"run": run_id},
                )


def _no_resolutions() -> pl.DataFrame:
    return pl.DataFrame(schema={"provider": pl.String(), "model": pl.String(), "price_model": pl.String()})
