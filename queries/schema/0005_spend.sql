-- name: 0005_spend
-- description: The price catalog in use, model resolutions, ownership rules, and attributed spend.

-- Effective-dated prices: genai-prices rows (kind 'catalog') and the user's overrides (kind 'override').
CREATE TABLE IF NOT EXISTS price_catalog (
    kind                VARCHAR NOT NULL,   -- catalog | override
    price_provider      VARCHAR NOT NULL,
    price_model         VARCHAR NOT NULL,
    model_name          VARCHAR,
    service_tier        VARCHAR NOT NULL,   -- default | batch | flex | priority
    context_above       BIGINT,             -- applies when input tokens > this; NULL: base tier
    tod_start_min       INTEGER,            -- minutes after 00:00 UTC; NULL: all day
    tod_end_min         INTEGER,
    valid_from          TIMESTAMPTZ NOT NULL,
    valid_to            TIMESTAMPTZ,        -- exclusive; NULL: still in force
    input_mtok          DECIMAL(38,18),     -- USD per million tokens
    cached_input_mtok   DECIMAL(38,18),
    cache_write_mtok    DECIMAL(38,18),
    cache_write_1h_mtok DECIMAL(38,18),
    output_mtok         DECIMAL(38,18),
    reasoning_mtok      DECIMAL(38,18),
    requests_kusd       DECIMAL(38,18),     -- USD per 1000 requests
    other_prices        JSON,
    source              VARCHAR NOT NULL,   -- 'genai-prices 0.2.3' or 'overrides.csv line 4'
    source_url          VARCHAR,
    loaded_at           TIMESTAMPTZ NOT NULL
);

-- How each model name seen in usage resolved to a catalog entry (or did not).
CREATE TABLE IF NOT EXISTS model_resolutions (
    provider       VARCHAR,
    model          VARCHAR NOT NULL,
    price_provider VARCHAR,
    price_model    VARCHAR,
    tiers_apply    BOOLEAN NOT NULL,
    resolution     VARCHAR NOT NULL,
    resolved_at    TIMESTAMPTZ NOT NULL
);

-- Negotiated discounts (percent off the list price) per provider and model pattern, dated.
CREATE TABLE IF NOT EXISTS price_discounts (
    provider      VARCHAR NOT NULL,
    model_pattern VARCHAR NOT NULL,     -- a glob over the resolved model, e.g. gpt-4o* or *
    discount_pct  DECIMAL(9,6) NOT NULL,
    valid_from    DATE NOT NULL,
    valid_to      DATE,
    source        VARCHAR NOT NULL
);

-- GPU rates per GPU-hour, dated: the user's overrides first, then documented on-demand defaults.
CREATE TABLE IF NOT EXISTS gpu_rates (
    gpu_type      VARCHAR NOT NULL,
    cluster       VARCHAR,              -- NULL: any cluster
    hourly_usd    DECIMAL(38,12) NOT NULL,
    valid_from    DATE NOT NULL,
    valid_to      DATE,
    source        VARCHAR NOT NULL
);

-- Ownership rules (owners file), applied in the documented order.
CREATE TABLE IF NOT EXISTS ownership_rules (
    rule_kind   VARCHAR NOT NULL,       -- api_key | project | tag | api_key_pattern | model_pattern
    match_value VARCHAR NOT NULL,
    team        VARCHAR,
    feature     VARCHAR,
    valid_from  DATE,
    valid_to    DATE,
    source      VARCHAR NOT NULL
);

-- One attributed cost line: a priced usage record, a GPU job's day, idle capacity, or a bill line.
-- Per-record identifiers are stored uncompressed, as in usage_events (0002: why).
CREATE TABLE IF NOT EXISTS spend_lines (
    line_type           VARCHAR NOT NULL,   -- usage | gpu | idle | bill_adjustment | unobserved
    kind                VARCHAR NOT NULL,   -- tokens | gpu
    usage_key           UHUGEINT USING COMPRESSION uncompressed,  -- usage_events.key_hash (usage lines)
    usage_content       UBIGINT USING COMPRESSION uncompressed,  -- usage_events.content_hash when priced
    ts                  TIMESTAMPTZ,
    charge_day          DATE NOT NULL,
    source              VARCHAR,
    provider            VARCHAR,
    model               VARCHAR,
    price_model         VARCHAR,
    service_tier        VARCHAR,
    team                VARCHAR NOT NULL,
    feature             VARCHAR NOT NULL,
    project             VARCHAR,
    "user"              VARCHAR,
    attribution         VARCHAR NOT NULL,   -- which rule set team and feature
    list_cost_usd       DECIMAL(38,12),     -- at catalog list prices; NULL when unpriced
    cost_usd            DECIMAL(38,12),     -- after discounts and bill allocation; NULL when unpriced
    input_tokens        BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    requests            BIGINT NOT NULL,
    gpu_type            VARCHAR,
    gpu_seconds         DECIMAL(38,9),
    trace_id            VARCHAR USING COMPRESSION uncompressed,
    request_id          VARCHAR USING COMPRESSION uncompressed,
    attempt             INTEGER,
    status              VARCHAR,
    price_source        VARCHAR,            -- 'genai-prices 0.2.3', an override, a bill
    run_id              BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS spend_daily (
    charge_day          DATE NOT NULL,
    team                VARCHAR NOT NULL,
    feature             VARCHAR NOT NULL,
    provider            VARCHAR,
    model               VARCHAR,
    kind                VARCHAR NOT NULL,
    line_type           VARCHAR NOT NULL,
    cost_usd            DECIMAL(38,12),     -- NULL only when every line of the group is unpriced
    list_cost_usd       DECIMAL(38,12),
    requests            BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    unpriced_requests   BIGINT NOT NULL,    -- usage lines of the group without a price (__unpriced__)
    gpu_seconds         DECIMAL(38,9)
);

-- What the day-level lines of each UTC day were last computed from (a fingerprint of their inputs).
CREATE TABLE IF NOT EXISTS day_state (
    charge_day   DATE PRIMARY KEY,
    fingerprint  UBIGINT NOT NULL,
    run_id       BIGINT NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS run_id_seq START 1;
CREATE TABLE IF NOT EXISTS runs (
    run_id      BIGINT PRIMARY KEY,
    as_of       TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    summary     JSON
);

-- Each explicit reprice: the period, when, and the difference it made per team/feature/model.
CREATE TABLE IF NOT EXISTS reprices (
    run_id        BIGINT NOT NULL,
    period_start  DATE NOT NULL,
    period_end    DATE NOT NULL,
    team          VARCHAR NOT NULL,
    feature       VARCHAR NOT NULL,
    model         VARCHAR,
    old_cost_usd  DECIMAL(38,12),
    new_cost_usd  DECIMAL(38,12),
    diff_usd      DECIMAL(38,12)
);
