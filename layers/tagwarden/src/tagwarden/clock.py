"""Time, the one way Tagwarden reads and writes it: timezone-aware UTC, and its `...Z` text form."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware (services, adapters and the command take it as their default clock)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC timestamp text, as the ledger stores it and the command's JSON shows it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Inverse of `iso`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
