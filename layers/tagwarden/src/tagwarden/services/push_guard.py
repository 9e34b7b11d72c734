"""The push guard: records every push and delete of a tag, and alerts when a tag is overwritten."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tagwarden.domain.alerts import Alert
from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.rules import TagDecision, decide_current, decide_late, is_late
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import ImageAction, TagMove, TagRef
from tagwarden.observability import logger, metrics
from tagwarden.ports import AlertPublisher, ConcurrentUpdateError, TagLedger, TagSnapshot

MAX_ATTEMPTS = 8
# Longer than publishing takes, shorter than Lambda's first async retry (about a minute), so the retry of a
# crashed invocation always finds the lease expired.
ALERT_LEASE = timedelta(seconds=30)


class Outcome(StrEnum):
    """What the push guard did with one event."""

    RECORDED = "recorded"
    LATE = "late"
    DUPLICATE = "duplicate"
    UNTAGGED = "untagged"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Result:
    """The handler's return value: what happened and which alerts went out."""

    outcome: Outcome
    alerts: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form, returned by the Lambda handler."""
        return {"outcome": self.outcome.value, "alerts": list(self.alerts)}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PushGuard:
    """Decides each registry action against the ledger and writes the outcome atomically."""

    def __init__(
        self,
        ledger: TagLedger,
        publisher: AlertPublisher,
        policy: TagPolicy,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._ledger = ledger
        self._publisher = publisher
        self._policy = policy
        self._clock = clock

    def handle(self, fact: ImageAction | IgnoredEvent) -> Result:
        """Record one push or delete; publish the alerts it raises exactly once per delivered event."""
        metrics.add_metric(name="ImageActionEvents", unit="Count", value=1)
        if isinstance(fact, IgnoredEvent):
            logger.info("event ignored", extra={"event_id": fact.event_id, "reason": fact.reason})
            metrics.add_metric(name="IgnoredEvents", unit="Count", value=1)
            return Result(Outcome.IGNORED)
        tag = fact.tag_ref
        if tag is None:
            self._ledger.record_untagged(fact)
            logger.info("untagged image action recorded", extra={"action": fact.action, "digest": fact.digest})
            return Result(Outcome.UNTAGGED)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            snapshot = self._ledger.read_for_action(tag, fact)
            if snapshot.existing is not None:
                return self._redeliver(tag, snapshot.existing)
            decision = self._with_lease(self._decide(tag, fact, snapshot))
            try:
                self._ledger.apply(tag, fact, decision, snapshot.pointer)
            except ConcurrentUpdateError:
                if attempt == MAX_ATTEMPTS:
                    raise
                metrics.add_metric(name="ConcurrentUpdateRetries", unit="Count", value=1)
                # A short jittered pause lets the other writer finish before this one reads again.
                time.sleep(random.uniform(0, 0.01 * attempt))  # noqa: S311 - jitter, not security
                continue
            self._log_move(tag, decision)
            published = self._deliver(tag, decision.move)
            return Result(Outcome.LATE if decision.move.late else Outcome.RECORDED, published)
        raise AssertionError("unreachable: the loop returns or raises")

    def _decide(self, tag: TagRef, fact: ImageAction, snapshot: TagSnapshot) -> TagDecision:
        now = self._clock()
        if not is_late(fact, snapshot.pointer):
            return decide_current(fact, tag, snapshot.pointer, snapshot.scans, self._policy, now)
        neighbours = self._ledger.neighbours(tag, fact.source.key)
        digests = [fact.digest] + [m.digest for m in (neighbours.before, neighbours.after) if m is not None]
        scans = self._ledger.scan_states(tag.image, digests)
        return decide_late(fact, tag, neighbours, scans, self._policy, now)

    def _with_lease(self, decision: TagDecision) -> TagDecision:
        if not decision.move.alerts:
            return decision
        return replace(decision, move=replace(decision.move, alerts_lease_until=self._clock() + ALERT_LEASE))

    def _redeliver(self, tag: TagRef, existing: TagMove) -> Result:
        """A duplicate delivery: nothing to write, but finish publishing if an earlier attempt could not."""
        metrics.add_metric(name="DuplicateEvents", unit="Count", value=1)
        logger.info("duplicate event: already recorded", extra={"tag": str(tag), "event_id": existing.source.event_id})
        if not existing.alerts or existing.alerts_delivered:
            return Result(Outcome.DUPLICATE)
        now = self._clock()
        if not self._ledger.claim_alert_delivery(tag, existing.source.key, now, now + ALERT_LEASE):
            # Another invocation is publishing right now; if it fails, its own retry delivers.
            logger.info("alert delivery in progress elsewhere", extra={"event_id": existing.source.event_id})
            return Result(Outcome.DUPLICATE)
        return Result(Outcome.DUPLICATE, self._deliver(tag, existing))

    def _deliver(self, tag: TagRef, move: TagMove) -> tuple[str, ...]:
        """Publish every alert of a history entry, then flag it delivered; on failure, release the lease."""
        if not move.alerts:
            return ()
        try:
            for alert in move.alerts:
                self._publish(alert)
        except Exception:
            self._ledger.release_alert_delivery(tag, move.source.key)
            raise
        self._ledger.mark_alerts_delivered(tag, move.source.key)
        return tuple(alert.alert_id for alert in move.alerts)

    def _publish(self, alert: Alert) -> None:
        self._publisher.publish(alert)
        metrics.add_metric(name="AlertsPublished", unit="Count", value=1)
        logger.warning(
            "alert published",
            extra={"alert_id": alert.alert_id, "alert_type": alert.type, "severity": alert.severity},
        )

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
