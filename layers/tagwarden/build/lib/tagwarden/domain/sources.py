"""Where a fact came from, and its position in time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def ordering_key(event_time: datetime, event_id: str) -> str:
    """A sortable position in time: fixed-width UTC time, then the event id to break ties.

    EventBridge times have one-second resolution, so two events in the same second are ordered by their
    ids: arbitrary, but the same on every replica and every retry.
    """
    utc = event_time.astimezone(UTC) if event_time.tzinfo else event_time.replace(tzinfo=UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S.%fZ}#{event_id}"


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """The event a fact came from: who reported it, when, and under which id."""

    event_id: str
    event_time: datetime
    account: str | None = None
    region: str | None = None

    @property
    def key(self) -> str:
        """This event's position in a tag's history."""
        return ordering_key(self.event_time, self.event_id)
