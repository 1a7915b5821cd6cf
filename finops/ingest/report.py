"""`IngestReport`: what happened to every record of one file (or one API push)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["IngestReport", "RejectSample"]


@dataclass(frozen=True)
class RejectSample:
    line_number: int | None
    record_path: str | None
    reason: str
    message: str


@dataclass
class IngestReport:
    """Counts for one file; `lines == accepted + duplicates + rejected` always holds."""

    batch_id: int
    source: str
    source_file: str
    target_table: str
    file_format: str
    detected: bool = False
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    restated: int = 0
    superseded: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    samples: list[RejectSample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def balanced(self) -> bool:
        return self.lines == self.accepted + self.duplicates + self.rejected

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("started_at", "finished_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        return data

    def summary(self) -> str:
        """One line: `gateway.jsonl: 1,000 read, 990 accepted, 5 duplicates, 5 rejected (...)`."""
        parts = [f"{self.lines:,} read", f"{self.accepted:,} accepted"]
        if self.restated:
            parts[-1] += f" ({self.restated:,} restated)"
        parts.append(f"{self.duplicates:,} duplicates")
        if self.superseded:
            parts[-1] += f" ({self.superseded:,} earlier revisions)"
        rejected = f"{self.rejected:,} rejected"
        if self.rejected_by_reason:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(self.rejected_by_reason.items(), key=lambda x: -x[1]))
            rejected += f" ({reasons})"
        parts.append(rejected)
        return f"{self.source_file} [{self.source}]: " + ", ".join(parts)
