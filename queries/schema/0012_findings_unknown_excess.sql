-- name: 0012_findings_unknown_excess
-- description: A finding's excess may be unknown (NULL): a retry chain whose wasted attempts have no known price.
ALTER TABLE findings ALTER COLUMN excess_cost_usd DROP NOT NULL;
