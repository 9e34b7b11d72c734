"""Scan results as the ledger keeps them: which digest was checked, when, by whom, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ScanStatus(StrEnum):
    """Whether the scanner finished; a FAILED scan checked nothing."""

    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


class Verdict(StrEnum):
    """`fail` when any finding is at or above the configured fail severity."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class ScanState:
    """The latest scan known for one digest."""

    status: ScanStatus
    scanned_at: datetime
    scanner: str
    verdict: Verdict | None = None
    finding_counts: dict[str, int] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        """A completed scan counts as 'scanned'; a failed one does not."""
        return self.status is ScanStatus.COMPLETE

    @property
    def passing(self) -> bool:
        """Completed with no finding at or above the fail severity."""
        return self.completed and self.verdict is Verdict.PASS
