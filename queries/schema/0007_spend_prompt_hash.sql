-- name: 0007_spend_prompt_hash
-- description: spend_lines keep the prompt hash, so retry chains can be tied together without a trace id.
ALTER TABLE spend_lines ADD COLUMN IF NOT EXISTS prompt_hash VARCHAR USING COMPRESSION uncompressed;
ALTER TABLE spend_lines ADD COLUMN IF NOT EXISTS latency_ms DECIMAL(38,9);
