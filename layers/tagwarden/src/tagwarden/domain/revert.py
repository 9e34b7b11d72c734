"""Opt-in revert of overwritten protected tags: which overwrites are put back, and what became of each.

When `RevertProtectedTags` is on, an overwrite of a protected tag in a repository under one of the
configured prefixes asks for a revert: the tag is to name again the content it named before the attack
(the *target*). The request is recorded with the overwrite's history entry, and a marker on the tag's
pointer remembers the target, so the revert's own push is recognised as Tagwarden's (history, no alert).

The reverter decides from what the registry holds now (the table is `decide_revert`):

| registry now                                   | outcome                                                 |
|------------------------------------------------|---------------------------------------------------------|
| repository immutable                           | NOT_REVERTED (ECR refuses to move a tag back)           |
| tag names the target already                   | REVERTED (done before, or put back by someone else)     |
| tag absent                                     | NOT_REVERTED (deleted since)                            |
| tag names a third digest                       | NOT_REVERTED (moved again since: that move has its own) |
| target never passed a scan (ledger)            | NOT_REVERTED (it may be a squatter's: not restored)     |
| target's manifest gone                         | NOT_REVERTED (deleted, or untagged and expired)         |
| tag names the overwriting digest, target there | put the target's manifest back under the tag            |

Only a target with a passing scan is put back: the content before an overwrite is not necessarily the
team's (someone who pushes a release tag before CI does makes CI's push the "overwrite"). Only images of
the stack's own registry (account and region) are reverted: the reverter's ECR client and role are there.
When the request is settled, whatever the outcome, the pointer's marker is released (`TagPointer`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from tagwarden.domain.alerts import Alert, RevertOutcome, RevertStatus
from tagwarden.domain.images import ImageName, ecr_host_parts
from tagwarden.domain.rules import TagDecision
from tagwarden.domain.rules import short_digest as short
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tag_policy import TagClass, TagPolicy
from tagwarden.domain.tags import TagRef


@dataclass(frozen=True, slots=True)
class RevertScope:
    """Which overwrites are reverted: protected tags of the stack's own registry (`account`, `region`), in
    repositories whose name starts with a prefix. Prefixes are string prefixes: `shop` also covers
    `shopping`; `shop/` means the namespace. Without a known account and region nothing is covered."""

    prefixes: tuple[str, ...] = ()
    account: str | None = None
    region: str | None = None

    def covers(self, tag: TagRef, policy: TagPolicy) -> bool:
        """Whether an overwrite of `tag` is to be reverted."""
        return (
            policy.classify(tag.tag) is TagClass.PROTECTED
            and self.covers_registry(tag.image)
            and self.covers_repository(tag.image.repository)
        )

    def covers_registry(self, image: ImageName) -> bool:
        """Whether the image is in the stack's own ECR registry: the only one the reverter reads and writes
        (another region's or account's repository of the same name is another repository)."""
        account, region = ecr_host_parts(image.registry)
        return self.account is not None and (account, region) == (self.account, self.region)

    def covers_repository(self, repository: str) -> bool:
        """Whether the repository is under one of the prefixes (an empty prefix never counts: it would mean all)."""
        return any(prefix and repository.startswith(prefix) for prefix in self.prefixes)


@dataclass(frozen=True, slots=True)
class RevertRequest:
    """A revert asked for by the overwrite recorded at `entry_key` in the tag's history."""

    tag: TagRef
    entry_key: str


@dataclass(frozen=True, slots=True)
class PendingRevert:
    """A recorded revert request: the content to put back and the overwriting content, and its state."""

    request: RevertRequest
    target: str
    overwriting: str
    status: RevertStatus
    detail: str | None = None

    @property
    def pending(self) -> bool:
        """Not decided yet: the reverter has not recorded an outcome."""
        return self.status is RevertStatus.PENDING


@dataclass(frozen=True, slots=True)
class RevertTarget:
    """What the ledger knows of the content a revert would put back: its latest scan, when it was first seen."""

    scan: ScanState | None = None
    first_seen_at: datetime | None = None

    @property
    def passing(self) -> bool:
        """Whether the target has a completed, passing scan: the only content the reverter restores."""
        return self.scan is not None and self.scan.passing


class Mutability(StrEnum):
    """ECR's tag mutability settings."""

    MUTABLE = "MUTABLE"
    IMMUTABLE = "IMMUTABLE"
    MUTABLE_WITH_EXCLUSION = "MUTABLE_WITH_EXCLUSION"
    IMMUTABLE_WITH_EXCLUSION = "IMMUTABLE_WITH_EXCLUSION"


@dataclass(frozen=True, slots=True)
class RegistryView:
    """What the registry holds for a revert: mutability, where the tag points, whether the target is there."""

    mutability: Mutability
    tag_digest: str | None
    target_present: bool


class RevertAction(StrEnum):
    """What the reverter does with a request the registry allows: put the target back under the tag."""

    PUT_BACK = "put_back"


def decide_revert(pending: PendingRevert, registry: RegistryView, target: RevertTarget) -> RevertOutcome | RevertAction:
    """The module docstring's table: an outcome without writing to the registry, or PUT_BACK.

    With exclusion filters, whether the tag may move is ECR's to say: PutImage refuses (see `refused`).
    """
    if registry.mutability is Mutability.IMMUTABLE:
        return RevertOutcome(status=RevertStatus.NOT_REVERTED, detail=IMMUTABLE)
    if registry.tag_digest == pending.target:
        return RevertOutcome(status=RevertStatus.REVERTED, detail=already_back(pending))
    if registry.tag_digest is None:
        return RevertOutcome(
            status=RevertStatus.NOT_REVERTED,
            detail="the tag was deleted from the repository since: nothing to put back",
        )
    if registry.tag_digest != pending.overwriting:
        return RevertOutcome(
            status=RevertStatus.NOT_REVERTED,
            detail=(
                f"the tag moved again since (it now names {short(registry.tag_digest)}): that move has its own "
                "alert, and a revert of its own if the tag is still in scope"
            ),
        )
    if not target.passing:
        return RevertOutcome(status=RevertStatus.NOT_REVERTED, detail=unscanned(pending, target))
    if not registry.target_present:
        return RevertOutcome(status=RevertStatus.NOT_REVERTED, detail=gone(pending))
    return RevertAction.PUT_BACK


IMMUTABLE = "the repository's tags are immutable now: ECR refuses to move the tag back"


def out_of_scope(repository: str) -> RevertOutcome:
    """A request for a repository outside the prefixes (the reverter's role may not write there either)."""
    return RevertOutcome(
        status=RevertStatus.NOT_REVERTED,
        detail=f"the repository {repository} is not under the revert's repository prefixes",
    )


def unscanned(pending: PendingRevert, target: RevertTarget) -> str:
    """Why a target without a passing scan is not put back (it may be a squatter's content, not the team's)."""
    seen = f"first pushed {target.first_seen_at:%Y-%m-%d %H:%M:%S}Z" if target.first_seen_at else "push time unknown"
    scan = target.scan
    if scan is not None and scan.completed:
        return f"the previous image {short(pending.target)} ({seen}) did not pass its scan: not restored"
    return f"the previous image {short(pending.target)} ({seen}) never passed a scan: not restored"


def other_registry(image: ImageName) -> RevertOutcome:
    """A request for an image outside the stack's own account and region (the reverter writes only there)."""
    return RevertOutcome(
        status=RevertStatus.NOT_REVERTED,
        detail=(
            f"the registry {image.registry} is not the stack's own (account and region): the reverter writes only there"
        ),
    )


def gone(pending: PendingRevert) -> str:
    """Why a target that is no longer in the repository cannot be put back."""
    return (
        f"the previous image {short(pending.target)} is no longer in the repository (deleted, or untagged and "
        "expired by a lifecycle policy)"
    )


def already_back(pending: PendingRevert) -> str:
    """A tag found naming its target again."""
    return f"the tag names the previous image {short(pending.target)} again"


def reverted(pending: PendingRevert) -> str:
    """A tag Tagwarden put back."""
    return f"Tagwarden put the tag back on the previous image {short(pending.target)}"


def failed(attempts: int, reason: str) -> RevertOutcome:
    """A revert given up after its last attempt failed (the alert goes out anyway, saying so)."""
    return RevertOutcome(
        status=RevertStatus.NOT_REVERTED, detail=f"the revert failed after {attempts} attempts: {reason}"
    )


def with_outcome(alerts: tuple[Alert, ...], outcome: RevertOutcome) -> tuple[Alert, ...]:
    """The overwrite's alerts saying what became of the revert (same ids: they are the same findings)."""
    sentence = {
        RevertStatus.REVERTED: f" Reverted: {outcome.detail}.",
        RevertStatus.NOT_REVERTED: f" Not reverted: {outcome.detail}.",
        RevertStatus.PENDING: f" Revert pending: {outcome.detail}.",
    }[outcome.status]
    return tuple(alert.model_copy(update={"revert": outcome, "summary": alert.summary + sentence}) for alert in alerts)


def request_revert(decision: TagDecision, tag: TagRef, scope: RevertScope, policy: TagPolicy) -> TagDecision:
    """A current overwrite of a tag in scope, asking for the revert; any other decision unchanged.

    The target is the revert already outstanding on the tag, if any (an attacker who pushes twice must
    not make the first overwrite the content to restore), else the content the tag named before.
    """
    move, pointer = decision.move, decision.pointer
    if pointer is None or not move.moved or move.reverts or not scope.covers(tag, policy):
        return decision
    target = move.revert_to or move.previous_digest
    # The marker names this request, pending: the reverter releases it when it settles this one.
    return replace(
        decision,
        move=replace(move, revert_to=target, revert_requested=True),
        pointer=replace(pointer, revert_to=target, revert_request=move.source.key, revert_settled_at=None),
    )
