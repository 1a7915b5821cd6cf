"""`AlertSettings`: how budgets are evaluated and alerts delivered, read from `FINOPS_ALERT_*` variables.

Kept beside the stage rather than in `finops.settings` so the stage owns its knobs; the README's settings
table lists every field (`FINOPS_ALERT_<FIELD NAME IN CAPITALS>`).
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.errors import ConfigError

__all__ = ["AlertSettings", "load_alert_settings", "webhook_keys"]

SECRET_PREFIX = "whsec_"


class AlertSettings(BaseSettings):
    """Alert evaluation and delivery; each field reads `FINOPS_ALERT_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_ALERT_", frozen=True, extra="ignore")

    # ---- evaluation
    rearm_pct: Decimal = Field(
        Decimal(90),
        gt=0,
        le=100,
        description="Hysteresis: a fired condition recovers (a recovery notice, and it may fire again) only once its "
        "value falls below this percent of the threshold amount.",
    )
    forecast_min_history_days: int = Field(
        14, ge=0, description="Forecast alerts need at least this many days of spend history for the budget's scope."
    )
    forecast_basis: Literal["point", "lo80", "hi80"] = Field(
        "point",
        description="Which forecast figure is compared with the budget: the point forecast, or the low (cautious) or "
        "high (early) end of the 80 % interval.",
    )
    forecast_min_threshold_pct: int = Field(
        100, ge=1, le=1000, description="Forecast alerts fire for thresholds at or above this percent only."
    )
    finding_floor_usd: Decimal = Field(
        Decimal(50), ge=0, description="Findings whose excess cost reaches this many dollars alert the owning team."
    )
    finding_lookback_days: int = Field(
        7, ge=1, description="Findings that ended more than this many days before the evaluation time do not alert."
    )
    closed_period_grace_days: int = Field(
        3,
        ge=0,
        description="An ended period is still re-evaluated (late or restated data) for this many days, then closed.",
    )
    top_drivers: int = Field(3, ge=1, le=20, description="How many features, models and findings an alert names.")

    # ---- delivery
    webhook_secret: SecretStr | None = Field(
        None,
        description="Standard Webhooks signing secret(s), `whsec_<base64>`; several separated by spaces (rotation) "
        "each add a signature. Unset: webhooks go out unsigned.",
    )
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one delivery attempt (HTTP request or SMTP session).")
    max_attempts: int = Field(
        30,
        ge=1,
        description="Attempts per alert and channel before it is marked failed (12 to 23 hours of retries with the "
        "default delays).",
    )
    retry_base_s: float = Field(30.0, gt=0, description="First retry delay; doubled per attempt, with jitter.")
    retry_max_s: float = Field(3600.0, gt=0, description="Longest delay between two attempts.")
    retry_after_max_s: float = Field(86_400.0, gt=0, description="Longest `Retry-After` honoured.")
    batch_size: int = Field(100, ge=1, description="Deliveries claimed per batch while draining the outbox.")
    smtp_host: str | None = Field(None, description="SMTP server for email: channels.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_from: str = Field("finops@localhost", description="From address of alert e-mails.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP session with STARTTLS.")
    smtp_user: str | None = Field(None, description="SMTP login user (no login when unset).")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password.")

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            webhook_keys(value)
        return value


def webhook_keys(secret: SecretStr | None) -> list[bytes]:
    """The HMAC keys of `whsec_<base64>` secrets (space-separated for rotation)."""
    if secret is None:
        return []
    keys = []
    for part in secret.get_secret_value().split():
        encoded = part.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "expected whsec_ followed by base64, e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            ) from None
        if len(key) < 16:
            raise ValueError("the key is shorter than 16 bytes; use at least 24 random bytes")
        keys.append(key)
    return keys


def load_alert_settings(**overrides: object) -> AlertSettings:
    """Read `FINOPS_ALERT_*`, turning a bad value into one `ConfigError` sentence that names the variable."""
    try:
        return AlertSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = f"FINOPS_ALERT_{str(first['loc'][0]).upper()}" if first["loc"] else "FINOPS_ALERT_*"
        shown = "<secret>" if "SECRET" in name or "PASSWORD" in name else repr(first.get("input"))
        raise ConfigError(f"{name} has value {shown}. {first['msg']}.", setting=name) from None
