"""The scan recorder: keeps the ledger of scanned digests, and alerts tags that moved during the scan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.scan_rules import ScanDecision, decide_parents, decide_scan
from tagwarden.domain.scans import FindingSeverity, ScanCompleted
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.observability import logger, metrics
from tagwarden.ports import RecordedAlerts, ScanEntry, ScanLedger
from tagwarden.services.alert_delivery import AlertDelivery, utcnow
from tagwarden.services.optimistic import with_optimistic_retries
from tagwarden.services.results import Outcome, Result, duplicate, ignored


class ScanRecorder:
    """Records each scan on its digest and on the pointers of the tags that name the digest."""

    def __init__(
        self,
        ledger: ScanLedger,
        delivery: AlertDelivery,
        policy: TagPolicy,
        fail_severity: FindingSeverity,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._ledger = ledger
        self._delivery = delivery
        self._policy = policy
        self._fail_severity = fail_severity
        self._clock = clock

    def handle(self, fact: ScanCompleted | IgnoredEvent) -> Result:
        """Record one scan report; publish what it reveals exactly once per delivered event."""
        metrics.add_metric(name="ScanEvents", unit="Count", value=1)
        if isinstance(fact, IgnoredEvent):
            return ignored(fact)
        entry = ScanEntry(fact.image, fact.digest, fact.source.key)
        recorded = with_optimistic_retries(lambda: self._record(fact))
        if isinstance(recorded, RecordedAlerts):
            return duplicate(self._delivery, entry, recorded, fact.source.event_id)
        logger.info(
            "scan recorded",
            extra={
                "image": str(fact.image),
                "digest": fact.digest,
                "scanner": fact.scanner,
                "status": fact.status,
                "verdict": recorded.state.verdict,
                "finding_counts": recorded.state.finding_counts,
                "pointers_updated": sorted(recorded.pointer_updates),
                "moved_tags": sorted(recorded.moved_tags),
                "indexes_scanned": sorted(p.digest for p in recorded.parents if p.state is not None),
            },
        )
        metrics.add_metric(name="ScansRecorded", unit="Count", value=1)
        return Result(Outcome.RECORDED, self._delivery.deliver(entry, recorded.alerts))

    def _record(self, scan: ScanCompleted) -> ScanDecision | RecordedAlerts:
        """One optimistic attempt: the decision written, or what an earlier delivery already recorded."""
        reading = self._ledger.read_for_scan(scan)
        if reading.existing is not None:
            return reading.existing
        now = self._clock()
        decision = decide_scan(scan, scan.state(self._fail_severity), reading.snapshot, self._policy, now)
        # A platform manifest's scan also counts for the image indexes that hold it.
        decision = decide_parents(scan, decision, reading.snapshot, self._policy, now)
        self._ledger.apply_scan(scan, decision, reading.snapshot, self._delivery.lease_until())
        return decision
