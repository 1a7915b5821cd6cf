-- name: 0003_gpu
-- description: GPU jobs (allocations) and cluster capacity, for GPU spend and idle cost.
CREATE TABLE IF NOT EXISTS gpu_jobs (
    key_hash          UHUGEINT NOT NULL,
    content_hash      UBIGINT NOT NULL,
    batch_id          BIGINT NOT NULL,
    source            VARCHAR NOT NULL,
    job_id            VARCHAR NOT NULL,
    start_ts          TIMESTAMPTZ NOT NULL,
    end_ts            TIMESTAMPTZ NOT NULL,
    charge_day        DATE NOT NULL,          -- UTC day of start_ts; pricing splits jobs across days
    gpu_type          VARCHAR NOT NULL,
    gpu_count         DECIMAL(38,9) NOT NULL, -- may be fractional: MIG slices, time-slicing
    gpu_seconds       DECIMAL(38,9) NOT NULL, -- GPU time: wall seconds x gpu_count
    team              VARCHAR,
    feature           VARCHAR,
    project           VARCHAR,
    "user"            VARCHAR,
    cluster           VARCHAR,
    status            VARCHAR,
    tags              JSON,
    reported_cost_usd DECIMAL(38,12),
    extra             JSON
);

CREATE TABLE IF NOT EXISTS gpu_capacity (
    key_hash     UHUGEINT NOT NULL,
    content_hash UBIGINT NOT NULL,
    batch_id     BIGINT NOT NULL,
    source       VARCHAR NOT NULL,
    capacity_id  VARCHAR NOT NULL,   -- cluster/gpu_type/start unless the record names one
    cluster      VARCHAR NOT NULL,
    gpu_type     VARCHAR NOT NULL,
    gpu_count    DECIMAL(38,9) NOT NULL,
    start_ts     TIMESTAMPTZ NOT NULL,
    end_ts       TIMESTAMPTZ NOT NULL,
    hourly_rate  DECIMAL(38,12),     -- per GPU-hour; else the catalog's rate for gpu_type
    extra        JSON
);
