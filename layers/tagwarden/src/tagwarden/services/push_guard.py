"""The push guard: records every push and delete of a tag, and alerts when a tag is overwritten."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tagwarden.clock import utcnow
from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.identity import attributed, within_window
from tagwarden.domain.indexes import ImageIndex, derived_scan, is_index
from tagwarden.domain.revert import PendingRevert, RevertRequest, RevertScope, request_revert
from tagwarden.domain.rules import TagDecision, break_tie, decide_current, decide_late, is_late, same_second_tie
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import ImageAction, TagAction, TagRef
from tagwarden.domain.workloads import recent_sites
from tagwarden.observability import logger, metrics
from tagwarden.ports import (
    IndexPush,
    ManifestSource,
    ManifestUnreadableError,
    RecordedAlerts,
    RevertRequests,
    TagEntry,
    TagLedger,
    TagSnapshot,
)
from tagwarden.services.alert_delivery import AlertDelivery
from tagwarden.services.optimistic import with_optimistic_retries
from tagwarden.services.results import Outcome, Result, duplicate, ignored

# Entries of an index recorded with its push: with the history entry, pointer and records, a transaction
# holds at most 100 items. Real indexes hold a few platforms and as many attestations.
MAX_INDEX_ENTRIES = 90


@dataclass(frozen=True, slots=True)
class RevertHandoff:
    """Opt-in revert (domain.revert): which overwrites are put back, and where their requests go."""

    scope: RevertScope
    requests: RevertRequests


class PushGuard:
    """Decides each registry action against the ledger and writes the outcome atomically.

    With a `manifests` source (the registry), a pushed image index has its platform manifests recorded, and
    two actions on one tag in the same second are ordered by where the registry says the tag points now.
    """

    def __init__(
        self,
        ledger: TagLedger,
        delivery: AlertDelivery,
        policy: TagPolicy,
        clock: Callable[[], datetime] = utcnow,
        manifests: ManifestSource | None = None,
        revert: RevertHandoff | None = None,
    ) -> None:
        self._revert = revert
        self._ledger = ledger
        self._delivery = delivery
        self._policy = policy
        self._clock = clock
        self._manifests = manifests

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
        # Read once, outside the optimistic retries: the registry's index does not change with the ledger.
        index = self._index_of(fact)
        recorded, key, pending = with_optimistic_retries(lambda: self._record(tag, fact, index))
        entry = TagEntry(tag, key)
        if isinstance(recorded, RecordedAlerts):
            if pending is not None and pending.pending and self._revert is not None:
                # Its alerts are the reverter's to publish, with the outcome: hand the request over again
                # (the first hand-off may be what failed; the reverter settles a request only once).
                self._revert.requests.request(pending.request)
                metrics.add_metric(name="DuplicateEvents", unit="Count", value=1)
                logger.info("duplicate event: revert request handed over again", extra={"tag": str(tag)})
                return Result(Outcome.DUPLICATE, revert_requested=True)
            return duplicate(self._delivery, entry, recorded, fact.source.event_id)
        self._log_move(tag, recorded)
        if recorded.move.revert_requested and self._revert is not None:
            # Recorded with the request (same transaction); if the hand-off fails the event is retried and
            # its duplicate hands it over. The reverter publishes the alerts, saying what became of the revert.
            self._revert.requests.request(RevertRequest(tag, key))
            metrics.add_metric(name="RevertsRequested", unit="Count", value=1)
            logger.info("revert requested", extra={"tag": str(tag), "target": recorded.move.revert_to})
            return Result(Outcome.RECORDED, revert_requested=True)
        published = self._delivery.deliver(entry, recorded.alerts)
        return Result(Outcome.LATE if recorded.move.late else Outcome.RECORDED, published)

    def _record(
        self, tag: TagRef, fact: ImageAction, index: ImageIndex | None
    ) -> tuple[TagDecision | RecordedAlerts, str, PendingRevert | None]:
        """One optimistic attempt: the decision written, or what an earlier delivery already recorded (and the
        revert it asked for), with the history position of the entry."""
        # Every entry, attestations too: each learns its parent, on the condition that its scan is as read.
        children = tuple(dict.fromkeys(child.digest for child in index.children)) if index is not None else ()
        snapshot = self._ledger.read_for_action(tag, fact, children)
        if snapshot.existing is not None:
            return snapshot.existing, snapshot.existing_key or fact.source.key, snapshot.existing_revert
        fact = self._placed(fact, snapshot)
        scans = dict(snapshot.scans)
        pushed: IndexPush | None = None
        if index is not None:
            derived = derived_scan(index, scans)
            if derived is not None:
                # The index's failing episode carries on through a push of it (another tag), as through its
                # platforms' scans (`decide_parents`): its in-use findings' ids depend on it.
                derived = derived.following(scans.get(fact.digest), self._clock())
            child_scans = {digest: scans[digest] for digest in children if digest in scans}
            pushed = IndexPush(index, derived, child_scans, snapshot.derivation)
            if derived is not None:
                scans[fact.digest] = derived
            else:
                # Not every platform is scanned (yet): the index counts as unscanned, whatever it had.
                scans.pop(fact.digest, None)
        decision = self._decide(tag, fact, TagSnapshot(snapshot.pointer, None, scans))
        # CloudTrail's record of this action arrived first: the entry and its alert name who did it. A late
        # record is put on the entry by the trail watcher; the alert never waits for it.
        pending = snapshot.pending_actor
        actor = pending if within_window(pending, fact.source.event_time) else None
        decision = attributed(decision, actor, fact.source.event_id)
        lease = self._delivery.lease_until()
        if self._revert is not None:
            decision = request_revert(decision, tag, self._revert.scope, self._policy)
            if decision.move.revert_requested:
                lease = self._delivery.handed_over()
        self._ledger.apply(tag, fact, decision, snapshot.pointer, lease, pushed, pending_actor=pending)
        return decision, fact.source.key, None

    def _placed(self, fact: ImageAction, snapshot: TagSnapshot) -> ImageAction:
        """The action at its position in time; in a same-second tie with the pointer, where the registry's
        current state puts it (see `break_tie`)."""
        pointer = snapshot.pointer
        if self._manifests is None or pointer is None or not same_second_tie(fact, pointer):
            return fact
        tag = fact.tag_ref
        assert tag is not None
        try:
            now = self._manifests.tag_digest(tag)
        except ManifestUnreadableError as error:
            logger.warning("same-second tie left to event order", extra={"tag": str(tag), "reason": str(error)})
            return fact
        metrics.add_metric(name="SameSecondTies", unit="Count", value=1)
        placed = break_tie(fact, pointer, now)
        logger.info(
            "same-second tie resolved by the registry",
            extra={"tag": str(tag), "registry_digest": now, "position": placed.source.key, "event": fact.source.key},
        )
        return placed

    def _index_of(self, fact: ImageAction) -> ImageIndex | None:
        """The pushed index's entries, when a tag was pushed to an image index (other pushes cost no read)."""
        if self._manifests is None or fact.action is not TagAction.PUSH or not is_index(fact.media_type):
            return None
        try:
            index = self._manifests.index_of(fact.image, fact.digest)
        except ManifestUnreadableError as error:
            # Recorded without platforms: the tag's content counts as unscanned, which is the safe side.
            metrics.add_metric(name="UnreadableIndexes", unit="Count", value=1)
            logger.warning("image index unreadable", extra={"digest": fact.digest, "reason": str(error)})
            return None
        if index is None:
            logger.warning("image index no longer in the registry", extra={"digest": fact.digest})
        elif len({child.digest for child in index.children}) > MAX_INDEX_ENTRIES:
            # Each entry is one item of the push's transaction (at most 100): too large to record atomically.
            metrics.add_metric(name="IndexesTooLarge", unit="Count", value=1)
            logger.warning("image index too large to record", extra={"digest": fact.digest})
            return None
        elif not index.platform_digests:
            # Malformed or empty: nothing can ever scan it, so its tags stay unscanned (and say so).
            metrics.add_metric(name="IndexesWithoutPlatforms", unit="Count", value=1)
            logger.warning("image index without platform manifests", extra={"digest": fact.digest})
        return index

    def _decide(self, tag: TagRef, fact: ImageAction, snapshot: TagSnapshot) -> TagDecision:
        now = self._clock()
        if not is_late(fact, snapshot.pointer):
            return decide_current(fact, tag, snapshot.pointer, snapshot.scans, self._policy, now)
        neighbours = self._ledger.neighbours(tag, fact.source.key)
        digests = [fact.digest] + [m.digest for m in (neighbours.before, neighbours.after) if m is not None]
        scans = self._ledger.scan_states(tag.image, digests)
        if fact.digest in snapshot.scans:
            # An index's state was just derived from its platforms: fresher than its record's.
            scans[fact.digest] = snapshot.scans[fact.digest]
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
