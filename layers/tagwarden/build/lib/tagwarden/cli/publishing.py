"""Runs that do not publish: alerts are recorded, shown as "would alert", and left for a later run to publish.

A backfill or replay without an alerts topic (no `--topic-arn`, no stack output, or `--no-publish`)
still goes through the real services, so alerts are decided and stored on their ledger entry exactly as
live. Nothing reaches security staff, though, so the entry must not be flagged delivered: instead of
`mark_alerts_delivered`, the delivery lease is given up at once. Running the same backfill or replay
again with a topic delivers the same synthetic or recorded events again; the services see duplicates
whose alerts are undelivered, take the delivery over and publish them, once.

The audit watcher's findings go the same way: `record_finding` stores a new finding with its alert
undelivered, the collector keeps the alert, the lease is released; a later run that observes the same
finding finds it recorded and undelivered, and redelivers it to the topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from tagwarden.domain.alerts import Alert
from tagwarden.domain.deployments import DeploymentView, DigestKey
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import Neighbours, TagDecision
from tagwarden.domain.scan_rules import ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted, ScanState
from tagwarden.domain.tags import ImageAction, TagPointer, TagRef
from tagwarden.ports import (
    AlertEntry,
    DeploymentLedger,
    RecordedAlerts,
    ScanLedger,
    ScanReading,
    TagLedger,
    TagSnapshot,
    UsageUpdate,
)


class AlertCollector:
    """An alert publisher that publishes nothing: it keeps the alerts so the command can show them."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        """Keep the alert, once: an undelivered finding observed again in the same run is offered again."""
        if all(kept.alert_id != alert.alert_id for kept in self.alerts):
            self.alerts.append(alert)


class ServicesLedger(TagLedger, ScanLedger, DeploymentLedger, Protocol):
    """The ledger as the functions' services use it: push guard, scan recorder and audit watcher."""


class WithheldAlertsLedger:
    """The ledger, except that alerts "delivered" to an `AlertCollector` stay undelivered (see module doc)."""

    def __init__(self, ledger: ServicesLedger) -> None:
        self._ledger = ledger

    def mark_alerts_delivered(self, entry: AlertEntry) -> None:
        """Nothing was published: release the lease instead, so a run with a topic can publish at once."""
        self._ledger.release_alert_delivery(entry)

    def claim_alert_delivery(self, entry: AlertEntry, now: datetime, until: datetime) -> bool:
        """As the ledger."""
        return self._ledger.claim_alert_delivery(entry, now, until)

    def mark_alerts_published(self, entry: AlertEntry, alert_ids: Iterable[str]) -> None:
        """Nothing was published to a topic: nothing to remember."""

    def release_alert_delivery(self, entry: AlertEntry) -> None:
        """As the ledger."""
        self._ledger.release_alert_delivery(entry)

    def read_for_action(self, tag: TagRef, action: ImageAction) -> TagSnapshot:
        """As the ledger."""
        return self._ledger.read_for_action(tag, action)

    def neighbours(self, tag: TagRef, event_key: str) -> Neighbours:
        """As the ledger."""
        return self._ledger.neighbours(tag, event_key)

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """As the ledger."""
        return self._ledger.scan_states(image, digests)

    def apply(self, tag: TagRef, action: ImageAction, decision: TagDecision, expected: TagPointer | None) -> None:
        """As the ledger."""
        self._ledger.apply(tag, action, decision, expected)

    def record_untagged(self, action: ImageAction) -> None:
        """As the ledger."""
        self._ledger.record_untagged(action)

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """As the ledger."""
        return self._ledger.read_for_scan(scan)

    def apply_scan(self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot) -> None:
        """As the ledger."""
        self._ledger.apply_scan(scan, decision, snapshot)

    def read_deployment_view(self, tags: Iterable[TagRef], digests: Iterable[DigestKey]) -> DeploymentView:
        """As the ledger."""
        return self._ledger.read_deployment_view(tags, digests)

    def record_usage(self, updates: Iterable[UsageUpdate]) -> None:
        """As the ledger."""
        self._ledger.record_usage(updates)

    def recorded_findings(self, alert_ids: Iterable[str]) -> dict[str, RecordedAlerts]:
        """As the ledger: a finding withheld before comes back undelivered, to be offered again."""
        return self._ledger.recorded_findings(alert_ids)

    def record_finding(self, alert: Alert, lease_until: datetime) -> RecordedAlerts | None:
        """As the ledger: a new finding is stored with its alert undelivered, whoever "delivers" it next."""
        return self._ledger.record_finding(alert, lease_until)
