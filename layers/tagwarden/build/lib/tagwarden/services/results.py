"""What a function did with one event: the handler's return value, also written to the logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one event."""

    RECORDED = "recorded"
    LATE = "late"
    DUPLICATE = "duplicate"
    UNTAGGED = "untagged"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome and the ids of the alerts that went out."""

    outcome: Outcome
    alerts: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form, returned by the Lambda handler."""
        return {"outcome": self.outcome.value, "alerts": list(self.alerts)}
