-- name: gpu_utilisation
-- description: GPU capacity against use per cluster, GPU type and UTC day (a pool): capacity, allocated and idle
--   GPU-hours, utilisation (allocated / capacity), over-allocation (jobs beyond the declared capacity; idle is then
--   0, never negative), and the cost of the jobs and of the idle capacity, whichever owners the idle policy gave it
--   to. Capacity counts up to the last run's as_of. The *_gpu_seconds columns are exact; *_gpu_hours are rounded
--   to 6 places for reading. capacity_gpu_seconds is NULL for a pool without capacity records (no idle is known);
--   costs are NULL when the GPU type has no rate (price_source NULL).
-- grain: cluster, gpu_type, charge_day
CREATE OR REPLACE VIEW gpu_utilisation AS
WITH cutoff AS (
    SELECT coalesce((SELECT as_of FROM runs WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT 1),
                    CAST('infinity' AS TIMESTAMPTZ)) AS as_of
),
capacity_days AS (
    SELECT
        cluster, gpu_type, gpu_count, CAST(day_start AS DATE) AS charge_day,
        greatest(start_ts, day_start) AS part_start,
        least(end_ts, day_start + INTERVAL 1 DAY, (SELECT as_of FROM cutoff)) AS part_end
    FROM (
        SELECT *, unnest(generate_series(date_trunc('day', start_ts), end_ts - INTERVAL 1 MICROSECOND, INTERVAL 1 DAY))
            AS day_start
        FROM gpu_capacity
        WHERE end_ts > start_ts AND start_ts < (SELECT as_of FROM cutoff)
    )
),
capacity AS (
    -- the same arithmetic as the pricing job: microseconds x nano-GPUs, rounded half up to the nano-GPU-second
    SELECT
        cluster, gpu_type, charge_day,
        CAST(sum((CAST(epoch_us(part_end) - epoch_us(part_start) AS HUGEINT) * CAST(gpu_count * 1000000000 AS HUGEINT)
                  + 500000) // 1000000) AS DECIMAL(38, 0)) * 0.000000001 AS capacity_gpu_seconds
    FROM capacity_days
    WHERE part_end > part_start
    GROUP BY ALL
),
lines AS (
    SELECT
        provider AS cluster, gpu_type, charge_day,
        coalesce(sum(gpu_seconds) FILTER (line_type = 'gpu'), 0) AS allocated_gpu_seconds,
        coalesce(sum(gpu_seconds) FILTER (line_type = 'idle'), 0) AS idle_gpu_seconds,
        sum(cost_usd) FILTER (line_type = 'gpu') AS allocated_cost_usd,
        sum(cost_usd) FILTER (line_type = 'idle') AS idle_cost_usd,
        max(price_source) AS price_source
    FROM spend_lines
    WHERE kind = 'gpu' AND line_type IN ('gpu', 'idle')
    GROUP BY ALL
),
pools AS (
    SELECT
        coalesce(l.cluster, c.cluster) AS cluster,
        coalesce(l.gpu_type, c.gpu_type) AS gpu_type,
        coalesce(l.charge_day, c.charge_day) AS charge_day,
        c.capacity_gpu_seconds,
        coalesce(l.allocated_gpu_seconds, 0) AS allocated_gpu_seconds,
        coalesce(l.idle_gpu_seconds, 0) AS idle_gpu_seconds,
        l.allocated_cost_usd, l.idle_cost_usd, l.price_source
    FROM lines l
    FULL OUTER JOIN capacity c ON c.cluster = l.cluster AND c.gpu_type = l.gpu_type AND c.charge_day = l.charge_day
)
SELECT
    cluster, gpu_type, charge_day,
    capacity_gpu_seconds, allocated_gpu_seconds, idle_gpu_seconds,
    CASE WHEN capacity_gpu_seconds IS NOT NULL THEN greatest(allocated_gpu_seconds - capacity_gpu_seconds, 0) END
        AS overallocated_gpu_seconds,
    CAST(round(capacity_gpu_seconds / 3600, 6) AS DECIMAL(38, 6)) AS capacity_gpu_hours,
    CAST(round(allocated_gpu_seconds / 3600, 6) AS DECIMAL(38, 6)) AS allocated_gpu_hours,
    CAST(round(idle_gpu_seconds / 3600, 6) AS DECIMAL(38, 6)) AS idle_gpu_hours,
    CASE WHEN capacity_gpu_seconds IS NOT NULL
         THEN CAST(round(greatest(allocated_gpu_seconds - capacity_gpu_seconds, 0) / 3600, 6) AS DECIMAL(38, 6)) END
        AS overallocated_gpu_hours,
    CASE WHEN capacity_gpu_seconds > 0 THEN CAST(allocated_gpu_seconds AS DOUBLE) / CAST(capacity_gpu_seconds AS DOUBLE) END
        AS utilisation,
    CASE WHEN price_source IS NOT NULL THEN coalesce(allocated_cost_usd, 0) END AS allocated_cost_usd,
    CASE WHEN price_source IS NOT NULL THEN coalesce(idle_cost_usd, 0) END AS idle_cost_usd,
    price_source
FROM pools;
