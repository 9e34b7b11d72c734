"""Scan results as the ledger keeps them: which digest was checked, when, by whom, and the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from tagwarden.domain.images import ImageName, validate_digest, validate_tag
from tagwarden.domain.sources import SourceEvent


class ScanStatus(StrEnum):
    """Whether the scanner finished; a FAILED scan checked nothing."""

    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


class Verdict(StrEnum):
    """`fail` when any finding is at or above the configured fail severity.

    `undecided` when the report cannot tell: Inspector's scan summary breaks out CRITICAL, HIGH and MEDIUM
    only, so with a fail severity of LOW or INFORMATIONAL the rest of its TOTAL may or may not fail. An
    undecided digest is not passing (check, pin and the audit watcher treat it like a failing one).
    """

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    UNDECIDED = "undecided"


class FindingSeverity(StrEnum):
    """One vocabulary for ECR basic scanning and Amazon Inspector finding severities."""

    INFORMATIONAL = "INFORMATIONAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"
    # Findings the scanner could not rate (ECR `UNDEFINED`, Inspector `UNTRIAGED`); never fail a scan alone.
    UNDEFINED = "UNDEFINED"


_RANKED = (
    FindingSeverity.INFORMATIONAL,
    FindingSeverity.LOW,
    FindingSeverity.MEDIUM,
    FindingSeverity.HIGH,
    FindingSeverity.CRITICAL,
)
# Most severe first, as people read counts; findings the scanner could not rate come after every rated one.
_MOST_SEVERE_FIRST = {
    severity.value: rank for rank, severity in enumerate((*reversed(_RANKED), FindingSeverity.UNDEFINED))
}


def by_severity(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Finding counts, most severe first (CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, then unrated ones)."""
    return sorted(counts.items(), key=lambda item: _MOST_SEVERE_FIRST.get(item[0], len(_MOST_SEVERE_FIRST)))


def severity_counts(counts: Mapping[str, int]) -> str:
    """`2 CRITICAL, 1 HIGH`: counts most severe first, as alerts, checks and the command word them."""
    return ", ".join(f"{count} {name}" for name, count in by_severity(counts))


_ALIASES = {"UNTRIAGED": FindingSeverity.UNDEFINED, "INFO": FindingSeverity.INFORMATIONAL}
# Inspector's TOTAL counts every finding, including ones not broken down by severity: not a severity.
REPORTED_TOTAL_KEY = "TOTAL"


def normalise_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Finding counts keyed by FindingSeverity names; unknown labels count as UNDEFINED, TOTAL is dropped."""
    normalised: dict[str, int] = {}
    for label, count in counts.items():
        name = label.strip().upper()
        if name == REPORTED_TOTAL_KEY or count == 0:
            continue
        severity = _ALIASES.get(name) or (
            FindingSeverity(name) if name in FindingSeverity.__members__ else FindingSeverity.UNDEFINED
        )
        normalised[severity.value] = normalised.get(severity.value, 0) + count
    return normalised


def verdict_for(counts: Mapping[str, int], fail_severity: FindingSeverity, unrated: int = 0) -> Verdict:
    """`fail` when any finding is at or above `fail_severity` (UNDEFINED findings never count).

    `unrated` findings were counted without a severity (Inspector's TOTAL beyond CRITICAL, HIGH and MEDIUM,
    so LOW, INFORMATIONAL or UNTRIAGED): they decide nothing when the fail severity is MEDIUM or above, and
    leave the verdict `undecided` below that, unless a rated finding already fails it.
    """
    threshold = _RANKED.index(fail_severity) if fail_severity in _RANKED else 0
    failing = {severity.value for severity in _RANKED[threshold:]}
    if any(counts.get(name, 0) > 0 for name in failing):
        return Verdict.FAIL
    if unrated > 0 and threshold <= _RANKED.index(FindingSeverity.LOW):
        return Verdict.UNDECIDED
    return Verdict.PASS


@dataclass(frozen=True, slots=True)
class ScanState:
    """The latest scan known for one digest."""

    status: ScanStatus
    scanned_at: datetime
    scanner: str
    verdict: Verdict | None = None
    finding_counts: dict[str, int] = field(default_factory=dict)
    event_key: str | None = None
    # The event key of the scan that turned the verdict to `fail`, kept while later scans still fail: one
    # failing episode of the digest, so its deployment findings are raised once per change of verdict.
    failing_since: str | None = None
    # When the ledger learned of that episode: the recorder's clock as it wrote the state that started it
    # (None for states recorded before this was kept). A rollout of the content begun later is a new finding
    # (`deployments.vulnerable_alert_id`); the scan event's own time would not do, as it may predate a
    # rollout that its delivery follows.
    failing_recorded_at: datetime | None = None

    @property
    def completed(self) -> bool:
        """A completed scan counts as 'scanned'; a failed one does not."""
        return self.status is ScanStatus.COMPLETE

    @property
    def passing(self) -> bool:
        """Completed with no finding at or above the fail severity."""
        return self.completed and self.verdict is Verdict.PASS

    def supersedes(self, other: ScanState | None) -> bool:
        """Whether this scan becomes the digest's scan state instead of `other`.

        A completed scan replaces any failed one and older completed ones; a failed scan replaces only an
        older failed one, because a failed rescan does not undo what a completed scan checked.
        """
        if other is None:
            return True
        newer = (self.event_key or "") > (other.event_key or "")
        if self.completed:
            return not other.completed or newer
        return not other.completed and newer

    def following(self, previous: ScanState | None, recorded_at: datetime | None = None) -> ScanState:
        """This state as the successor of the digest's `previous` one: a failing verdict continues the
        previous failing episode, or starts one at this scan, learned by the ledger at `recorded_at`."""
        if self.verdict is not Verdict.FAIL:
            return replace(self, failing_since=None, failing_recorded_at=None)
        if previous is not None and previous.verdict is Verdict.FAIL:
            # A state recorded before episodes existed has none: its findings keep their ids.
            return replace(self, failing_since=previous.failing_since, failing_recorded_at=previous.failing_recorded_at)
        return replace(self, failing_since=self.event_key, failing_recorded_at=recorded_at)

    def turned_failing(self, previous: ScanState | None) -> bool:
        """Whether this state, replacing `previous`, changes the digest's verdict to `fail`."""
        return self.verdict is Verdict.FAIL and (previous is None or previous.verdict is not Verdict.FAIL)


@dataclass(frozen=True, slots=True)
class ScannedDigest:
    """A digest that had a completed scan, remembered by a tag that named it."""

    digest: str
    scanned_at: datetime


@dataclass(frozen=True, slots=True)
class ScanCompleted:
    """A scanner reported on one digest (its tags at that moment, as the scanner saw them)."""

    image: ImageName
    digest: str
    tags: tuple[str, ...]
    scanner: str
    status: ScanStatus
    finding_counts: dict[str, int]
    source: SourceEvent
    reported_total: int | None = None

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        for tag in self.tags:
            validate_tag(tag)

    @property
    def unrated(self) -> int:
        """Findings the report counted without a severity: a reported total beyond the rated counts."""
        if self.reported_total is None:
            return 0
        return max(0, self.reported_total - sum(self.finding_counts.values()))

    def state(self, fail_severity: FindingSeverity) -> ScanState:
        """The scan state this report gives the digest."""
        return ScanState(
            status=self.status,
            scanned_at=self.source.event_time,
            scanner=self.scanner,
            verdict=verdict_for(self.finding_counts, fail_severity, self.unrated)
            if self.status is ScanStatus.COMPLETE
            else None,
            finding_counts=dict(self.finding_counts),
            event_key=self.source.key,
        )
