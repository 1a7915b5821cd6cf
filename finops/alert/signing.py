"""Standard Webhooks signatures (https://www.standardwebhooks.com): how finops signs, and a reference verifier.

A request carries `webhook-id` (the alert id: the same on every retry, so receivers deduplicate on it),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
`{webhook-id}.{webhook-timestamp}.{raw body}` under the secret's key (the base64 after `whsec_`); several
space-separated signatures while a secret is being rotated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from pydantic import SecretStr

from finops.alert.settings import webhook_keys

__all__ = ["sign", "signature_headers", "verify"]


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<sig>` for each key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def signature_headers(keys: list[bytes], msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers (no `webhook-signature` when there is no key)."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts)}
    if keys:
        headers["webhook-signature"] = sign(keys, msg_id, ts, body)
    return headers


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300, now: float | None = None
) -> None:
    """Raise `ValueError` unless one signature matches and the timestamp is within `tolerance_s` (a receiver's
    side, for Python receivers and our own tests of other implementations)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, ts_text, signatures = (lowered[h] for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        timestamp = int(ts_text)
    except (KeyError, ValueError):
        raise ValueError("missing or malformed webhook-id, webhook-timestamp or webhook-signature header") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise ValueError("webhook-timestamp is too far from now")
    expected = sign(webhook_keys(SecretStr(secret)), msg_id, timestamp, body).split()
    given = [s for s in signatures.split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(e, g) for e in expected for g in given):
        raise ValueError("no matching signature")
