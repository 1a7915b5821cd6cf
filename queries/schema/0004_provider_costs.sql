-- name: 0004_provider_costs
-- description: Provider-billed cost lines (OpenAI Costs API, Anthropic cost report): the billed truth.
CREATE TABLE IF NOT EXISTS provider_costs (
    key_hash       UHUGEINT NOT NULL,
    content_hash   UBIGINT NOT NULL,
    batch_id       BIGINT NOT NULL,
    source         VARCHAR NOT NULL,
    record_key     VARCHAR NOT NULL,
    provider       VARCHAR NOT NULL,
    bucket_start   TIMESTAMPTZ NOT NULL,
    bucket_end     TIMESTAMPTZ,
    charge_day     DATE NOT NULL,
    project_id     VARCHAR,
    api_key_id     VARCHAR,
    workspace_id   VARCHAR,
    line_item      VARCHAR,
    model          VARCHAR,
    cost_type      VARCHAR,
    token_type     VARCHAR,
    service_tier   VARCHAR,
    context_window VARCHAR,
    description    VARCHAR,
    amount_usd     DECIMAL(38,12) NOT NULL,
    currency       VARCHAR NOT NULL,    -- the currency the provider reported in
    quantity       DECIMAL(38,9),
    quantity_unit  VARCHAR,
    extra          JSON
);
