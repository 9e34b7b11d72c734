"""What a function did with one event: the handler's return value, also written to the logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.observability import logger, metrics
from tagwarden.ports import AlertEntry, RecordedAlerts
from tagwarden.services.alert_delivery import AlertDelivery


class Outcome(StrEnum):
    """What happened to one event."""

    RECORDED = "recorded"
    LATE = "late"
    DUPLICATE = "duplicate"
    UNTAGGED = "untagged"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome and the ids of the alerts that went out."""

    outcome: Outcome
    alerts: tuple[str, ...] = field(default=())
    # Opt-in revert: the alerts were handed to the tag reverter, which publishes them with the outcome.
    revert_requested: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form, returned by the Lambda handler."""
        result: dict[str, object] = {"outcome": self.outcome.value, "alerts": list(self.alerts)}
        if self.revert_requested:
            result["revert"] = "requested"
        return result


def ignored(event: IgnoredEvent) -> Result:
    """A valid event that is not ours to act on: logged and counted, nothing written."""
    logger.info("event ignored", extra={"event_id": event.event_id, "reason": event.reason})
    metrics.add_metric(name="IgnoredEvents", unit="Count", value=1)
    return Result(Outcome.IGNORED)


def duplicate(delivery: AlertDelivery, entry: AlertEntry, recorded: RecordedAlerts, event_id: str) -> Result:
    """An event recorded before: nothing to write, but finish publishing if an earlier attempt could not."""
    metrics.add_metric(name="DuplicateEvents", unit="Count", value=1)
    logger.info("duplicate event: already recorded", extra={"event_id": event_id})
    return Result(Outcome.DUPLICATE, delivery.redeliver(entry, recorded))
