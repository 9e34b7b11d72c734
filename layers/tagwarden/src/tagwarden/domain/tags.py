"""Tags as mutable pointers: the facts that move them and the ledger's view of where they point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from tagwarden.domain.alerts import Actor, Alert, RevertStatus
from tagwarden.domain.images import ImageName, validate_digest, validate_tag
from tagwarden.domain.scans import ScannedDigest, ScanState
from tagwarden.domain.sources import SourceEvent


class TagAction(StrEnum):
    """What happened to a tag."""

    PUSH = "PUSH"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class TagRef:
    """One tag of one repository."""

    image: ImageName
    tag: str

    def __post_init__(self) -> None:
        validate_tag(self.tag)

    def __str__(self) -> str:
        return f"{self.image}:{self.tag}"


@dataclass(frozen=True, slots=True)
class ImageAction:
    """A push or delete reported by the registry. Without a tag, it concerns the digest only."""

    action: TagAction
    image: ImageName
    digest: str
    tag: str | None
    source: SourceEvent
    # The manifest's media type as the registry reported it: an image index needs its platforms read.
    media_type: str | None = None

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        if self.tag is not None:
            validate_tag(self.tag)

    @property
    def tag_ref(self) -> TagRef | None:
        """The tag this action moves, if any."""
        return TagRef(self.image, self.tag) if self.tag is not None else None


# How long after a revert is recorded REVERTED a push of its target still counts as the revert's own push:
# ECR times its event at the PutImage, before the outcome; the margin is for clocks, not for delivery delays
# (a late delivery keeps its event time).
REVERT_PUSH_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class TagPointer:
    """Where a tag points now, according to the ledger.

    After a DELETE the tag points nowhere (`digest` is None) but `last_digest` remembers the content it
    named, so that a later push of other content is still seen as an overwrite.
    """

    digest: str | None
    last_digest: str
    event_key: str
    version: int
    scan: ScanState | None = None
    # The newest digest this tag named that had a completed scan: what "the scan of this tag" checked.
    last_scanned: ScannedDigest | None = None
    # Where workloads were seen using the tag ("cluster/namespace/kind/name" -> last seen).
    in_use: Mapping[str, datetime] = field(default_factory=dict)
    # Opt-in revert (domain.revert): the content a requested revert puts the tag back on, until it is back;
    # the history entry whose request set it; when the reverter settled that request REVERTED (None: still
    # pending). A request settled NOT_REVERTED removes all three.
    revert_to: str | None = None
    revert_request: str | None = None
    revert_settled_at: datetime | None = None

    def revert_expected(self, at: datetime) -> bool:
        """Whether a push at `at` of `revert_to` can be the revert's own push: while its request is pending,
        or just REVERTED (ECR's event for the reverter's PutImage is timed before the outcome is recorded).
        Never by digest alone: anyone may push that content later, and that push is an overwrite like any."""
        if self.revert_to is None:
            return False
        return self.revert_settled_at is None or at <= self.revert_settled_at + REVERT_PUSH_WINDOW

    @property
    def deleted(self) -> bool:
        """True when the tag was deleted and not pushed again."""
        return self.digest is None

    def scanned_mark(self) -> ScannedDigest | None:
        """The digest this pointer names (or last named), if it has a completed scan, else the older mark."""
        if self.scan is not None and self.scan.completed:
            return ScannedDigest(self.last_digest, self.scan.scanned_at)
        return self.last_scanned


@dataclass(frozen=True, slots=True)
class TagMove:
    """One entry of a tag's history: the tag was pushed to, or deleted from, a digest."""

    action: TagAction
    digest: str
    previous_digest: str | None
    source: SourceEvent
    late: bool = False
    # The alerts this entry raised (their delivery is the outbox's business, not the history's).
    alerts: tuple[Alert, ...] = ()
    # The history position of the entry before this one; a late event that lands in between rewrites it,
    # so the history always reads as one chain in time order.
    previous_key: str | None = None
    # Whether an alert was raised for the change of content into this entry (by it, or by a late entry).
    alerted: bool = False
    # Opt-in revert (domain.revert): the revert target outstanding after this entry, whether this entry asked
    # for the revert (an overwrite in scope), and whether this push put the tag back (the revert's own push).
    revert_to: str | None = None
    revert_requested: bool = False
    reverts: bool = False
    # The state of the revert this entry asked for (None: it asked for none), as read back from the ledger.
    revert_status: RevertStatus | None = None
    # Who made the call, once CloudTrail said (before or after this entry was recorded).
    actor: Actor | None = None

    @property
    def moved(self) -> bool:
        """A push that made the tag name different content than before."""
        return (
            self.action is TagAction.PUSH and self.previous_digest is not None and self.previous_digest != self.digest
        )
