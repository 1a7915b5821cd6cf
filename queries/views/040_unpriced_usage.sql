-- name: unpriced_usage
-- description: Usage no catalog entry, override or rate prices (the __unpriced__ bucket): which models (for GPU
--   jobs, which GPU types on which cluster), how many records and tokens (GPU-seconds), per team, and why. A GPU
--   job counts once however many UTC days it ran; its days' GPU-seconds add up.
-- grain: provider, model, team, kind
CREATE OR REPLACE VIEW unpriced_usage AS
SELECT
    s.provider, s.model, s.team,
    count(*) FILTER (s.line_type = 'usage')
        + count(DISTINCT [s.source, s.request_id]) FILTER (s.line_type = 'gpu') AS records,
    sum(s.requests) AS requests,
    sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens,
    min(s.charge_day) AS first_day, max(s.charge_day) AS last_day,
    CASE
        WHEN s.kind = 'gpu' THEN 'no rate per GPU-hour for this GPU type when its day was first priced: no capacity '
            || 'hourly_rate, no gpu row of the price overrides, no default list price (finops reprice prices it anew)'
        ELSE any_value(r.resolution)
    END AS resolution,
    s.kind,
    sum(s.gpu_seconds) AS gpu_seconds
FROM spend_lines s
LEFT JOIN model_resolutions r
    ON s.kind = 'tokens' AND r.model = s.model AND r.provider IS NOT DISTINCT FROM s.provider
WHERE s.line_type IN ('usage', 'gpu') AND s.cost_usd IS NULL
GROUP BY s.provider, s.model, s.team, s.kind;
