"""Detection rules for completed scans: where the scan state goes, and which tags moved meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from tagwarden.domain.alerts import Alert
from tagwarden.domain.indexes import ImageIndex, derived_scan
from tagwarden.domain.rules import MoveFacts, tag_move_alert
from tagwarden.domain.scans import ScanCompleted, ScannedDigest, ScanState
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.domain.workloads import recent_sites


@dataclass(frozen=True, slots=True)
class ParentSnapshot:
    """An image index that holds the scanned digest, as the ledger has it: what its scan state derives from."""

    index: ImageIndex
    current: ScanState | None
    # The index record's derivation counter: every write of a derived state bumps it, so two children's
    # scans deriving the index at once cannot both win on what each read of the other.
    derivation: int | None
    # The latest scans of the index's other children.
    sibling_scans: Mapping[str, ScanState]
    known_tags: frozenset[str]
    pointers: Mapping[str, TagPointer | None]


@dataclass(frozen=True, slots=True)
class ParentDecision:
    """What a child's scan changes on an index that holds it."""

    digest: str
    derivation: int | None
    # The index's new derived scan state, when it changed.
    state: ScanState | None
    pointer_updates: Mapping[str, TagPointer]
    moved_tags: Mapping[str, TagPointer]
    alerts: tuple[Alert, ...]


@dataclass(frozen=True, slots=True)
class ScanSnapshot:
    """What the ledger holds for one scanned digest, read before deciding.

    `pointers` has an entry (possibly None, for a tag the ledger never saw) for every tag named by the
    scan event or ever pushed to the digest (`known_tags`).
    """

    current: ScanState | None
    known_tags: frozenset[str]
    pointers: Mapping[str, TagPointer | None]
    # The image indexes that hold this digest (a platform manifest of a multi-platform image), by digest.
    parents: Mapping[str, ParentSnapshot] = field(default_factory=dict)


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
    # The indexes holding the digest, whose derived scan state this scan may change.
    parents: tuple[ParentDecision, ...] = ()


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


def decide_parents(
    scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, policy: TagPolicy, detected_at: datetime
) -> ScanDecision:
    """The decision, extended to the image indexes that hold the scanned digest.

    A platform manifest's scan is the scan of every index holding it, once all the index's platform
    manifests have one (`derived_scan`): each index's derived state is recomputed, and when it changes it
    is recorded and carried to the tags naming the index exactly as a scan of a single image is
    (`decide_scan`), including TAG_MOVED_AFTER_SCAN for a tag that moved off the index while it was scanned.
    """
    if not snapshot.parents:
        return decision
    child_state = decision.state if decision.replaces_current else snapshot.current
    parents: list[ParentDecision] = []
    alerts = list(decision.alerts)
    for digest, parent in sorted(snapshot.parents.items()):
        scans = dict(parent.sibling_scans)
        if child_state is not None:
            scans[scan.digest] = child_state
        derived = derived_scan(parent.index, scans)
        if derived is None or derived == parent.current:
            parents.append(ParentDecision(digest, parent.derivation, None, {}, {}, ()))
            continue
        as_index = replace(scan, digest=digest, tags=())
        carried = decide_scan(
            as_index,
            derived,
            ScanSnapshot(parent.current, parent.known_tags, parent.pointers),
            policy,
            detected_at,
        )
        parents.append(
            ParentDecision(
                digest, parent.derivation, derived, carried.pointer_updates, carried.moved_tags, carried.alerts
            )
        )
        alerts.extend(carried.alerts)
    return replace(decision, parents=tuple(parents), alerts=tuple(alerts))
