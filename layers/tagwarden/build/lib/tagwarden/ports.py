"""The small interfaces between the core's services and the outside world (ledger, alert delivery)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tagwarden.domain.alerts import Alert
from tagwarden.domain.deployments import DeploymentView
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import Neighbours, TagDecision
from tagwarden.domain.scan_rules import ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted, ScanState
from tagwarden.domain.tags import ImageAction, TagMove, TagPointer, TagRef


class TagwardenError(Exception):
    """Base of the errors the core raises on purpose."""


class LedgerUnavailableError(TagwardenError):
    """The ledger could not be read or written (after the client's own retries); the event must be retried."""


class ConcurrentUpdateError(TagwardenError):
    """Someone else changed what a conditional write relied on; read again and decide again."""


class AlertDeliveryError(TagwardenError):
    """An alert could not be published; the event must be retried so the alert is not lost."""


@dataclass(frozen=True, slots=True)
class TagEntry:
    """A tag history entry, as a holder of alerts."""

    tag: TagRef
    event_key: str


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """A scan history entry of one digest, as a holder of alerts."""

    image: ImageName
    digest: str
    event_key: str


@dataclass(frozen=True, slots=True)
class FindingEntry:
    """A deployment finding, recorded once per alert id however often it is observed."""

    alert_id: str


AlertEntry = TagEntry | ScanEntry | FindingEntry


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """A workload seen using a tag or a digest (refreshing its last-seen time)."""

    location: str
    seen_at: datetime
    tag: TagRef | None = None
    digest: tuple[ImageName, str] | None = None
    # Locations to forget in the same write: unseen for long, or the oldest beyond the cap.
    forget: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordedAlerts:
    """The alerts a recorded entry raised, and whether they reached the topic."""

    alerts: tuple[Alert, ...] = ()
    delivered: bool = False
    # Ids already accepted by SNS when an earlier attempt failed part-way through the entry's alerts.
    published: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TagSnapshot:
    """What the ledger holds for one tag action, read in one request before deciding."""

    pointer: TagPointer | None
    existing: TagMove | None
    scans: Mapping[str, ScanState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScanReading:
    """What the ledger holds for one scan event, read before deciding."""

    snapshot: ScanSnapshot
    existing: RecordedAlerts | None


class AlertOutbox(Protocol):
    """Alerts are written with the ledger change that raised them, then published, then flagged delivered."""

    def mark_alerts_delivered(self, entry: AlertEntry) -> None:
        """Remember that the entry's alerts reached the topic, so retries do not repeat them."""
        ...

    def claim_alert_delivery(self, entry: AlertEntry, now: datetime, until: datetime) -> bool:
        """Take over publishing the entry's undelivered alerts if nobody holds a live lease on them."""
        ...

    def mark_alerts_published(self, entry: AlertEntry, alert_ids: Iterable[str]) -> None:
        """Remember which of the entry's alerts SNS accepted before a publish failed (best effort)."""
        ...

    def release_alert_delivery(self, entry: AlertEntry) -> None:
        """Give up the lease after a failed publish, so the retry may take over at once."""
        ...


class TagLedger(AlertOutbox, Protocol):
    """Where tag pointers, tag histories and digest records live."""

    def read_for_action(self, tag: TagRef, action: ImageAction) -> TagSnapshot:
        """The tag's pointer, this event's history entry if already recorded, and the digest's scan state."""
        ...

    def neighbours(self, tag: TagRef, event_key: str) -> Neighbours:
        """The history entries just before and after a position in the tag's history."""
        ...

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """The latest scan of each digest that has one."""
        ...

    def apply(self, tag: TagRef, action: ImageAction, decision: TagDecision, expected: TagPointer | None) -> None:
        """Write the decision atomically, provided the pointer is still `expected`.

        Raises ConcurrentUpdateError when the pointer changed or the event was recorded meanwhile.
        """
        ...

    def record_untagged(self, action: ImageAction) -> None:
        """Record a push or delete of a digest that concerns no tag (idempotent)."""
        ...


class ScanLedger(AlertOutbox, Protocol):
    """Scan records of digests, and the tag pointers that carry them."""

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """This scan's entry if already recorded, the digest's scan state and known tags, candidate pointers."""
        ...

    def apply_scan(self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot) -> None:
        """Write the scan entry, digest state and pointer updates atomically, provided nothing read changed.

        Raises ConcurrentUpdateError when anything the decision relied on changed meanwhile.
        """
        ...


class DeploymentLedger(AlertOutbox, Protocol):
    """What the audit watcher reads and writes: tag pointers, digest scan states, usage and findings."""

    def read_deployment_view(self, tags: Iterable[TagRef], digests: Iterable[tuple[ImageName, str]]) -> DeploymentView:
        """Pointers and scan states of every tag and digest of a batch, in batched reads."""
        ...

    def record_usage(self, updates: Iterable[UsageUpdate]) -> None:
        """Refresh where tags and digests are in use (only on items the ledger already has)."""
        ...

    def recorded_findings(self, alert_ids: Iterable[str]) -> dict[str, RecordedAlerts]:
        """The findings among these ids that were recorded before, batched."""
        ...

    def record_finding(self, alert: Alert, lease_until: datetime) -> RecordedAlerts | None:
        """Record a finding once: None when it is new (the caller publishes), else what was recorded before."""
        ...


class AlertPublisher(Protocol):
    """Delivers alerts to security staff."""

    def publish(self, alert: Alert) -> None:
        """Publish one alert; raise AlertDeliveryError when it did not reach the topic."""
        ...
