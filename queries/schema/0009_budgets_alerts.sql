-- name: 0009_budgets_alerts
-- description: Budgets, the alert ledger, the delivery outbox and endpoint state, evaluated periods, and
--   the watched files the scheduler has ingested.

-- One budget: a scope (team; team + feature; or a usage tag, optionally within a team), a period kind and
-- an amount. Deleting a budget deactivates it, so the alerts that name it keep their meaning.
CREATE SEQUENCE IF NOT EXISTS budget_id_seq START 1;
CREATE TABLE IF NOT EXISTS budgets (
    budget_id    BIGINT PRIMARY KEY,
    team         VARCHAR,                 -- NULL only for a tag budget across every team
    feature      VARCHAR,                 -- NULL: the whole team
    tag          VARCHAR,                 -- 'key=value' on usage tags; NULL: no tag filter
    period_kind  VARCHAR NOT NULL,        -- month | quarter | custom
    period_start DATE,                    -- custom only: first UTC day
    period_end   DATE,                    -- custom only: exclusive
    amount_usd   DECIMAL(38,6) NOT NULL,
    thresholds   INTEGER[] NOT NULL,      -- percent of amount_usd, ascending, 1..1000
    channels     VARCHAR[] NOT NULL,      -- webhook:URL | slack:URL | email:ADDRESS
    active       BOOLEAN NOT NULL DEFAULT true,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);

-- The ledger: every alert ever fired, once. `dedup_key` names the condition and its episode
-- (budget/kind/threshold/period/episode, or finding/<finding_id>); `alert_id` is derived from it and is
-- the `webhook-id` receivers deduplicate on.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id        VARCHAR PRIMARY KEY,
    dedup_key       VARCHAR NOT NULL UNIQUE,
    budget_id       BIGINT NOT NULL,
    kind            VARCHAR NOT NULL,     -- actual | forecast | finding | recovery
    condition_kind  VARCHAR,              -- actual | forecast: what a recovery recovers (NULL for finding)
    threshold_pct   INTEGER,              -- NULL for finding
    period          VARCHAR NOT NULL,     -- 2026-11 | 2026-Q4 | 2026-11-01/2027-01-01
    period_start    DATE NOT NULL,
    period_end      DATE NOT NULL,        -- exclusive
    episode         INTEGER NOT NULL,     -- 1, then 2 after a recovery re-armed the condition, ...
    recovers        VARCHAR,              -- recovery: the alert_id it follows
    finding_id      VARCHAR,              -- finding: the finding it reports
    fired_at        TIMESTAMPTZ NOT NULL, -- the evaluation time (`--as-of`)
    created_at      TIMESTAMPTZ NOT NULL, -- wall clock
    run_id          BIGINT,
    state           VARCHAR NOT NULL,     -- open | recovered | closed
    state_changed_at TIMESTAMPTZ NOT NULL,
    delivery        VARCHAR NOT NULL,     -- none | pending | delivered | failed
    amount_usd      DECIMAL(38,6) NOT NULL,
    actual_usd      DECIMAL(38,12) NOT NULL,
    forecast_usd    DECIMAL(38,12),
    message         VARCHAR NOT NULL,     -- one line, as sent
    payload         JSON NOT NULL         -- everything a receiver gets (budget, actual, forecast, drivers)
);

-- The outbox: one row per alert and channel. Sent by `finops alerts deliver` / the scheduler, never
-- inline; `next_attempt_at` is also the claim lease while a row is being sent.
CREATE SEQUENCE IF NOT EXISTS delivery_id_seq START 1;
CREATE TABLE IF NOT EXISTS alert_deliveries (
    delivery_id     BIGINT PRIMARY KEY,
    alert_id        VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,     -- as configured: webhook:URL | slack:URL | email:ADDRESS
    status          VARCHAR NOT NULL,     -- pending | delivered | failed | disabled
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ,
    last_attempt_at TIMESTAMPTZ,
    last_status     VARCHAR,              -- HTTP status or SMTP reply code of the last attempt
    last_error      VARCHAR,
    delivered_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (alert_id, channel)
);

-- Endpoints that answered 410 Gone: nothing more is sent there until re-enabled.
CREATE TABLE IF NOT EXISTS alert_endpoints (
    channel         VARCHAR PRIMARY KEY,
    disabled_at     TIMESTAMPTZ,
    disabled_reason VARCHAR,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- Each (budget, period) evaluated: when first and last, with what, and when it was closed for good.
CREATE TABLE IF NOT EXISTS budget_periods (
    budget_id       BIGINT NOT NULL,
    period          VARCHAR NOT NULL,
    period_start    DATE NOT NULL,
    period_end      DATE NOT NULL,
    evaluations     INTEGER NOT NULL,
    first_as_of     TIMESTAMPTZ NOT NULL,
    last_as_of      TIMESTAMPTZ NOT NULL,
    actual_usd      DECIMAL(38,12) NOT NULL,
    forecast_usd    DECIMAL(38,12),
    closed_at       TIMESTAMPTZ,          -- the evaluation time that closed it (period end + grace)
    PRIMARY KEY (budget_id, period)
);

-- Files under the scheduler's watched folders, as last ingested: an unchanged file is skipped.
CREATE TABLE IF NOT EXISTS watched_files (
    path         VARCHAR PRIMARY KEY,
    source       VARCHAR NOT NULL,
    size_bytes   BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL,
    batch_id     BIGINT,
    ingested_at  TIMESTAMPTZ NOT NULL
);
