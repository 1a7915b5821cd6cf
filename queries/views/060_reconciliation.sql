-- name: reconciliation
-- description: Our price against the provider's bill, per provider, model and UTC day: the priced cost of
--   gateway-measured usage and of the provider's usage buckets, the billed cost, what counts in `spend`
--   (the bill, shared out), and the difference billed - our price of the measure that counts, in dollars
--   and percent. Both measures are shown, never added: `measure` says which one counts that day. Days with
--   only usage or only a bill have rows too (billed_cost_usd NULL: no bill for that provider and day).
--   model is the catalog model names resolve to (the name itself when it does not resolve). It is NULL on
--   a row that stands for a whole provider/day (billed_by 'provider_day': the bill names no model) and on
--   the part of a bill that names no model next to model rows (e.g. Anthropic web search); that part is
--   shared over the day's usage, so it shows in the model rows' counted_cost_usd, not in its own row's.
--   superseded_billed_usd: rows of a coarser cost pull left out because a finer pull of the same provider
--   and day is loaded too (itemised, then by project, then by API key; they overlap: the finest is used).
-- grain: provider, charge_day, model
CREATE OR REPLACE VIEW reconciliation AS
WITH bill_rows AS (
    SELECT
        charge_day, provider, batch_id, amount_usd,
        coalesce(model, nullif(trim(split_part(line_item, ',', 1)), '')) AS bill_model,
        -- how finely the row is grouped: itemised 4, by project 2, by API key 1 (finops.attribute.bills._grain)
        CAST(line_item IS NOT NULL OR model IS NOT NULL OR description IS NOT NULL AS INTEGER) * 4
            + CAST(project_id IS NOT NULL AS INTEGER) * 2 + CAST(api_key_id IS NOT NULL AS INTEGER) AS grain
    FROM provider_costs
),
bill_grains AS (
    SELECT *, max(grain) OVER (PARTITION BY charge_day, provider, batch_id) AS pull_grain FROM bill_rows
),
bill_pulls AS (
    SELECT *, pull_grain = max(pull_grain) OVER (PARTITION BY charge_day, provider) AS kept FROM bill_grains
),
bills AS (
    SELECT
        b.charge_day, b.provider,
        CASE WHEN b.bill_model IS NOT NULL THEN coalesce(r.price_model, b.bill_model) END AS model,
        sum(b.amount_usd) FILTER (WHERE b.kept) AS billed_cost_usd,
        sum(b.amount_usd) FILTER (WHERE NOT b.kept) AS superseded_billed_usd
    FROM bill_pulls AS b
    LEFT JOIN model_resolutions AS r ON r.provider = b.provider AND r.model = b.bill_model
    GROUP BY 1, 2, 3
),
bill_days AS (
    SELECT charge_day, provider, bool_or(model IS NOT NULL AND billed_cost_usd IS NOT NULL) AS by_model
    FROM bills
    GROUP BY 1, 2
),
usage_lines AS (
    SELECT
        charge_day, provider, coalesce(price_model, model) AS model, cost_usd, line_type,
        source IN ('openai-usage', 'anthropic-usage') AS provider_measured
    FROM spend_lines
    WHERE kind = 'tokens' AND line_type IN ('usage', 'provider_usage')
),
measures AS (
    SELECT
        charge_day, provider,
        CASE WHEN bool_or(NOT provider_measured) THEN 'gateway' ELSE 'provider_usage' END AS measure
    FROM usage_lines
    GROUP BY 1, 2
),
parts AS (
    SELECT
        charge_day, provider, model,
        sum(cost_usd) FILTER (WHERE NOT provider_measured) AS gateway_cost_usd,
        sum(cost_usd) FILTER (WHERE provider_measured) AS provider_usage_cost_usd,
        sum(cost_usd) FILTER (WHERE line_type = 'usage') AS priced_cost_usd,
        count(*) FILTER (WHERE line_type = 'usage' AND cost_usd IS NULL) AS unpriced_records,
        CAST(NULL AS DECIMAL(38, 12)) AS billed_cost_usd,
        CAST(NULL AS DECIMAL(38, 12)) AS superseded_billed_usd,
        CAST(NULL AS DECIMAL(38, 12)) AS counted_cost_usd
    FROM usage_lines
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT
        charge_day, provider, model, NULL, NULL, NULL, 0, billed_cost_usd, superseded_billed_usd, NULL
    FROM bills
    UNION ALL
    SELECT
        charge_day, provider, coalesce(price_model, model), NULL, NULL, NULL, 0, NULL, NULL, sum(cost_usd)
    FROM spend
    WHERE kind = 'tokens'
    GROUP BY 1, 2, 3
),
joined AS (
    SELECT
        p.provider, p.charge_day,
        CASE WHEN NOT coalesce(d.by_model, true) THEN NULL ELSE p.model END AS model,
        CASE WHEN d.by_model THEN 'model' WHEN NOT d.by_model THEN 'provider_day' END AS billed_by,
        m.measure,
        sum(p.gateway_cost_usd) AS gateway_cost_usd,
        sum(p.provider_usage_cost_usd) AS provider_usage_cost_usd,
        sum(p.priced_cost_usd) AS priced_cost_usd,
        CAST(sum(p.unpriced_records) AS BIGINT) AS unpriced_records,
        CASE WHEN d.provider IS NOT NULL THEN coalesce(sum(p.billed_cost_usd), 0) END AS billed_cost_usd,
        sum(p.superseded_billed_usd) AS superseded_billed_usd,
        sum(p.counted_cost_usd) AS counted_cost_usd
    FROM parts AS p
    LEFT JOIN bill_days AS d ON d.charge_day = p.charge_day AND d.provider = p.provider
    LEFT JOIN measures AS m ON m.charge_day = p.charge_day AND m.provider IS NOT DISTINCT FROM p.provider
    GROUP BY 1, 2, 3, 4, 5, d.provider
)
SELECT
    provider, charge_day, model, billed_by, measure,
    gateway_cost_usd, provider_usage_cost_usd, priced_cost_usd, unpriced_records,
    billed_cost_usd, superseded_billed_usd, counted_cost_usd,
    billed_cost_usd - coalesce(priced_cost_usd, 0) AS diff_usd,
    CAST(round(100 * (billed_cost_usd - priced_cost_usd) / nullif(priced_cost_usd, 0), 4) AS DECIMAL(18, 4))
        AS diff_pct
FROM joined;
