"""Who pushed or deleted a tag: CloudTrail's identity of an ECR call, matched to the tag's history entry.

ECR's image events carry no identity; CloudTrail's `PutImage` and `BatchDeleteImage` records do. The two
arrive separately, in any order, each possibly twice. They are matched on registry, repository, tag, digest
and action, and on time: the history entry nearest in time within `CORRELATION_WINDOW` of the CloudTrail
record's `eventTime`. `PutImage` is the last call of a push and ECR emits its image event when it completes,
so the two times are seconds apart; two minutes absorbs clock skew and one-second rounding while keeping
apart two pushes of the same digest to the same tag (which move nothing, and would only swap their actors).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tagwarden.domain.alerts import Actor
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import TagDecision
from tagwarden.domain.tags import TagAction, TagRef

CORRELATION_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class ActorReport:
    """CloudTrail says `actor` pushed (or deleted) `digest` as `tag` at `actor.trail_event_time`."""

    action: TagAction
    tag: TagRef
    digest: str
    actor: Actor

    @property
    def at(self) -> datetime:
        """When the call was made."""
        assert self.actor.trail_event_time is not None
        return self.actor.trail_event_time


@dataclass(frozen=True, slots=True)
class DigestDeleted:
    """CloudTrail says `actor` deleted `digest` (and so every tag on it) by digest, naming no tag."""

    image: ImageName
    digest: str
    actor: Actor

    def reports(self, tags: Iterable[str]) -> tuple[ActorReport, ...]:
        """The delete as one report per tag the ledger knows on the digest."""
        return tuple(ActorReport(TagAction.DELETE, TagRef(self.image, tag), self.digest, self.actor) for tag in tags)


@dataclass(frozen=True, slots=True)
class CallsIdentified:
    """One CloudTrail record's pushes or deletes of tags, each with who made the call."""

    event_id: str
    reports: tuple[ActorReport, ...]
    # Deletes by digest: the record names no tag, the ledger knows which tags the digest had.
    digest_deletes: tuple[DigestDeleted, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryCandidate:
    """A tag history entry that a CloudTrail record may name."""

    event_key: str
    action: TagAction
    digest: str
    event_time: datetime
    # The CloudTrail event whose actor the entry carries already, if any.
    actor_event_id: str | None = None


def within_window(actor: Actor | None, event_time: datetime) -> bool:
    """Whether a CloudTrail actor's call is close enough in time to an ECR event to be the same action."""
    if actor is None or actor.trail_event_time is None:
        return False
    return abs(actor.trail_event_time - event_time) <= CORRELATION_WINDOW


def matching_entry(report: ActorReport, candidates: Iterable[HistoryCandidate]) -> HistoryCandidate | None:
    """The history entry the report names: same action and digest, nearest in time within the window."""
    fitting = [
        c
        for c in candidates
        if c.action is report.action and c.digest == report.digest and within_window(report.actor, c.event_time)
    ]
    return min(fitting, key=lambda c: abs(c.event_time - report.at), default=None)


def actor_label(actor: Actor | None) -> str:
    """Who, for people: the principal (or ARN) and where the call came from; `not yet known` without one."""
    if actor is None:
        return "not yet known"
    who = actor.principal or actor.arn or "unknown identity"
    return f"{who} from {actor.source_ip}" if actor.source_ip else who


def attributed(decision: TagDecision, actor: Actor | None, event_id: str) -> TagDecision:
    """The decision with its actor on the history entry and on the alerts about this very action (a late
    entry's alert about its successor's push names the successor's event first, and is left alone)."""
    if actor is None:
        return decision
    alerts = tuple(
        alert.model_copy(update={"actor": actor}) if alert.evidence[:1] == (event_id,) else alert
        for alert in decision.move.alerts
    )
    return replace(decision, move=replace(decision.move, actor=actor, alerts=alerts))
