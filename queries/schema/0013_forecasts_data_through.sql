-- name: 0013_forecasts_data_through
-- description: A forecast made while the newest data is days old forecasts those days instead of taking them as
--   $0: `forecast_day` is the UTC day of as_of (the day a run replaces; it was forecast_start), `data_through`
--   the newest day with any spend before it, and forecast_start the first day forecast (data_through + 1, or
--   the period's first day when the period starts later).
ALTER TABLE forecasts ADD COLUMN forecast_day DATE;
UPDATE forecasts SET forecast_day = forecast_start;
ALTER TABLE forecasts ADD COLUMN data_through DATE;
UPDATE forecasts SET data_through = forecast_start - 1;
