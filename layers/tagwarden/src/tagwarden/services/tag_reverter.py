"""The tag reverter: puts an overwritten protected tag back on its previous content, and publishes the
overwrite's alerts saying whether it did (or why it could not).

Requests come from the push guard through a queue; each names a history entry that recorded the request
in the same write as the overwrite. A request is settled once (a conditional write), so duplicates and
redeliveries never revert twice; the registry is asked where the tag points before writing, so a tag that
moved again, or is already back, is left alone; content the ledger never saw pass a scan is not put back.
The alerts wait on the entry until the request is settled, and are published then, through the outbox, with
the outcome. A refusal (access denied, no such repository, another registry than the stack's) settles it
NOT_REVERTED at once; only transient failures are retried, and on the request's last attempt a revert that
keeps failing is settled NOT_REVERTED too, so the alert always goes out.
"""

from __future__ import annotations

from tagwarden.domain.alerts import RevertOutcome, RevertStatus
from tagwarden.domain.revert import (
    PendingRevert,
    RegistryView,
    RevertAction,
    RevertRequest,
    RevertScope,
    decide_revert,
    failed,
    other_registry,
    out_of_scope,
    reverted,
    with_outcome,
)
from tagwarden.observability import logger, metrics
from tagwarden.ports import (
    ConcurrentUpdateError,
    ManifestUnreadableError,
    RevertLedger,
    RevertRefusedError,
    TagEntry,
    TagRestorer,
)
from tagwarden.services.alert_delivery import AlertDelivery


class TagReverter:
    """Settles revert requests: registry checks, at most one PutImage, the outcome, the alerts."""

    def __init__(
        self,
        ledger: RevertLedger,
        registry: TagRestorer,
        delivery: AlertDelivery,
        scope: RevertScope,
        max_attempts: int,
    ) -> None:
        self._ledger = ledger
        self._registry = registry
        self._delivery = delivery
        self._scope = scope
        self._max_attempts = max_attempts

    def handle(self, request: RevertRequest, attempt: int) -> RevertOutcome | None:
        """Settle one request (its `attempt`th delivery) and publish its alerts; None if no entry asked for it."""
        found = self._ledger.pending_revert(request)
        if found is None:
            # Not a request the ledger holds (a forged or mangled message): nothing to revert, nothing to lose.
            metrics.add_metric(name="UnknownRevertRequests", unit="Count", value=1)
            logger.error("no revert request recorded at this entry", extra={"tag": str(request.tag)})
            return None
        pending, recorded = found
        entry = TagEntry(request.tag, request.entry_key)
        if not pending.pending:
            # Settled by an earlier delivery: only finish publishing if that attempt could not.
            logger.info("revert request settled before", extra={"tag": str(request.tag), "status": pending.status})
            # That delivery may have stopped between settling and releasing the tag's marker.
            self._ledger.release_marker(pending)
            self._delivery.redeliver(entry, recorded)
            return RevertOutcome(status=pending.status, detail=pending.detail or "")
        try:
            outcome = self._revert(pending)
        except Exception as error:
            if attempt < self._max_attempts:
                raise  # the queue delivers it again
            # The last attempt: the alert must not wait for a revert that keeps failing.
            logger.exception("revert failed on its last attempt", extra={"tag": str(request.tag)})
            outcome = failed(attempt, str(error) or type(error).__name__)
        try:
            recorded = self._ledger.settle_revert(pending, outcome, with_outcome(recorded.alerts, outcome))
        except ConcurrentUpdateError:
            # A concurrent delivery settled it first (it checked the registry too): publish what it recorded.
            again = self._ledger.pending_revert(request)
            assert again is not None  # entries are never deleted
            pending, recorded = again
            outcome = RevertOutcome(status=pending.status, detail=pending.detail or "")
        self._log(request, outcome)
        self._delivery.redeliver(entry, recorded)
        return outcome

    def _revert(self, pending: PendingRevert) -> RevertOutcome:
        tag = pending.request.tag
        if not self._scope.covers_registry(tag.image):
            # The push guard asks only in the stack's own registry; a request recorded otherwise is not ours.
            return other_registry(tag.image)
        if not self._scope.covers_repository(tag.image.repository):
            return out_of_scope(tag.image.repository)
        try:
            manifest = self._registry.manifest(tag.image, pending.target)
        except ManifestUnreadableError as error:
            # Refused for good (another account's registry, a key the role may not use): do not wait for it.
            return RevertOutcome(
                status=RevertStatus.NOT_REVERTED, detail=f"the reverter may not read the previous image ({error})"
            )
        except RevertRefusedError as refusal:
            return RevertOutcome(status=RevertStatus.NOT_REVERTED, detail=str(refusal))
        try:
            view = RegistryView(
                mutability=self._registry.mutability(tag.image),
                tag_digest=self._registry.tag_digest(tag),
                target_present=manifest is not None,
            )
        except (RevertRefusedError, ManifestUnreadableError) as refusal:
            return RevertOutcome(status=RevertStatus.NOT_REVERTED, detail=str(refusal))
        decided = decide_revert(pending, view, self._ledger.target(pending))
        if not isinstance(decided, RevertAction):
            return decided
        assert manifest is not None
        try:
            self._registry.put_tag(tag, pending.target, manifest)
        except RevertRefusedError as refusal:
            return RevertOutcome(status=RevertStatus.NOT_REVERTED, detail=str(refusal))
        metrics.add_metric(name="TagsReverted", unit="Count", value=1)
        return RevertOutcome(status=RevertStatus.REVERTED, detail=reverted(pending))

    @staticmethod
    def _log(request: RevertRequest, outcome: RevertOutcome) -> None:
        if outcome.status is not RevertStatus.REVERTED:
            metrics.add_metric(name="RevertsRefused", unit="Count", value=1)
        logger.warning(
            "revert settled",
            extra={"tag": str(request.tag), "status": outcome.status, "detail": outcome.detail},
        )
