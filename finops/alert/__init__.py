"""Stage 6: budgets x actual spend x forecasts x findings -> alerts, once each, delivered through an outbox.

budgets.py   budgets: validation and create / update / delete / list / get (CLI and API call these)
periods.py   months, quarters and custom ranges on UTC calendar boundaries
machine.py   the alert state machine (armed / firing, hysteresis, recovery), pure
evaluate.py  `alert_step`: measure every budget's periods, decide, write the ledger and the outbox
payload.py   what an alert says (JSON payload, one-line message)
deliver.py   drain the outbox: signed webhooks, Slack-compatible webhooks, SMTP; retries, 410
store.py / outbox.py   the stage's SQL
"""

from __future__ import annotations

from finops.alert.evaluate import alert_step
from finops.alert.locks import LEDGER_LOCK

__all__ = ["LEDGER_LOCK", "alert_step"]
