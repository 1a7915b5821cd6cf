-- name: spend
-- description: One priced and attributed cost line: a usage record, a GPU job's day, idle GPU capacity,
--   or a provider-bill allocation; every dollar has a team or a named bucket (__unattributed__, __idle__,
--   __unobserved__). cost_usd is NULL (never 0) for usage with no known price (__unpriced__).
--   Only what counts in totals: a provider's usage buckets for a provider and UTC day that the gateway
--   also measured (line_type 'provider_usage') are left out; the reconciliation view shows them.
-- grain: one line
CREATE OR REPLACE VIEW spend AS
SELECT
    ts, charge_day, source, provider, model, team, feature, project, "user", kind, cost_usd,
    input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, requests,
    trace_id, request_id, attempt, status,
    line_type, list_cost_usd, price_model, service_tier, attribution, price_source, gpu_type, gpu_seconds, run_id
FROM spend_lines
WHERE line_type <> 'provider_usage';
