-- name: unpriced_usage
-- description: Usage no catalog entry prices (the __unpriced__ bucket): which models, how many records and
--   tokens, per team, and how each model name failed to resolve.
-- grain: provider, model, team
CREATE OR REPLACE VIEW unpriced_usage AS
SELECT
    s.provider, s.model, s.team,
    count(*) AS records, sum(s.requests) AS requests,
    sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens,
    min(s.charge_day) AS first_day, max(s.charge_day) AS last_day,
    any_value(r.resolution) AS resolution
FROM spend_lines s
LEFT JOIN model_resolutions r ON r.model = s.model AND r.provider IS NOT DISTINCT FROM s.provider
WHERE s.line_type = 'usage' AND s.cost_usd IS NULL
GROUP BY ALL;
