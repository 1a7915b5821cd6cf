-- name: 0002_usage_events
-- description: Token usage: one row per request attempt (gateway, LiteLLM) or provider usage bucket.
-- Token buckets are inclusive (OpenAI / OpenTelemetry semantics): input_tokens includes cached and
-- cache-write tokens, output_tokens includes reasoning tokens.
-- The per-record identifiers (hashes, request, trace and prompt ids) are stored uncompressed: they are
-- nearly all distinct, DuckDB's dictionary/FSST analysis of them was most of the cost of writing a row
-- (10M rows: 8.5 s against 3.1 s for the three text ids) for about 2x less space on those columns only.
-- Databases created before this choice keep the automatic one; nothing else differs.
CREATE TABLE IF NOT EXISTS usage_events (
    key_hash            UHUGEINT NOT NULL USING COMPRESSION uncompressed,  -- 128-bit hash of (source, request_id): the dedup key
    content_hash        UBIGINT NOT NULL USING COMPRESSION uncompressed,  -- tells a restatement from a duplicate
    batch_id            BIGINT NOT NULL,
    source              VARCHAR NOT NULL,
    request_id          VARCHAR NOT NULL USING COMPRESSION uncompressed,  -- per attempt, or a deterministic key of a provider bucket
    ts                  TIMESTAMPTZ NOT NULL,
    ts_end              TIMESTAMPTZ,         -- end of a provider bucket
    charge_day          DATE NOT NULL,       -- UTC day of ts
    provider            VARCHAR,
    provider_inferred   BOOLEAN NOT NULL,
    model               VARCHAR,
    team                VARCHAR,
    feature             VARCHAR,
    project             VARCHAR,
    "user"              VARCHAR,
    environment         VARCHAR,
    api_key             VARCHAR,
    tags                JSON,
    trace_id            VARCHAR USING COMPRESSION uncompressed,
    attempt             INTEGER,
    status              VARCHAR,
    prompt_hash         VARCHAR USING COMPRESSION uncompressed,
    service_tier        VARCHAR,
    latency_ms          DECIMAL(38,9),
    input_tokens        BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,   -- of cache_write_tokens: written with a 1-hour TTL (Anthropic)
    output_tokens       BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    requests            BIGINT NOT NULL,
    reported_cost_usd   DECIMAL(38,12),      -- what the gateway reported; never summed with our price
    extra               JSON                 -- unknown input fields and source-specific quantities
);
