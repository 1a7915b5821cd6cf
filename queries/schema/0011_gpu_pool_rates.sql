-- name: 0011_gpu_pool_rates
-- description: The rate each GPU pool (UTC day, cluster, GPU type) was first priced with. A rebuild of the day
--   (a late job, a restatement, a later as_of) prices the pool at this rate again, so a price change never
--   rewrites past GPU and idle costs; only `finops reprice` resolves the rates of its period anew. A capacity
--   record's own hourly_rate is data, not a price, and always wins: pools priced by one are not recorded.
CREATE TABLE IF NOT EXISTS gpu_pool_rates (
    charge_day    DATE NOT NULL,
    cluster       VARCHAR,              -- NULL: jobs that named no cluster
    gpu_type      VARCHAR NOT NULL,
    hourly_usd    DECIMAL(38,12),       -- NULL: no rate was known, and the pool's costs are NULL (__unpriced__)
    price_source  VARCHAR,              -- as spend_lines.price_source: an overrides file line, the default list
    run_id        BIGINT NOT NULL,      -- the run or reprice that recorded it
    recorded_at   TIMESTAMPTZ NOT NULL
);

-- Pools priced before this table existed: the gpu_rates row their lines name (the overrides of the last run,
-- or the bundled defaults), when it gives their cost to the last digit (cost x 3600 within 0.5e-12 x 3600 of
-- GPU-seconds x rate); a pool no such row explains is left out and takes the rates in force when next rebuilt.
INSERT INTO gpu_pool_rates
WITH pools AS (
    SELECT charge_day, provider AS cluster, gpu_type, min(price_source) AS price_source,
           sum(gpu_seconds) AS gpu_seconds, sum(cost_usd) AS cost_usd, max(run_id) AS run_id
    FROM spend_lines
    WHERE line_type IN ('gpu', 'idle') AND gpu_type IS NOT NULL
    GROUP BY charge_day, provider, gpu_type
    HAVING count(DISTINCT price_source) <= 1 AND NOT coalesce(min(price_source) LIKE 'capacity %', false)
),
explained AS (
    SELECT p.charge_day, p.cluster, p.gpu_type, max(r.hourly_usd) AS hourly_usd, p.price_source, p.run_id
    FROM pools p
    JOIN gpu_rates r
        ON r.gpu_type = p.gpu_type
        AND (r.cluster IS NULL OR r.cluster = p.cluster)
        AND r.valid_from <= p.charge_day AND (r.valid_to IS NULL OR p.charge_day < r.valid_to)
        AND (r.source = p.price_source
             OR (r.source = 'default' AND p.price_source = 'default list price (gpu_rates_default.csv)'))
    WHERE abs(p.cost_usd * 3600 - TRY(p.gpu_seconds * r.hourly_usd)) <= 0.000000002
    GROUP BY p.charge_day, p.cluster, p.gpu_type, p.price_source, p.run_id
)
SELECT charge_day, cluster, gpu_type, hourly_usd, price_source, run_id, now() FROM explained
UNION ALL
SELECT charge_day, cluster, gpu_type, NULL, NULL, run_id, now() FROM pools WHERE price_source IS NULL;
