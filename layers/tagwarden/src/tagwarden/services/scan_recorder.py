"""The scan recorder: keeps the ledger of scanned digests and Inspector's findings on them, alerts tags that
moved during the scan, and workloads using a digest whose verdict turned to fail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from tagwarden.clock import utcnow
from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.findings import FindingReported
from tagwarden.domain.scan_rules import (
    FindingDecision,
    ScanDecision,
    decide_finding,
    decide_parents,
    decide_scan,
    finding_as_scan,
    scan_state_with_findings,
    with_deployed_findings,
)
from tagwarden.domain.scans import FindingSeverity, ScanCompleted
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.observability import logger, metrics
from tagwarden.ports import FindingReading, RecordedAlerts, ScanEntry, ScanLedger
from tagwarden.services.alert_delivery import AlertDelivery
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

    def handle(self, fact: ScanCompleted | FindingReported | IgnoredEvent) -> Result:
        """Record one scan report or finding; publish what it reveals exactly once per delivered event."""
        metrics.add_metric(name="ScanEvents", unit="Count", value=1)
        if isinstance(fact, IgnoredEvent):
            return ignored(fact)
        if isinstance(fact, FindingReported):
            return self._handle_finding(fact)
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
                "workloads_alerted": len(recorded.findings),
                "indexes_scanned": sorted(p.digest for p in recorded.parents if p.state is not None),
            },
        )
        metrics.add_metric(name="ScansRecorded", unit="Count", value=1)
        _count_in_use_alerts(recorded)
        return Result(Outcome.RECORDED, self._delivery.deliver(entry, recorded.alerts))

    def _record(self, scan: ScanCompleted) -> ScanDecision | RecordedAlerts:
        """One optimistic attempt: the decision written, or what an earlier delivery already recorded."""
        reading = self._ledger.read_for_scan(scan)
        if reading.existing is not None:
            return reading.existing
        now = self._clock()
        state, tally = scan_state_with_findings(scan, reading.snapshot, self._fail_severity, now)
        decision = decide_scan(scan, state, reading.snapshot, self._policy, now)
        if tally is not None:
            decision = replace(decision, tally=tally)
        decision = with_deployed_findings(decision, scan, reading.snapshot, now)
        # A platform manifest's scan also counts for the image indexes that hold it.
        decision = decide_parents(scan, decision, reading.snapshot, self._policy, now)
        self._ledger.apply_scan(scan, decision, reading.snapshot, self._delivery.lease_until())
        return decision

    def _handle_finding(self, report: FindingReported) -> Result:
        """Apply one Inspector finding to its digest; a repeated or older event of the finding changes nothing."""
        metrics.add_metric(name="InspectorFindings", unit="Count", value=1)
        outcome = with_optimistic_retries(lambda: self._record_finding(report))
        if isinstance(outcome, FindingReading):
            if outcome.entry is not None and outcome.existing is not None:
                return duplicate(self._delivery, outcome.entry, outcome.existing, report.source.event_id)
            same = outcome.known is not None and outcome.known.event_key == report.source.key
            logger.info(
                "finding event already applied" if same else "finding event older than the finding's state",
                extra={"event_id": report.source.event_id, "finding_arn": report.finding_arn},
            )
            return Result(Outcome.DUPLICATE if same else Outcome.LATE)
        scan = outcome.scan
        logger.info(
            "finding recorded",
            extra={
                "image": str(report.image),
                "digest": report.digest,
                "finding_arn": report.finding_arn,
                "severity": report.severity,
                "status": report.status,
                "verdict": scan.state.verdict if scan is not None else None,
                "finding_counts": scan.state.finding_counts if scan is not None else None,
                "workloads_alerted": len(scan.findings) if scan is not None else 0,
                "indexes_scanned": sorted(p.digest for p in scan.parents if p.state is not None) if scan else [],
            },
        )
        if scan is None:
            return Result(Outcome.RECORDED)
        _count_in_use_alerts(scan)
        entry = ScanEntry(report.image, report.digest, scan.state.event_key or report.source.key)
        return Result(Outcome.RECORDED, self._delivery.deliver(entry, scan.alerts))

    def _record_finding(self, report: FindingReported) -> FindingDecision | FindingReading:
        """One optimistic attempt: the decision written, or the reading that showed the event applied already."""
        reading = self._ledger.read_for_finding(report)
        now = self._clock()
        decision = decide_finding(report, reading.known, reading.snapshot, self._fail_severity, now)
        if decision is None:
            return reading
        if decision.scan is not None:
            # A platform manifest's new state counts for the image indexes that hold it, as its scans do.
            as_scan = finding_as_scan(report, decision.scan.state)
            parents = decide_parents(as_scan, decision.scan, reading.snapshot, self._policy, now)
            decision = replace(decision, scan=parents)
        self._ledger.apply_finding(report, decision, reading, self._delivery.lease_until())
        return decision


def _count_in_use_alerts(decision: ScanDecision) -> None:
    """Operations see how often a verdict turning to fail reaches running workloads."""
    if decision.findings:
        metrics.add_metric(name="InUseDigestsFailed", unit="Count", value=1)
        metrics.add_metric(name="InUseWorkloadsAlerted", unit="Count", value=len(decision.findings))
