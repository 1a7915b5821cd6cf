"""finops spend as FOCUS 1.2 cost-and-usage rows (the SQL of `finops export --format focus`).

Grain: one row per UTC day x provider x model x team x feature x kind, built from `spend` (so totals are
the totals of `spend`); where such a group also holds usage with no known price, that usage is a row of
its own (`x_PriceStatus = 'Unpriced'`), so a priced row's costs are whole and unpriced usage stays visible.

Order of operations:
  1. read the `spend` lines of the filter; a line is unpriced when its cost is NULL, a bill line when it
     is a provider-bill adjustment or billed-but-unobserved money (`BILL_LINE_TYPES`);
  2. group them by day, provider, model, team, feature, kind and unpriced-or-not;
  3. cost columns: BilledCost = EffectiveCost = the sum of `cost_usd` (bill adjustments included, so a
     billed provider/day adds up to its bill); ContractedCost = the usage lines' `cost_usd` (our price after
     negotiated discounts, before the bill true-up; the bill lines' amount when there is no usage line);
     ListCost = the sum of `list_cost_usd` (catalog price), or BilledCost when no line has a list price;
     unpriced rows carry 0 in every cost column (FOCUS has no NULL cost) and say so;
     InvoiceId and CommitmentDiscountStatus are NULL: no finops charge is on an invoice or under a
     commitment. Both are written (not left out) because focus_validator 2.2.1 fails a rule whose
     condition names a missing column (ConsumedQuantity-C-005-C reads CommitmentDiscountStatus) and
     warns when the RECOMMENDED InvoiceId is absent;
  4. a group with usage is ChargeCategory `Usage`; a group of bill lines only (a bill share with no usage
     in the same group, `__unobserved__` money) is `Adjustment`, with no quantities.
Invariant: sum(BilledCost) == sum(spend.cost_usd) over the same filter, to the last digit.
"""

from __future__ import annotations

from typing import Any

from finops.attribute.bills import BILL_LINE_TYPES
from finops.schema import UNOBSERVED

__all__ = [
    "DECLARED_APPLICABILITY",
    "FOCUS_EXPORT_COLUMNS",
    "UNKNOWN",
    "X_COLUMNS",
    "focus_select",
]

# The FOCUS features finops declares as a data generator (the validator's "applicability criteria"). Not
# declared: PUBLIC_PRICE_LIST / UNIT_PRICING / NEGOTIATED_PRICING / VIRTUAL_CURRENCY, because a daily row
# sums input, cached, cache-write and output tokens (and tiers) priced differently, so no single unit price
# times the quantity gives its cost, as ListUnitPrice / ContractedUnitPrice would have to; and the account,
# region, resource, commitment and capacity-reservation features, which finops does not see.
DECLARED_APPLICABILITY = frozenset({"USAGE_MEASUREMENT_SUPPORTED", "TAGGING_SUPPORTED"})

UNKNOWN = "__unknown__"  # a provider or model the usage did not name (FOCUS needs a value there)
IDLE_LINE = "idle"  # `spend.line_type` of idle GPU capacity (finops.attribute.gpu)

FOCUS_EXPORT_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountStatus",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyEffectiveCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "Tags",
)
X_COLUMNS = (
    "x_Kind",
    "x_PriceStatus",
    "x_LineTypes",
    "x_Requests",
    "x_InputTokens",
    "x_CachedInputTokens",
    "x_CacheWriteTokens",
    "x_OutputTokens",
    "x_ReasoningTokens",
    "x_GpuSeconds",
)

_ISO = "%Y-%m-%dT%H:%M:%SZ"
_MONEY = "DECIMAL(38,12)"
_QUANTITY = "DECIMAL(38,9)"

_SQL = f"""
WITH lines AS (
    SELECT charge_day, provider, model, team, feature, kind, line_type, cost_usd, list_cost_usd, requests,
           input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, gpu_seconds,
           cost_usd IS NULL AS unpriced,
           list_contains($bill_line_types, line_type) AS is_bill
    FROM spend
    WHERE {{where}}
), charges AS (
    SELECT charge_day, provider, model, team, feature, kind, unpriced,
           bool_and(is_bill) AS bill_only,
           bool_or(is_bill) AS has_bill,
           bool_and(line_type = $idle_line) AS all_idle,
           CAST(coalesce(sum(cost_usd), 0) AS {_MONEY}) AS billed,
           CAST(coalesce(sum(cost_usd) FILTER (NOT is_bill), sum(cost_usd), 0) AS {_MONEY}) AS contracted,
           CAST(coalesce(sum(list_cost_usd), sum(cost_usd), 0) AS {_MONEY}) AS listed,
           CAST(sum(requests) AS BIGINT) AS requests,
           CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
           CAST(sum(cached_input_tokens) AS BIGINT) AS cached_input_tokens,
           CAST(sum(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
           CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
           CAST(sum(reasoning_tokens) AS BIGINT) AS reasoning_tokens,
           CAST(coalesce(sum(gpu_seconds), 0) AS DECIMAL(38,9)) AS gpu_seconds,
           string_agg(DISTINCT line_type, ',' ORDER BY line_type) AS line_types
    FROM lines
    GROUP BY charge_day, provider, model, team, feature, kind, unpriced
), measured AS (
    SELECT *,
           coalesce(provider, $unknown) AS provider_name,
           -- what the usage is measured in: GPU-hours, tokens, or requests for token-less usage (images, ...)
           CASE WHEN bill_only THEN NULL
                WHEN kind = 'gpu' THEN 'GPU-Hours'
                WHEN input_tokens + output_tokens = 0 AND requests > 0 THEN 'Requests'
                ELSE 'Tokens' END AS unit,
           -- GPU-hours rounded half-up at 1e-9 h, exactly (DECIMAL / INTEGER would go through a double)
           CAST((CAST(gpu_seconds * 1000000000 AS HUGEINT) + 1800) // 3600 AS DECIMAL(38,0))
               * CAST(0.000000001 AS {_QUANTITY}) AS gpu_hours
    FROM charges
)
SELECT
    billed AS "BilledCost",
    provider_name AS "BillingAccountId",
    CAST(NULL AS VARCHAR) AS "BillingAccountName",
    'USD' AS "BillingCurrency",
    strftime(date_trunc('month', charge_day) + INTERVAL 1 MONTH, '{_ISO}') AS "BillingPeriodEnd",
    strftime(date_trunc('month', charge_day), '{_ISO}') AS "BillingPeriodStart",
    CASE WHEN bill_only THEN 'Adjustment' ELSE 'Usage' END AS "ChargeCategory",
    CAST(NULL AS VARCHAR) AS "ChargeClass",
    CASE
        WHEN bill_only AND team = $unobserved THEN
            'Billed by ' || provider_name || ' but not seen in usage' || coalesce(' (' || model || ')', '')
        WHEN bill_only THEN
            'Provider bill share for ' || team || '/' || feature || coalesce(' (' || model || ')', '')
            || ' with no usage of its own that day'
        WHEN kind = 'gpu' AND all_idle THEN
            'Idle ' || coalesce(model, $unknown) || ' capacity on ' || provider_name
            || ' for ' || team || '/' || feature
        WHEN kind = 'gpu' THEN
            coalesce(model, $unknown) || ' GPU-hours on ' || provider_name || ' for ' || team || '/' || feature
        ELSE coalesce(model, $unknown) || ' usage for ' || team || '/' || feature
    END || CASE
        WHEN unpriced THEN '; no known price: cost unknown, written as 0 (x_PriceStatus Unpriced)'
        WHEN has_bill AND NOT bill_only THEN '; trued up to the provider bill'
        ELSE ''
    END AS "ChargeDescription",
    'Usage-Based' AS "ChargeFrequency",
    strftime(charge_day + 1, '{_ISO}') AS "ChargePeriodEnd",
    strftime(charge_day, '{_ISO}') AS "ChargePeriodStart",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountStatus",
    CAST(CASE unit WHEN 'GPU-Hours' THEN gpu_hours
                   WHEN 'Requests' THEN requests
                   WHEN 'Tokens' THEN input_tokens + output_tokens END AS {_QUANTITY}) AS "ConsumedQuantity",
    unit AS "ConsumedUnit",
    contracted AS "ContractedCost",
    billed AS "EffectiveCost",
    CAST(NULL AS VARCHAR) AS "InvoiceId",
    provider_name AS "InvoiceIssuerName",
    listed AS "ListCost",
    CASE WHEN bill_only THEN NULL ELSE 'Standard' END AS "PricingCategory",
    'USD' AS "PricingCurrency",
    billed AS "PricingCurrencyEffectiveCost",
    CAST(CASE unit WHEN 'GPU-Hours' THEN gpu_hours
                   WHEN 'Requests' THEN requests
                   WHEN 'Tokens' THEN CAST(input_tokens + output_tokens AS DECIMAL(38,0))
                                      * CAST(0.000001 AS {_QUANTITY}) END AS {_QUANTITY}) AS "PricingQuantity",
    CASE unit WHEN 'Tokens' THEN '1000000 Tokens' ELSE unit END AS "PricingUnit",
    provider_name AS "ProviderName",
    provider_name AS "PublisherName",
    'AI and Machine Learning' AS "ServiceCategory",
    provider_name || CASE WHEN kind = 'gpu' THEN ' GPU cluster' ELSE ' API' END AS "ServiceName",
    CASE WHEN kind = 'gpu' THEN 'Machine Learning' ELSE 'Generative AI' END AS "ServiceSubcategory",
    CASE WHEN bill_only THEN model ELSE coalesce(model, $unknown) END AS "SkuId",
    CAST(json_object('team', team, 'feature', feature) AS VARCHAR) AS "Tags",
    kind AS "x_Kind",
    CASE WHEN unpriced THEN 'Unpriced' ELSE 'Priced' END AS "x_PriceStatus",
    line_types AS "x_LineTypes",
    requests AS "x_Requests",
    input_tokens AS "x_InputTokens",
    cached_input_tokens AS "x_CachedInputTokens",
    cache_write_tokens AS "x_CacheWriteTokens",
    output_tokens AS "x_OutputTokens",
    reasoning_tokens AS "x_ReasoningTokens",
    CASE WHEN kind = 'gpu' THEN gpu_seconds END AS "x_GpuSeconds"
FROM measured
"""
# the output's own columns, so the order applies to the SELECT above as a subquery too
_ORDER = '"ChargePeriodStart", "ProviderName", "SkuId", "Tags", "x_Kind", "x_PriceStatus"'


def focus_select(where: str) -> tuple[str, str, dict[str, Any]]:
    """The FOCUS SELECT over the `spend` lines that `where` (fixed SQL over charge_day/team) keeps, its
    ORDER BY, and its parameters."""
    params: dict[str, Any] = {
        "bill_line_types": list(BILL_LINE_TYPES),
        "idle_line": IDLE_LINE,
        "unknown": UNKNOWN,
        "unobserved": UNOBSERVED,
    }
    return _SQL.replace("{where}", where), _ORDER, params
