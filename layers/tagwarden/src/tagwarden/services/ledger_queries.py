"""Read-side queries for people and CI gates: a tag's timeline, and whether an image may be deployed.

`check` answers one question for a CI gate: does the content this reference pulls have a passing,
completed scan, and is it still the content that was scanned? The answer is a table of refusals
(domain.refusals, the reasons the admission webhook gives too):

| reference | ledger state                                             | refusal          |
|-----------|----------------------------------------------------------|------------------|
| tag       | the ledger never saw the tag                             | UNKNOWN_TAG      |
| digest    | the ledger never saw the digest                          | UNKNOWN_DIGEST   |
| tag       | the tag was deleted and not pushed again                 | TAG_DELETED      |
| tag@digest| the tag now names another digest than the referenced one | TAG_MOVED        |
| tag       | the pointer carries a scan that is not of its digest     | TAG_MOVED        |
| tag       | no completed scan of its digest, but the tag's last      | TAG_MOVED        |
|           | completed scan checked another digest                    |                  |
| any       | the digest has no scan at all                            | UNSCANNED        |
| any       | the digest's only scans FAILED (checked nothing)         | SCAN_FAILED      |
| any       | the completed scan has findings at the fail severity     | FAILING_VERDICT  |
| any       | the scan's counts cannot decide under the fail severity  | UNDECIDED_VERDICT|
| any       | otherwise                                                | (passes)         |

An image index (a multi-platform image) is judged like any digest, by its derived scan state: it passes
when every platform manifest has a completed scan and none fails. A refusal of an index names the
platforms that are not scanned (yet), and `pin` keeps the index digest, so that every platform still works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from tagwarden.domain.images import ImageReference
from tagwarden.domain.indexes import ImageIndex
from tagwarden.domain.refusals import Refusal
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict, severity_counts
from tagwarden.domain.tags import TagMove, TagPointer, TagRef

if TYPE_CHECKING:
    from tagwarden.ports import LedgerReader


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One entry of a tag's timeline, with the scan state its digest has now."""

    move: TagMove
    scan: ScanState | None
    # When the entry's digest is an image index: its entries, and the latest scan of each that has one.
    index: ImageIndex | None = None
    platform_scans: Mapping[str, ScanState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """The answer for one reference: the digest it resolves to, that digest's scan, and any refusal."""

    reference: ImageReference
    digest: str | None
    scan: ScanState | None
    refusal: Refusal | None
    reason: str

    @property
    def passed(self) -> bool:
        """True when the digest has a passing completed scan and the reference still resolves to it."""
        return self.refusal is None

    @property
    def pinned(self) -> str | None:
        """`registry/repository@digest` for a passing image: what a deployment should pull."""
        if not self.passed or self.digest is None:
            return None
        return f"{self.reference.name}@{self.digest}"


def judge_digest(reference: ImageReference, digest: str, scan: ScanState | None) -> ImageCheck:
    """Whether one known digest has a passing completed scan."""
    content = f"{reference.name}@{digest}"
    if scan is None:
        return ImageCheck(reference, digest, None, Refusal.UNSCANNED, f"unscanned: {content} has no scan")
    if scan.status is ScanStatus.FAILED:
        return ImageCheck(
            reference,
            digest,
            scan,
            Refusal.SCAN_FAILED,
            f"failed scan: the {scan.scanner} scan of {content} FAILED at {_when(scan)}Z and checked nothing",
        )
    if scan.verdict is Verdict.UNDECIDED:
        return ImageCheck(
            reference,
            digest,
            scan,
            Refusal.UNDECIDED_VERDICT,
            f"undecided verdict: the {scan.scanner} scan of {content} at {_when(scan)}Z found "
            f"{_counts(scan) if scan.finding_counts else 'no rated findings'} and findings of unreported severity "
            "that the fail severity could count",
        )
    if scan.verdict is not Verdict.PASS:
        return ImageCheck(
            reference,
            digest,
            scan,
            Refusal.FAILING_VERDICT,
            f"failing verdict: the {scan.scanner} scan of {content} at {_when(scan)}Z found {_counts(scan)}",
        )
    return ImageCheck(
        reference, digest, scan, None, f"passed: {content} has a passing {scan.scanner} scan from {_when(scan)}Z"
    )


def judge_tag(
    reference: ImageReference,
    pointer: TagPointer | None,
    digest_scan: ScanState | None,
    digest_scan_keys: frozenset[str],
) -> ImageCheck:
    """Whether a tag (optionally with the digest it was resolved to) may be deployed.

    `digest_scan` is the latest scan of the digest the pointer names and `digest_scan_keys` the event keys
    of every scan recorded for that digest: a pointer whose scan is not among them carries another
    content's scan.
    """
    assert reference.tag is not None
    tag = TagRef(reference.name, reference.tag)
    if pointer is None:
        return ImageCheck(
            reference, reference.digest, None, Refusal.UNKNOWN_TAG, f"unknown tag: {tag} is not in the ledger"
        )
    if pointer.digest is None:
        return ImageCheck(
            reference,
            None,
            None,
            Refusal.TAG_DELETED,
            f"tag deleted: {tag} was deleted and names no digest (it last named {pointer.last_digest})",
        )
    if reference.digest is not None and reference.digest != pointer.digest:
        return ImageCheck(
            reference,
            pointer.digest,
            digest_scan,
            Refusal.TAG_MOVED,
            f"tag moved since its last scan: {tag} now names {pointer.digest}, not {reference.digest}",
        )
    carried = pointer.scan
    if carried is not None and carried.event_key is not None and carried.event_key not in digest_scan_keys:
        return ImageCheck(
            reference,
            pointer.digest,
            digest_scan,
            Refusal.TAG_MOVED,
            f"tag moved since its last scan: the scan {tag} carries is not a scan of {pointer.digest}",
        )
    mark = pointer.scanned_mark()
    if (digest_scan is None or not digest_scan.completed) and mark is not None and mark.digest != pointer.digest:
        return ImageCheck(
            reference,
            pointer.digest,
            digest_scan,
            Refusal.TAG_MOVED,
            f"tag moved since its last scan: {tag} now names {pointer.digest}, which has no completed scan; "
            f"its last scan checked {mark.digest} at {mark.scanned_at:%Y-%m-%d %H:%M:%S}Z",
        )
    return judge_digest(reference, pointer.digest, digest_scan)


class LedgerQueries:
    """The questions the `tagwarden` command asks the ledger."""

    def __init__(self, reader: LedgerReader) -> None:
        self._reader = reader

    def tag_history(self, tag: TagRef) -> list[HistoryEntry] | None:
        """The tag's timeline, oldest first, each digest with its scan state (read in one batch); None if unknown."""
        moves = self._reader.history(tag)
        if not moves:
            return None
        digests = [move.digest for move in moves]
        scans = self._reader.scan_states(tag.image, digests)
        indexes = self._reader.indexes(tag.image, digests)
        entries_of_indexes = [child.digest for index in indexes.values() for child in index.children]
        platform_scans = self._reader.scan_states(tag.image, entries_of_indexes) if entries_of_indexes else {}
        entries: list[HistoryEntry] = []
        for move in moves:
            index = indexes.get(move.digest)
            held = index.children if index is not None else ()
            mine = {c.digest: platform_scans[c.digest] for c in held if c.digest in platform_scans}
            entries.append(HistoryEntry(move, scans.get(move.digest), index, mine))
        return entries

    def check(self, reference: ImageReference) -> ImageCheck:
        """Whether the content `reference` pulls has a passing completed scan and is still what was scanned."""
        result = self._check(reference)
        if result.refusal not in (Refusal.UNSCANNED, Refusal.SCAN_FAILED) or result.digest is None:
            return result
        index = self._reader.indexes(reference.name, [result.digest]).get(result.digest)
        if index is None:
            return result
        scans = self._reader.scan_states(reference.name, index.platform_digests)
        pending = [
            child.platform
            for child in index.children
            if not child.attestation and not ((s := scans.get(child.digest)) is not None and s.completed)
        ]
        platforms = ", ".join(pending) or "none"
        return replace(
            result, reason=f"{result.reason} (an image index; platforms without a completed scan: {platforms})"
        )

    def _check(self, reference: ImageReference) -> ImageCheck:
        if reference.tag is None:
            assert reference.digest is not None
            record = self._reader.digest_record(reference.name, reference.digest)
            if record is None:
                content = f"{reference.name}@{reference.digest}"
                return ImageCheck(
                    reference,
                    reference.digest,
                    None,
                    Refusal.UNKNOWN_DIGEST,
                    f"unknown digest: {content} is not in the ledger",
                )
            return judge_digest(reference, reference.digest, record[1])
        pointer = self._reader.pointer(TagRef(reference.name, reference.tag))
        if pointer is None or pointer.digest is None:
            return judge_tag(reference, pointer, None, frozenset())
        record = self._reader.digest_record(reference.name, pointer.digest)
        scan = record[1] if record is not None else None
        keys: frozenset[str] = frozenset()
        if pointer.scan is not None:
            keys = frozenset(
                s.event_key for s in self._reader.scan_history(reference.name, pointer.digest) if s.event_key
            )
        return judge_tag(reference, pointer, scan, keys)


def _when(scan: ScanState) -> str:
    return f"{scan.scanned_at:%Y-%m-%d %H:%M:%S}"


def _counts(scan: ScanState) -> str:
    return severity_counts(scan.finding_counts) or "findings at or above the fail severity"
