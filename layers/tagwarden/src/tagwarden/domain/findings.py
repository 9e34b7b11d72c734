"""Amazon Inspector's findings on ECR images, and what they add up to between scans.

Inspector's enhanced scanning re-evaluates images continuously: after an image's initial scan (one
`Inspector2 Scan` summary) it reports each finding as it is created, updated, suppressed or closed (one
`Inspector2 Finding` event per finding and image, delivered at least once, in any order). The ledger keeps
each finding under its digest (by `findingArn`, the newest event winning) and a tally of the digest:

- `active`: findings whose newest event is ACTIVE or CLOSED, by severity;
- `closed`: findings whose newest event is SUPPRESSED, by severity;
- `summary`: the counts of the scan summary (CRITICAL, HIGH, MEDIUM), and `unrated`, the findings its
  TOTAL counted beyond those (LOW, INFORMATIONAL or UNTRIAGED: their severity is not reported).

A severity counts `max(active, summary - closed)`: the summary stands for findings whose own events have
not arrived yet (a burst of finding events in any order never shows a failing image as passing), and
findings seen suppressed take their share off it (so suppressing them clears a failure). A CLOSED finding
still counts: the content of a digest never changes, and Inspector also closes the findings of an image it
stops monitoring (the ECR rescan duration ran out), so a closure says nothing about the image itself; only a
suppression (a decision of the account's security staff, through Inspector's suppression rules) clears it.
Unrated findings are resolved by the low-severity findings seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from tagwarden.domain.images import ImageName, validate_digest, validate_tag
from tagwarden.domain.scans import FindingSeverity, Verdict, verdict_for
from tagwarden.domain.sources import SourceEvent

INSPECTOR_SCANNER = "inspector"
_LOW_OR_UNRATED = (FindingSeverity.LOW.value, FindingSeverity.INFORMATIONAL.value, FindingSeverity.UNDEFINED.value)


class FindingStatus(StrEnum):
    """Inspector's finding status: only ACTIVE findings count against an image."""

    ACTIVE = "ACTIVE"
    SUPPRESSED = "SUPPRESSED"
    CLOSED = "CLOSED"

    @property
    def counts_against_the_image(self) -> bool:
        """Whether the finding still counts (see the module docstring: only a suppression clears it)."""
        return self is not FindingStatus.SUPPRESSED


@dataclass(frozen=True, slots=True)
class FindingReported:
    """Inspector reported the current state of one finding on one image (created, updated or closed)."""

    image: ImageName
    digest: str
    finding_arn: str
    severity: FindingSeverity
    status: FindingStatus
    tags: tuple[str, ...]
    source: SourceEvent
    title: str = ""

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        for tag in self.tags:
            validate_tag(tag)

    @property
    def finding_id(self) -> str:
        """A key-safe identity of the finding (its ARN is long and Inspector's own format)."""
        return hashlib.sha256(self.finding_arn.encode()).hexdigest()[:32]

    @property
    def known(self) -> KnownFinding:
        """The finding as the ledger keeps it after this event."""
        return KnownFinding(self.severity, self.status, self.source.key)


@dataclass(frozen=True, slots=True)
class KnownFinding:
    """One finding of a digest as the ledger holds it: from its newest event (`event_key`)."""

    severity: FindingSeverity
    status: FindingStatus
    event_key: str

    def newer_than(self, other: KnownFinding | None) -> bool:
        """Whether this report replaces `other` (an older or repeated event changes nothing)."""
        return other is None or self.event_key > other.event_key


def _add(counts: Mapping[str, int], name: str, delta: int) -> dict[str, int]:
    changed = dict(counts)
    changed[name] = changed.get(name, 0) + delta
    return {severity: count for severity, count in changed.items() if count > 0}


@dataclass(frozen=True, slots=True)
class FindingTally:
    """What the ledger knows of a digest's Inspector findings (see the module docstring)."""

    active: Mapping[str, int] = field(default_factory=dict)
    closed: Mapping[str, int] = field(default_factory=dict)
    summary: Mapping[str, int] | None = None
    unrated: int = 0
    # Bumped on every change: writes of the tally are conditioned on the version they read.
    version: int = 0

    def with_summary(self, counts: Mapping[str, int], unrated: int) -> FindingTally:
        """The tally with a scan summary (rated counts, and the findings its total counted without a severity)."""
        return replace(self, summary=dict(counts), unrated=unrated, version=self.version + 1)

    def with_finding(self, before: KnownFinding | None, after: KnownFinding) -> FindingTally:
        """The tally once one finding went from `before` (None: not seen yet) to `after`."""
        active, closed = dict(self.active), dict(self.closed)
        if before is not None:
            if before.status.counts_against_the_image:
                active = _add(active, before.severity.value, -1)
            else:
                closed = _add(closed, before.severity.value, -1)
        if after.status.counts_against_the_image:
            active = _add(active, after.severity.value, 1)
        else:
            closed = _add(closed, after.severity.value, 1)
        return replace(self, active=active, closed=closed, version=self.version + 1)

    def counts(self) -> dict[str, int]:
        """Finding counts by severity: the active findings, or the summary's share still unaccounted for."""
        summary = self.summary or {}
        counts = {
            name: max(self.active.get(name, 0), summary.get(name, 0) - self.closed.get(name, 0))
            for name in {*self.active, *summary}
        }
        return {name: count for name, count in counts.items() if count > 0}

    def unresolved(self) -> int:
        """Findings the summary counted without a severity that no finding event has accounted for yet."""
        seen = sum(self.active.get(name, 0) + self.closed.get(name, 0) for name in _LOW_OR_UNRATED)
        return max(0, self.unrated - seen)

    def verdict(self, fail_severity: FindingSeverity) -> Verdict:
        """The verdict these counts give under `fail_severity` (undecided while unrated findings could fail)."""
        return verdict_for(self.counts(), fail_severity, self.unresolved())


def revision_key(report: SourceEvent, current_key: str | None) -> str:
    """The key of the scan state a finding event gives the digest: the event's own position in time, or,
    for an event older than the digest's current state (delivered late), just after that state.

    A finding event changes what is known now, whatever its age, so its state always supersedes the
    current one; its scan history entry sits at the same key.
    """
    own = report.key
    if current_key is None or own > current_key:
        return own
    return f"{current_key}+{report.event_id}"
