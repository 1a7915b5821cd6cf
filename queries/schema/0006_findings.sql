-- name: 0006_findings
-- description: Detected problems (retry storms, cost spikes, outlier requests, ...), one row per incident.
CREATE TABLE IF NOT EXISTS findings (
    finding_id      VARCHAR PRIMARY KEY,   -- stable: the same incident keeps its id across runs
    kind            VARCHAR NOT NULL,      -- retry_chain | retry_storm | cost_spike | level_shift | outlier_request | runaway_session | ...
    detector        VARCHAR NOT NULL,      -- which detector (and grain) found it
    team            VARCHAR,
    feature         VARCHAR,
    provider        VARCHAR,
    model           VARCHAR,
    subject         VARCHAR NOT NULL,      -- what the finding is about, e.g. team=support/feature=chat
    window_start    TIMESTAMPTZ NOT NULL,  -- half-open [window_start, window_end)
    window_end      TIMESTAMPTZ NOT NULL,
    trace_id        VARCHAR,               -- when the finding is one trace
    request_id      VARCHAR,               -- when the finding is one request
    metric          VARCHAR NOT NULL,      -- what observed/expected measure, e.g. cost_usd, attempts, retry_share
    observed        DOUBLE,
    expected        DOUBLE,
    excess_cost_usd DECIMAL(38,12) NOT NULL,  -- the dollars the problem cost beyond the expected level
    score           DOUBLE NOT NULL,       -- 0..1
    severity        VARCHAR NOT NULL,      -- low | medium | high | critical
    evidence        JSON NOT NULL,         -- ids of the events involved (trace ids, request ids), and counts
    details         JSON,                  -- detector-specific figures (error mix, amplification, ...)
    first_run_id    BIGINT NOT NULL,
    last_run_id     BIGINT NOT NULL,
    detected_at     TIMESTAMPTZ NOT NULL
);
