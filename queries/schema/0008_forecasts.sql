-- name: 0008_forecasts
-- description: Period-end spend forecasts (month, quarter, custom budget periods) per team, budgeted feature
--   and the company, with 80 % and 95 % intervals for the period total and the projected budget breach date.
-- grain: team, feature, period, forecast_start (one forecast per scope and period per UTC day)
--
-- Scopes: team NULL and feature NULL is the company total (every team and bucket, __unattributed__ and
-- __idle__ included: a forecast of the total series, not the sum of the teams' forecasts); feature NULL is a
-- whole team; team and feature is a feature that has a budget.
-- Replacement: a run replaces the rows of its own UTC day (forecast_start = the UTC day of as_of) and keeps
-- the rows of other days, so the table holds one forecast per scope, period and day and the latest one is
--   SELECT * FROM forecasts WHERE team = $team AND feature IS NOT DISTINCT FROM $feature
--   AND period = $period AND as_of <= $as_of ORDER BY as_of DESC LIMIT 1
-- Money: actual_to_date_usd is the exact sum of spend_daily; the model's floats are rounded to 1e-6 USD
-- when they become DECIMAL, so forecast_usd = actual_to_date_usd + remaining_usd exactly.
CREATE TABLE IF NOT EXISTS forecasts (
    team               VARCHAR,                 -- NULL (with feature NULL): the company total
    feature            VARCHAR,                 -- NULL: the whole team
    scope              VARCHAR NOT NULL,        -- company | team | feature
    period             VARCHAR NOT NULL,        -- 2026-11 | 2026-Q4 | 2026-11-10/2026-12-10 (custom)
    period_kind        VARCHAR NOT NULL,        -- month | quarter | custom
    period_start       DATE NOT NULL,           -- first UTC day of the period
    period_end         DATE NOT NULL,           -- exclusive
    as_of              TIMESTAMPTZ NOT NULL,    -- the run's evaluation time (`--as-of`)
    forecast_start     DATE NOT NULL,           -- the UTC day of as_of: first day forecast; days before are actuals
    history_days       INTEGER NOT NULL,        -- days of history the model saw (first day with spend .. forecast_start - 1, at most 365)
    actual_to_date_usd DECIMAL(38,12) NOT NULL, -- spend of [period_start, forecast_start), exact
    remaining_days     INTEGER NOT NULL,        -- days of [forecast_start, period_end)
    remaining_usd      DECIMAL(38,12) NOT NULL, -- point forecast of those days
    forecast_usd       DECIMAL(38,12) NOT NULL, -- actual_to_date_usd + remaining_usd: the period total
    lo80_usd           DECIMAL(38,12) NOT NULL, -- 80 % interval of the period total (10 % / 90 % quantiles)
    hi80_usd           DECIMAL(38,12) NOT NULL,
    lo95_usd           DECIMAL(38,12) NOT NULL, -- 95 % interval (2.5 % / 97.5 % quantiles)
    hi95_usd           DECIMAL(38,12) NOT NULL,
    daily_forecast_usd DECIMAL(38,12)[] NOT NULL, -- point forecast of each remaining day, from forecast_start
    method             VARCHAR NOT NULL,        -- ensemble(AutoETS,AutoTheta,MSTL) | seasonal_naive | window_average
    note               VARCHAR NOT NULL,        -- why this method, and what the interval rests on
    budget_id          BIGINT,                  -- the budget breach_date is computed for (smallest amount of the scope and period)
    budget_usd         DECIMAL(38,6),           -- its amount
    breach_date        DATE,                    -- first UTC day the cumulative spend (actual, then forecast) exceeds budget_usd; NULL: no budget or no breach in the period
    input_fingerprint  VARCHAR NOT NULL,        -- digest of the inputs; a later run of the day with the same inputs only restamps as_of / run_id
    run_id             BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);
