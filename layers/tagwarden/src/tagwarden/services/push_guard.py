"""The push guard: records every push and delete of a tag, and alerts when a tag is overwritten."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.rules import TagDecision, decide_current, decide_late, is_late
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import ImageAction, TagRef
from tagwarden.domain.workloads import recent_sites
from tagwarden.observability import logger, metrics
from tagwarden.ports import RecordedAlerts, TagEntry, TagLedger, TagSnapshot
from tagwarden.services.alert_delivery import AlertDelivery, utcnow
from tagwarden.services.optimistic import with_optimistic_retries
from tagwarden.services.results import Outcome, Result, duplicate, ignored


class PushGuard:
    """Decides each registry action against the ledger and writes the outcome atomically."""

    def __init__(
        self, ledger: TagLedger, delivery: AlertDelivery, policy: TagPolicy, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._ledger = ledger
        self._delivery = delivery
        self._policy = policy
        self._clock = clock

    def handle(self, fact: ImageAction | IgnoredEvent) -> Result:
        """Record one push or delete; publish the alerts it raises exactly once per delivered event."""
        metrics.add_metric(name="ImageActionEvents", unit="Count", value=1)
        if isinstance(fact, IgnoredEvent):
            return ignored(fact)
        tag = fact.tag_ref
        if tag is None:
            self._ledger.record_untagged(fact)
            logger.info("untagged image action recorded", extra={"action": fact.action, "digest": fact.digest})
            return Result(Outcome.UNTAGGED)
        entry = TagEntry(tag, fact.source.key)
        recorded = with_optimistic_retries(lambda: self._record(tag, fact))
        if isinstance(recorded, RecordedAlerts):
            return duplicate(self._delivery, entry, recorded, fact.source.event_id)
        self._log_move(tag, recorded)
        published = self._delivery.deliver(entry, recorded.alerts)
        return Result(Outcome.LATE if recorded.move.late else Outcome.RECORDED, published)

    def _record(self, tag: TagRef, fact: ImageAction) -> TagDecision | RecordedAlerts:
        """One optimistic attempt: the decision written, or what an earlier delivery already recorded."""
        snapshot = self._ledger.read_for_action(tag, fact)
        if snapshot.existing is not None:
            return snapshot.existing
        decision = self._decide(tag, fact, snapshot)
        self._ledger.apply(tag, fact, decision, snapshot.pointer, self._delivery.lease_until())
        return decision

    def _decide(self, tag: TagRef, fact: ImageAction, snapshot: TagSnapshot) -> TagDecision:
        now = self._clock()
        if not is_late(fact, snapshot.pointer):
            return decide_current(fact, tag, snapshot.pointer, snapshot.scans, self._policy, now)
        neighbours = self._ledger.neighbours(tag, fact.source.key)
        digests = [fact.digest] + [m.digest for m in (neighbours.before, neighbours.after) if m is not None]
        scans = self._ledger.scan_states(tag.image, digests)
        in_use = recent_sites(snapshot.pointer.in_use, now) if snapshot.pointer is not None else ()
        return decide_late(fact, tag, neighbours, scans, self._policy, now, in_use)

    def _log_move(self, tag: TagRef, decision: TagDecision) -> None:
        move = decision.move
        if move.late:
            metrics.add_metric(name="LateEvents", unit="Count", value=1)
        if move.moved:
            metrics.add_metric(name="TagMoves", unit="Count", value=1)
        logger.info(
            "tag action recorded",
            extra={
                "tag": str(tag),
                "action": move.action,
                "digest": move.digest,
                "previous_digest": move.previous_digest,
                "late": move.late,
            },
        )
