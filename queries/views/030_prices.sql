-- name: prices
-- description: The effective-dated price catalog in use: genai-prices and your overrides, USD per million
--   tokens by kind, each row valid over [valid_from, valid_to) and from the source named.
-- grain: provider, model, service_tier, context_above, tod window, valid_from
CREATE OR REPLACE VIEW prices AS
SELECT
    price_provider AS provider, price_model AS model, model_name, service_tier, context_above,
    tod_start_min, tod_end_min, valid_from, valid_to,
    input_mtok, cached_input_mtok, cache_write_mtok, cache_write_1h_mtok, output_mtok, reasoning_mtok,
    requests_kusd, other_prices, kind, source, source_url
FROM price_catalog;
