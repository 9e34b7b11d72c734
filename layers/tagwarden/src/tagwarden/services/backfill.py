"""Backfill: seed the ledger from what the registry holds now, through the same services as live events.

Every image becomes synthetic facts fed to the real push guard and scan recorder, so the ledger is
written exactly as live events write it (same decisions, same alerts, same conditional writes):

* each tag of an image: a PUSH at the image's push time;
* an image without tags: an untagged PUSH;
* an image with a finished scan (COMPLETE or FAILED): a scan report at the scan's completion time.

Synthetic event ids are derived from what they describe (`backfill-<hash>`), so a second run delivers
the same events again and the services see duplicates: re-running is safe and adds no history. Facts
the ledger already learned from live events are skipped, so a backfill does not clutter a tag's
history with a second copy of a push it already holds.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from tagwarden.clock import utcnow
from tagwarden.domain.images import InvalidReferenceError, is_valid_tag
from tagwarden.domain.registry import RegistryImage, RegistryRepository
from tagwarden.domain.scans import REPORTED_TOTAL_KEY, ScanCompleted, normalise_counts
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import ImageAction, TagAction, TagRef
from tagwarden.services.results import Outcome, Result

if TYPE_CHECKING:
    from tagwarden.ports import ImageInventory, LedgerReader
    from tagwarden.services.push_guard import PushGuard
    from tagwarden.services.scan_recorder import ScanRecorder

BACKFILL_EVENT_PREFIX = "backfill-"


class Seeding(StrEnum):
    """What a backfill did with one synthetic fact."""

    RECORDED = "recorded"
    LATE = "late"  # older than what the ledger holds for the tag: recorded in history only
    DUPLICATE = "duplicate"  # recorded by an earlier backfill run
    ALREADY_KNOWN = "already known"  # the ledger learned it from live events: skipped
    NO_SCAN = "no scan"
    INVALID = "invalid"  # a name the ledger cannot hold (skipped)


@dataclass(frozen=True, slots=True)
class SeededFact:
    """One synthetic fact and its outcome."""

    kind: str  # "tag", "untagged" or "scan"
    subject: str
    seeding: Seeding
    alerts: tuple[str, ...] = ()


@dataclass
class BackfillReport:
    """Totals of a backfill run."""

    repositories: int = 0
    images: int = 0
    tags: Counter[str] = field(default_factory=Counter)
    untagged: Counter[str] = field(default_factory=Counter)
    scans: Counter[str] = field(default_factory=Counter)
    alerts: list[str] = field(default_factory=list)

    def add(self, facts: Sequence[SeededFact]) -> None:
        """Count one image's facts."""
        self.images += 1
        for fact in facts:
            {"tag": self.tags, "untagged": self.untagged, "scan": self.scans}[fact.kind][fact.seeding.value] += 1
            self.alerts.extend(fact.alerts)


def synthetic_event_id(*subject: str) -> str:
    """A stable event id for a synthetic fact: the same subject always gets the same id."""
    digest = hashlib.sha256("|".join(subject).encode()).hexdigest()[:32]
    return f"{BACKFILL_EVENT_PREFIX}{digest}"


class Backfill:
    """Seeds the ledger from a registry inventory through the push guard and the scan recorder."""

    def __init__(
        self,
        inventory: ImageInventory,
        reader: LedgerReader,
        push_guard: PushGuard,
        scan_recorder: ScanRecorder,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._inventory = inventory
        self._reader = reader
        self._push_guard = push_guard
        self._scan_recorder = scan_recorder
        self._clock = clock

    def repositories(self, names: Sequence[str]) -> list[RegistryRepository]:
        """The repositories to seed: the named ones, or all of the registry's."""
        return self._inventory.repositories(names)

    def images(self, repository: RegistryRepository) -> list[RegistryImage]:
        """A repository's images, oldest push first, so tags are seeded in the order they were pushed."""
        return sorted(self._inventory.images(repository), key=lambda image: (image.pushed_at, image.digest))

    def seed(self, image: RegistryImage) -> list[SeededFact]:
        """Record the image's tags (or its untagged push), then its scan."""
        facts = [self._seed_tag(image, tag) for tag in sorted(image.tags)]
        if not image.tags:
            facts.append(self._seed_untagged(image))
        facts.append(self._seed_scan(image))
        return facts

    def _seed_tag(self, image: RegistryImage, tag: str) -> SeededFact:
        name = image.repository.image
        subject = f"{name}:{tag}@{image.digest}"
        try:
            action = self._push(image, tag, synthetic_event_id(subject))
            tag_ref = TagRef(name, tag)
        except InvalidReferenceError:
            return SeededFact("tag", subject, Seeding.INVALID)
        pointer = self._reader.pointer(tag_ref)
        if pointer is not None and pointer.digest == image.digest and pointer.event_key != action.source.key:
            return SeededFact("tag", subject, Seeding.ALREADY_KNOWN)
        if pointer is not None and action.source.key < pointer.event_key:
            # ECR says the tag names this image now, the ledger says it names other content since a later
            # event: a move was missed. The image's push time is not when the tag moved, so the move is
            # recorded as seen now, and becomes the tag's current pointer (and its alert), as it is in ECR.
            moved = replace(action.source, event_time=self._clock())
            action = replace(action, source=moved)
        return _fact("tag", subject, self._push_guard.handle(action))

    def _seed_untagged(self, image: RegistryImage) -> SeededFact:
        subject = f"{image.repository.image}@{image.digest}"
        try:
            action = self._push(image, None, synthetic_event_id(subject))
        except InvalidReferenceError:
            return SeededFact("untagged", subject, Seeding.INVALID)
        return _fact("untagged", subject, self._push_guard.handle(action))

    def _seed_scan(self, image: RegistryImage) -> SeededFact:
        name = image.repository.image
        subject = f"{name}@{image.digest}"
        scan = image.listed_scan or (self._inventory.scan_of(image) if image.scan_to_look_up else None)
        if scan is None:
            return SeededFact("scan", subject, Seeding.NO_SCAN)
        completed_at = _utc(scan.completed_at)
        event_id = synthetic_event_id(subject, scan.scanner, scan.status.value, completed_at.isoformat())
        repository = image.repository
        try:
            report = ScanCompleted(
                image=name,
                digest=image.digest,
                # A tag the ledger cannot hold (ECR allows longer ones) must not cost the digest its scan.
                tags=tuple(tag for tag in image.tags if is_valid_tag(tag)),
                scanner=scan.scanner,
                status=scan.status,
                finding_counts=normalise_counts(scan.finding_counts),
                source=SourceEvent(event_id, completed_at, repository.account, repository.region),
                reported_total=scan.finding_counts.get(REPORTED_TOTAL_KEY),
            )
        except InvalidReferenceError:
            return SeededFact("scan", subject, Seeding.INVALID)
        known = self._reader.scan_states(name, [image.digest]).get(image.digest)
        if known is not None and known.event_key != report.source.key and known.scanned_at >= completed_at:
            return SeededFact("scan", subject, Seeding.ALREADY_KNOWN)
        return _fact("scan", subject, self._scan_recorder.handle(report))

    @staticmethod
    def _push(image: RegistryImage, tag: str | None, event_id: str) -> ImageAction:
        repository = image.repository
        return ImageAction(
            action=TagAction.PUSH,
            image=repository.image,
            digest=image.digest,
            tag=tag,
            source=SourceEvent(event_id, _utc(image.pushed_at), repository.account, repository.region),
            # An index's platforms are read from the registry by the push guard, as for a live push.
            media_type=image.media_type,
        )


# Synthetic facts are never ignored; untagged pushes are idempotent updates, so they are "recorded" every run.
_SEEDING = {
    Outcome.RECORDED: Seeding.RECORDED,
    Outcome.UNTAGGED: Seeding.RECORDED,
    Outcome.LATE: Seeding.LATE,
    Outcome.DUPLICATE: Seeding.DUPLICATE,
}


def _fact(kind: str, subject: str, result: Result) -> SeededFact:
    return SeededFact(kind, subject, _SEEDING[result.outcome], result.alerts)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
