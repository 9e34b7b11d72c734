"""Detection rules for completed scans: where the scan state goes, and which tags moved meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from tagwarden.domain.alerts import Alert
from tagwarden.domain.rules import MoveFacts, tag_move_alert
from tagwarden.domain.scans import ScanCompleted, ScannedDigest, ScanState
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.domain.workloads import recent_sites


@dataclass(frozen=True, slots=True)
class ScanSnapshot:
    """What the ledger holds for one scanned digest, read before deciding.

    `pointers` has an entry (possibly None, for a tag the ledger never saw) for every tag named by the
    scan event or ever pushed to the digest (`known_tags`).
    """

    current: ScanState | None
    known_tags: frozenset[str]
    pointers: Mapping[str, TagPointer | None]


@dataclass(frozen=True, slots=True)
class ScanDecision:
    """What to write for one scan: the digest's new state, the pointers that carry it, and alerts."""

    state: ScanState
    replaces_current: bool
    # Tags that point at the scanned digest, with the scan state copied onto their pointer.
    pointer_updates: Mapping[str, TagPointer]
    # Tags that moved away from the digest during its scan: their pointers learn that the digest they
    # named was scanned after all (so the kubelet running the new content is a digest mismatch).
    moved_tags: Mapping[str, TagPointer]
    alerts: tuple[Alert, ...]


def decide_scan(
    scan: ScanCompleted,
    state: ScanState,
    snapshot: ScanSnapshot,
    policy: TagPolicy,
    detected_at: datetime,
) -> ScanDecision:
    """Record the scan, copy it onto the pointers of tags naming this digest, and alert tags that moved.

    A tag that was pushed to this digest but names an unscanned digest by the time the digest's first
    completed scan arrives moved during the scan: whoever waited for "the scan of the tag" got this
    digest's result while the tag names something else. Later scans of the same digest raise nothing
    here: a move after the first completed scan is alerted by the push guard as TAG_MOVED_AFTER_SCAN.
    """
    updates: dict[str, TagPointer] = {}
    moved: dict[str, TagPointer] = {}
    alerts: list[Alert] = []
    first_completed = state.completed and not (snapshot.current is not None and snapshot.current.completed)
    for tag_name, pointer in sorted(snapshot.pointers.items()):
        if pointer is None:
            continue
        # A deleted tag still remembers its last content: it learns that content's scan too.
        if (pointer.digest or pointer.last_digest) == scan.digest:
            if state.supersedes(pointer.scan):
                updates[tag_name] = replace(pointer, scan=state, version=pointer.version + 1)
            continue
        moved_on = pointer.digest is not None and not (pointer.scan is not None and pointer.scan.completed)
        if first_completed and tag_name in snapshot.known_tags and moved_on and pointer.digest is not None:
            tag = TagRef(scan.image, tag_name)
            facts = MoveFacts(
                tag,
                previous_digest=scan.digest,
                current_digest=pointer.digest,
                source=scan.source,
                previous_scan=state,
                current_scan=pointer.scan,
                evidence=(scan.source.event_id,),
                in_use=recent_sites(pointer.in_use, detected_at),
            )
            alerts.append(tag_move_alert(facts, policy, detected_at))
            mark = ScannedDigest(scan.digest, state.scanned_at)
            moved[tag_name] = replace(pointer, last_scanned=mark, version=pointer.version + 1)
    return ScanDecision(
        state=state,
        replaces_current=state.supersedes(snapshot.current),
        pointer_updates=updates,
        moved_tags=moved,
        alerts=tuple(alerts),
    )
