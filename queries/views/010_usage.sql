-- name: usage
-- description: Every normalised usage record: a request attempt, a provider usage bucket, or a GPU job.
-- grain: one record (source, request_id)
CREATE OR REPLACE VIEW usage AS
SELECT
    source, request_id, ts, ts_end, charge_day, 'tokens' AS kind,
    provider, provider_inferred, model, team, feature, project, "user", environment, api_key, tags,
    trace_id, attempt, status, prompt_hash,
    input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens,
    requests, service_tier, latency_ms, reported_cost_usd,
    CAST(NULL AS VARCHAR) AS gpu_type, CAST(NULL AS DECIMAL(38,9)) AS gpu_count,
    CAST(NULL AS DECIMAL(38,9)) AS gpu_seconds, CAST(NULL AS VARCHAR) AS cluster,
    extra, batch_id
FROM usage_events
UNION ALL
SELECT
    source, job_id AS request_id, start_ts AS ts, end_ts AS ts_end, charge_day, 'gpu' AS kind,
    CAST(NULL AS VARCHAR) AS provider, false AS provider_inferred, gpu_type AS model, team, feature, project, "user",
    CAST(NULL AS VARCHAR) AS environment, CAST(NULL AS VARCHAR) AS api_key, tags,
    CAST(NULL AS VARCHAR) AS trace_id, CAST(NULL AS INTEGER) AS attempt, status, CAST(NULL AS VARCHAR) AS prompt_hash,
    0 AS input_tokens, 0 AS cached_input_tokens, 0 AS cache_write_tokens, 0 AS cache_write_1h_tokens, 0 AS output_tokens, 0 AS reasoning_tokens,
    1 AS requests, CAST(NULL AS VARCHAR) AS service_tier, CAST(NULL AS DECIMAL(38,9)) AS latency_ms, reported_cost_usd,
    gpu_type, gpu_count, gpu_seconds, cluster,
    extra, batch_id
FROM gpu_jobs;
