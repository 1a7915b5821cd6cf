"""Names shared across stages: the sentinel buckets every unowned dollar goes to (opencost's idea)."""

from __future__ import annotations

__all__ = ["IDLE", "SENTINELS", "SHARED", "UNATTRIBUTED", "UNOBSERVED", "UNPRICED"]

UNATTRIBUTED = "__unattributed__"  # no rule names an owner
UNPRICED = "__unpriced__"  # usage of a model no catalog entry prices: cost NULL, never 0
IDLE = "__idle__"  # GPU capacity nobody used, when the idle policy keeps it apart
SHARED = "__shared__"  # cost shared out by a declared policy
UNOBSERVED = "__unobserved__"  # billed by the provider, never seen by the gateway

SENTINELS = (UNATTRIBUTED, UNPRICED, IDLE, SHARED, UNOBSERVED)
