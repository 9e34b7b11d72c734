"""Where a fact came from, and its position in time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta


def ordering_key(event_time: datetime, event_id: str) -> str:
    """A sortable position in time: fixed-width UTC time, then the event id to break ties.

    EventBridge times have one-second resolution, so two events in the same second are ordered by their
    ids: arbitrary, but the same on every replica and every retry.
    """
    utc = event_time.astimezone(UTC) if event_time.tzinfo else event_time.replace(tzinfo=UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S.%fZ}#{event_id}"


def key_time(key: str) -> datetime | None:
    """The time an `ordering_key` (or a key derived from one by suffixing it) starts with; None if none."""
    try:
        return datetime.strptime(key[:27], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


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

    @property
    def second(self) -> str:
        """The second this event happened in (EventBridge's resolution), as its position starts with it."""
        return self.key[:19]

    def last_in_its_second(self) -> SourceEvent:
        """This event placed after every event of its second: a same-second tie the registry says it won.

        EventBridge times are whole seconds, so no event of the second sits at its last microsecond.
        """
        start = self.event_time.replace(microsecond=0)
        return replace(self, event_time=start + timedelta(microseconds=999_999))

    def just_before_its_second(self) -> SourceEvent:
        """This event placed before every event of its second: a same-second tie the registry says it lost."""
        start = self.event_time.replace(microsecond=0)
        return replace(self, event_time=start - timedelta(microseconds=1))
