"""Alert severities, ordered, plus the scanners' finding severities mapped onto one vocabulary."""

from __future__ import annotations

from enum import StrEnum

_ORDER = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")


class Severity(StrEnum):
    """How urgently security staff should look at an alert."""

    INFO = "INFO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        """Position in the order INFO < LOW < MEDIUM < HIGH < CRITICAL."""
        return _ORDER.index(self.value)

    def raised(self, steps: int = 1) -> Severity:
        """This severity raised by a number of steps, capped at CRITICAL."""
        return Severity(_ORDER[min(self.rank + steps, len(_ORDER) - 1)])
