"""Facts that need no action."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """A valid event that is not ours to act on (a failed push, another action type, an EC2 scan)."""

    event_id: str
    reason: str
