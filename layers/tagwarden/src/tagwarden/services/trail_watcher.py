"""The trail watcher: ECR API calls from CloudTrail. Alerts when a repository's settings let protected tags
move, records each repository's latest setting, and names who pushed or deleted a tag on its history.

Settings: read (setting, this event's alert) -> decide (`tag_protection.decide_settings`) -> write both in one
transaction (the setting only when this event is newer than the recorded one, or when it is the less
protective of two changes in the same second) -> deliver through the outbox. A duplicate delivery finds its
alert recorded (or its own setting) and changes nothing.

Actors: the history entry the record names (`identity.matching_entry`) gets the actor; when the push guard
has not recorded it yet, the actor is left where the push guard reads it with the action, then the history is
looked at once more (the push guard's write checks that item, so one of the two always sees the other).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tagwarden.clock import utcnow
from tagwarden.domain.alerts import Alert
from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.identity import CORRELATION_WINDOW, ActorReport, CallsIdentified, DigestDeleted, matching_entry
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tag_protection import SettingsChange, decide_settings, protection_alert_id
from tagwarden.observability import logger, metrics
from tagwarden.ports import FindingEntry, RecordedAlerts, TrailLedger
from tagwarden.services.alert_delivery import AlertDelivery
from tagwarden.services.optimistic import with_optimistic_retries


class TrailOutcome(StrEnum):
    """What the trail watcher did with one CloudTrail record."""

    SETTING_RECORDED = "setting_recorded"
    # An older record than the setting the ledger holds: judged (alerted if it weakened), not recorded.
    SETTING_LATE = "setting_late"
    # Another change in the same second disagrees on whether protected tags can move: alerted, the less
    # protective setting kept (CloudTrail's one-second times cannot order the two).
    SETTING_ORDER_UNKNOWN = "setting_order_unknown"
    DUPLICATE = "duplicate"
    ACTOR_RECORDED = "actor_recorded"
    # The history entry is not there yet: the push guard picks the actor up when it records the action.
    ACTOR_PENDING = "actor_pending"
    # A delete by digest whose tags show no delete of it near the call (yet): nobody named.
    ACTOR_UNMATCHED = "actor_unmatched"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class TrailResult:
    """The outcome, the alerts that went out, and per tag action whether its actor was named or left pending."""

    outcome: TrailOutcome
    alerts: tuple[str, ...] = ()
    actors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form, returned by the Lambda handler."""
        result: dict[str, object] = {"outcome": self.outcome.value, "alerts": list(self.alerts)}
        if self.actors:
            result["actors"] = self.actors
        return result


class TrailWatcher:
    """Judges settings changes and names the actors of tag actions."""

    def __init__(
        self,
        ledger: TrailLedger,
        delivery: AlertDelivery,
        policy: TagPolicy,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._ledger = ledger
        self._delivery = delivery
        self._policy = policy
        self._clock = clock

    def handle(self, fact: SettingsChange | CallsIdentified | IgnoredEvent) -> TrailResult:
        """Handle one CloudTrail record."""
        metrics.add_metric(name="TrailEvents", unit="Count", value=1)
        if isinstance(fact, IgnoredEvent):
            logger.info("event ignored", extra={"event_id": fact.event_id, "reason": fact.reason})
            metrics.add_metric(name="IgnoredEvents", unit="Count", value=1)
            return TrailResult(TrailOutcome.IGNORED)
        if isinstance(fact, SettingsChange):
            return self._settings(fact)
        outcomes = {f"{r.action.value} {r.tag}@{r.digest}": self._name(r).value for r in fact.reports}
        for deleted in fact.digest_deletes:
            outcomes.update(self._name_digest_delete(deleted))
        if TrailOutcome.ACTOR_PENDING.value in outcomes.values():
            return TrailResult(TrailOutcome.ACTOR_PENDING, (), outcomes)
        if TrailOutcome.ACTOR_RECORDED.value in outcomes.values():
            return TrailResult(TrailOutcome.ACTOR_RECORDED, (), outcomes)
        return TrailResult(TrailOutcome.ACTOR_UNMATCHED, (), outcomes)

    # --- settings ------------------------------------------------------------------------------------

    def _settings(self, change: SettingsChange) -> TrailResult:
        alert_id = protection_alert_id(change)
        outcome, recorded = with_optimistic_retries(lambda: self._record_setting(change, alert_id))
        entry = FindingEntry(alert_id)
        if isinstance(recorded, RecordedAlerts):
            metrics.add_metric(name="DuplicateEvents", unit="Count", value=1)
            return TrailResult(TrailOutcome.DUPLICATE, self._delivery.redeliver(entry, recorded))
        logger.info(
            "tag mutability setting judged",
            extra={
                "subject": change.subject.value,
                "subject_name": change.name,
                "setting": change.setting.describe(),
                "outcome": outcome.value,
                "alerted": bool(recorded),
            },
        )
        if outcome is TrailOutcome.SETTING_ORDER_UNKNOWN:
            metrics.add_metric(name="SettingsOrderUnknown", unit="Count", value=1)
        if not recorded:
            return TrailResult(outcome)
        metrics.add_metric(name="TagProtectionWeakened", unit="Count", value=1)
        return TrailResult(outcome, self._delivery.deliver(entry, recorded))

    def _record_setting(
        self, change: SettingsChange, alert_id: str
    ) -> tuple[TrailOutcome, RecordedAlerts | tuple[Alert, ...]]:
        """One optimistic attempt: what an earlier delivery recorded, or the alerts this one wrote."""
        reading = self._ledger.read_settings(change, alert_id)
        if reading.existing is not None:
            return TrailOutcome.DUPLICATE, reading.existing
        recorded = reading.recorded
        if recorded is not None and recorded.event_key == change.source.key:
            return TrailOutcome.DUPLICATE, RecordedAlerts(delivered=True)
        decision = decide_settings(change, recorded, self._policy, self._clock())
        alert = decision.alert
        self._ledger.apply_settings(
            change, recorded, decision.record, alert, self._delivery.lease_until(), decision.order_unknown
        )
        if decision.order_unknown:
            outcome = TrailOutcome.SETTING_ORDER_UNKNOWN
        else:
            outcome = TrailOutcome.SETTING_LATE if decision.late else TrailOutcome.SETTING_RECORDED
        return outcome, ((alert,) if alert else ())

    # --- actors --------------------------------------------------------------------------------------

    def _name_digest_delete(self, deleted: DigestDeleted) -> dict[str, str]:
        """A delete by digest, named on each of the digest's tags whose history shows a delete of it near the
        call. Nothing is left for the push guard: the ledger's tags of a digest include tags that moved away
        long ago, which ECR will not report deleted, and a pending actor for them would never be picked up."""
        outcomes: dict[str, str] = {}
        for report in deleted.reports(self._ledger.tags_of_digest(deleted.image, deleted.digest)):
            named = self._name_on_history(report)
            outcome = TrailOutcome.ACTOR_RECORDED if named else TrailOutcome.ACTOR_UNMATCHED
            outcomes[f"{report.action.value} {report.tag}@{report.digest}"] = outcome.value
        if not outcomes:
            outcomes[f"DELETE {deleted.image}@{deleted.digest}"] = TrailOutcome.ACTOR_UNMATCHED.value
        return outcomes

    def _name(self, report: ActorReport) -> TrailOutcome:
        if self._name_on_history(report):
            return TrailOutcome.ACTOR_RECORDED
        self._ledger.leave_actor(report)
        # The push guard may have written the entry between the look above and the item just left.
        if self._name_on_history(report):
            return TrailOutcome.ACTOR_RECORDED
        metrics.add_metric(name="PendingActors", unit="Count", value=1)
        logger.info("actor left for the push guard", extra={"tag": str(report.tag), "action": report.action})
        return TrailOutcome.ACTOR_PENDING

    def _name_on_history(self, report: ActorReport) -> bool:
        candidates = self._ledger.history_near(report, CORRELATION_WINDOW)
        entry = matching_entry(report, candidates)
        if entry is None:
            return False
        if not self._ledger.name_actor(report.tag, entry.event_key, report.actor):
            # Another CloudTrail record's actor is there (two calls for one action): the first one stays.
            logger.warning(
                "history entry names another actor", extra={"tag": str(report.tag), "entry": entry.event_key}
            )
        return True
