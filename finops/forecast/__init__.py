"""Stage 5: daily attributed spend -> month, quarter and custom-period totals with 80 % / 95 % intervals and
projected budget breach dates, per team, budgeted feature and the company (table `forecasts`).

    model.py     (series_id, charge_day, cost_usd) -> daily point paths, a method per series (the mean of
                 AutoTheta and DynamicOptimizedTheta, or the seasonal naive where that backtests better or history
                 is short) and conformal multipliers for H-day totals
    periods.py   paths + exact actuals -> period totals, intervals, breach dates (DECIMAL at this boundary)
    step.py      forecast_step(db, as_of, run_id): spend_daily + budgets -> forecasts (what `finops run` calls)
"""

from __future__ import annotations

from finops.forecast.model import DailyForecast, ForecastConfig, daily_forecast
from finops.forecast.periods import Period, breach_dates, calendar_periods, custom_period, period_totals
from finops.forecast.step import forecast_step, scope_history

__all__ = [
    "DailyForecast",
    "ForecastConfig",
    "Period",
    "breach_dates",
    "calendar_periods",
    "custom_period",
    "daily_forecast",
    "forecast_step",
    "period_totals",
    "scope_history",
]
