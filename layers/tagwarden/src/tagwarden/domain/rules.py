"""Detection rules for tag moves: plain functions of the ledger's state and one registry fact.

Severity of a tag move (the README's table is this function):

| tag class | previous digest scanned | new digest passing | type                  | severity |
|-----------|-------------------------|--------------------|-----------------------|----------|
| protected | yes                     | any                | TAG_MOVED_AFTER_SCAN  | CRITICAL |
| protected | no                      | any                | TAG_OVERWRITTEN       | HIGH     |
| other     | any                     | yes                | (either, as scanned)  | INFO     |
| mutable   | any                     | no                 | (either, as scanned)  | LOW      |
| signature | any                     | no                 | (either, as scanned)  | LOW      |
| ordinary  | any                     | no                 | (either, as scanned)  | MEDIUM   |

A tag workloads run from raises the severity one step, except a signature tag's (cosign `.sig`/`.att`/
`.sbom`, OCI referrers fallback), which moves by design and stays at most LOW.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from tagwarden.domain.alerts import RUNBOOKS, Alert, AlertType, RevertStatus, UsageSite, derive_alert_id
from tagwarden.domain.scans import ScanState
from tagwarden.domain.severity import Severity
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagClass, TagPolicy
from tagwarden.domain.tags import ImageAction, TagAction, TagMove, TagPointer, TagRef
from tagwarden.domain.workloads import MAX_SITES_ALERTED, pruned, recent_sites


def short_digest(digest: str) -> str:
    """A digest shortened for people: algorithm and the first 12 characters."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:12]}"


def tag_move_severity(tag_class: TagClass, previous_scanned: bool, current_passing: bool) -> Severity:
    """The severity table of the module docstring."""
    if tag_class is TagClass.PROTECTED:
        return Severity.CRITICAL if previous_scanned else Severity.HIGH
    if current_passing:
        return Severity.INFO
    if tag_class in (TagClass.MUTABLE, TagClass.SIGNATURE):
        return Severity.LOW
    return Severity.MEDIUM


@dataclass(frozen=True, slots=True)
class MoveFacts:
    """A move of a tag from one digest to another, with what the ledger knows of both digests."""

    tag: TagRef
    previous_digest: str
    current_digest: str
    source: SourceEvent
    previous_scan: ScanState | None
    current_scan: ScanState | None
    via_delete: bool = False
    evidence: tuple[str, ...] = ()
    in_use: tuple[UsageSite, ...] = ()


def tag_move_alert(move: MoveFacts, policy: TagPolicy, detected_at: datetime) -> Alert:
    """The one alert for one move: TAG_MOVED_AFTER_SCAN when the old digest was scanned, else overwrite."""
    tag_class = policy.classify(move.tag.tag)
    previous_scanned = move.previous_scan is not None and move.previous_scan.completed
    current_passing = move.current_scan is not None and move.current_scan.passing
    alert_type = AlertType.TAG_MOVED_AFTER_SCAN if previous_scanned else AlertType.TAG_OVERWRITTEN
    severity = tag_move_severity(tag_class, previous_scanned, current_passing)
    if move.in_use:
        # A tag that workloads run from is one pull away from running the new content (a signature tag
        # included: nothing should run from one, so a workload that does is itself worth a louder alert).
        severity = severity.raised()
    return Alert(
        alert_id=derive_alert_id(
            alert_type, str(move.tag), move.previous_digest, move.current_digest, move.source.event_id
        ),
        type=alert_type,
        severity=severity,
        summary=_move_summary(move, tag_class, previous_scanned),
        detected_at=detected_at,
        event_time=move.source.event_time,
        account=move.source.account,
        region=move.source.region,
        registry=move.tag.image.registry,
        repository=move.tag.image.repository,
        tag=move.tag.tag,
        previous_digest=move.previous_digest,
        current_digest=move.current_digest,
        scanned_digest=move.previous_digest if previous_scanned else None,
        scanned_at=move.previous_scan.scanned_at if previous_scanned and move.previous_scan else None,
        in_use=move.in_use[:MAX_SITES_ALERTED],
        evidence=move.evidence or (move.source.event_id,),
        runbook=RUNBOOKS[alert_type],
    )


def _move_summary(move: MoveFacts, tag_class: TagClass, previous_scanned: bool) -> str:
    new, old = short_digest(move.current_digest), short_digest(move.previous_digest)
    if previous_scanned and move.previous_scan is not None:
        if move.current_scan is not None and move.current_scan.passing:
            state = "which has a passing scan"
        elif move.current_scan is not None and move.current_scan.completed:
            state = "which failed its scan"
        else:
            state = "which has no completed scan"
        text = (
            f"Tag {move.tag} moved after its scan: {old} was scanned at "
            f"{move.previous_scan.scanned_at:%Y-%m-%d %H:%M:%S}Z, but the tag now names {new}, {state}."
        )
    else:
        text = f"Tag {move.tag} was overwritten: it now names {new} instead of {old}."
    if move.via_delete:
        text += " The tag was deleted and pushed again, a known way around tag immutability."
    if tag_class is TagClass.PROTECTED:
        text += " This tag is protected and must never move."
    elif tag_class is TagClass.SIGNATURE:
        text += " It is a signature or attestation tag, which moves by design when signatures are added."
    if move.in_use:
        shown = ", ".join(f"{s.cluster}/{s.namespace}/{s.workload}" for s in move.in_use[:3])
        more = f" and {len(move.in_use) - 3} more" if len(move.in_use) > 3 else ""
        text += f" It is in use by {shown}{more}."
    return text


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The history entries just before and just after a late event's position."""

    before: TagMove | None = None
    after: TagMove | None = None


@dataclass(frozen=True, slots=True)
class TagDecision:
    """What to write for one tag action: the history entry and, for a current event, the new pointer."""

    move: TagMove
    pointer: TagPointer | None
    # The pushed digest's scan state the decision relied on: the digest record must still hold it.
    digest_scan: ScanState | None = None
    # For a late event: its successor re-linked to it, and the predecessor position the successor had.
    relinked_successor: TagMove | None = None
    successor_previous_key: str | None = None

    @property
    def alerts(self) -> tuple[Alert, ...]:
        """The alerts this action raises (carried by the history entry until delivered)."""
        return self.move.alerts


def is_late(action: ImageAction, pointer: TagPointer | None) -> bool:
    """An event older than the one the pointer reflects: it goes to history, never to the pointer."""
    return pointer is not None and action.source.key < pointer.event_key


def decide_current(
    action: ImageAction,
    tag: TagRef,
    pointer: TagPointer | None,
    scans: Mapping[str, ScanState],
    policy: TagPolicy,
    detected_at: datetime,
) -> TagDecision:
    """Decide an action that is newer than the pointer: it moves (or deletes) the tag."""
    previous = None if pointer is None else (pointer.digest or pointer.last_digest)
    previous_scan = pointer.scan if pointer is not None else None
    version = 0 if pointer is None else pointer.version
    previous_key = None if pointer is None else pointer.event_key
    mark = None if pointer is None else pointer.scanned_mark()
    in_use = {} if pointer is None else pruned(pointer.in_use, detected_at)
    key = action.source.key
    # A requested revert stays outstanding until the tag names its target again, while its request is pending
    # or just REVERTED (see domain.revert); a marker past that is dropped by the next action.
    live = pointer is not None and pointer.revert_expected(action.source.event_time)
    revert_to = pointer.revert_to if pointer is not None and live else None
    request = pointer.revert_request if pointer is not None and live else None
    settled_at = pointer.revert_settled_at if pointer is not None and live else None
    if action.action is TagAction.DELETE:
        move = TagMove(
            TagAction.DELETE, action.digest, previous, action.source, previous_key=previous_key, revert_to=revert_to
        )
        scan = previous_scan if previous == action.digest else scans.get(action.digest)
        after = TagPointer(None, action.digest, key, version + 1, scan, mark, in_use, revert_to, request, settled_at)
        return TagDecision(move, after)
    alerts: tuple[Alert, ...] = ()
    reverts = revert_to is not None and revert_to == action.digest and previous != action.digest
    if reverts:
        # The tag put back where a pending (or just reverted) request puts it: Tagwarden's own push, history
        # only. It is accounted for (`alerted`), so a late event before it never alerts the change.
        revert_to, request, settled_at = None, None, None
    elif previous is not None and previous != action.digest:
        facts = MoveFacts(
            tag,
            previous,
            action.digest,
            action.source,
            previous_scan=previous_scan,
            current_scan=scans.get(action.digest),
            via_delete=pointer is not None and pointer.deleted,
            in_use=recent_sites(in_use, detected_at),
        )
        alerts = (tag_move_alert(facts, policy, detected_at),)
    move = TagMove(
        TagAction.PUSH,
        action.digest,
        previous,
        action.source,
        alerts=alerts,
        previous_key=previous_key,
        alerted=bool(alerts) or reverts,
        revert_to=revert_to,
        reverts=reverts,
    )
    scan = scans.get(action.digest) or (previous_scan if previous == action.digest else None)
    new_pointer = TagPointer(
        action.digest, action.digest, key, version + 1, scan, mark, in_use, revert_to, request, settled_at
    )
    return TagDecision(move, new_pointer, digest_scan=scans.get(action.digest))


def decide_late(
    action: ImageAction,
    tag: TagRef,
    neighbours: Neighbours,
    scans: Mapping[str, ScanState],
    policy: TagPolicy,
    detected_at: datetime,
    in_use: tuple[UsageSite, ...] = (),
) -> TagDecision:
    """Decide an action older than the pointer: history only, and alerts for moves nobody has alerted yet.

    The late event X lands between its predecessor P and its successor S. Each history entry remembers
    whether the change of content into it was alerted (`alerted`), so that every adjacent pair of different
    content is alerted exactly once, however the history was assembled:
    - P->X is alerted, unless S has the same content as X and was alerted already: that alert was about the
      change into this very content;
    - X->S is alerted when the content changes and S's entry was never alerted (a first push, or a push
      of unchanged content, as it looked before X arrived);
    - a push of the content P's requested revert puts back is that revert's own push: history, never alerted.
    """
    before, after = neighbours.before, neighbours.after
    previous = before.digest if before is not None else None
    alerts: list[Alert] = []
    alerted = False
    after_alerted = after.alerted if after is not None else False
    # The predecessor's outstanding revert, unless its own request was settled NOT_REVERTED (the reverter
    # never pushed: a push of that content is someone's, not the revert's).
    refused = before is not None and before.revert_status is RevertStatus.NOT_REVERTED
    revert_to = before.revert_to if before is not None and not refused else None
    # A late revert push (the predecessor asked to put the tag back on this content): history, no alert.
    reverts = action.action is TagAction.PUSH and revert_to is not None and revert_to == action.digest
    reverts = reverts and previous != action.digest
    if reverts:
        alerted, revert_to = True, None
    elif action.action is TagAction.PUSH and previous is not None and previous != action.digest:
        alerted = True
        # When S has X's content and was alerted, that alert was about the change into this very content:
        # it stands for P->X too, and is never sent twice (S keeps its flag, as its alert id is taken).
        if not (after is not None and after.digest == action.digest and after.alerted):
            facts = MoveFacts(
                tag,
                previous,
                action.digest,
                action.source,
                previous_scan=scans.get(previous),
                current_scan=scans.get(action.digest),
                via_delete=before is not None and before.action is TagAction.DELETE,
                in_use=in_use,
            )
            alerts.append(tag_move_alert(facts, policy, detected_at))
    if after is not None and after.action is TagAction.PUSH and after.digest != action.digest and not after.alerted:
        facts = MoveFacts(
            tag,
            action.digest,
            after.digest,
            after.source,
            previous_scan=scans.get(action.digest),
            current_scan=scans.get(after.digest),
            via_delete=action.action is TagAction.DELETE,
            evidence=(after.source.event_id, action.source.event_id),
            in_use=in_use,
        )
        alerts.append(tag_move_alert(facts, policy, detected_at))
        after_alerted = True
    move = TagMove(
        action.action,
        action.digest,
        previous,
        action.source,
        late=True,
        alerts=tuple(alerts),
        previous_key=before.source.key if before is not None else None,
        alerted=alerted,
        revert_to=revert_to,
        reverts=reverts,
    )
    seen = scans.get(action.digest)
    if after is None:
        return TagDecision(move, None, digest_scan=seen)
    relinked = replace(after, previous_digest=action.digest, previous_key=action.source.key, alerted=after_alerted)
    # The write is conditioned on the successor still following the predecessor read here: the two reads
    # are not atomic, and a late entry landing in between must send this one back to read again.
    return TagDecision(
        move, None, digest_scan=seen, relinked_successor=relinked, successor_previous_key=move.previous_key
    )


def same_second_tie(action: ImageAction, pointer: TagPointer | None) -> bool:
    """Whether the action and the pointer's event fall in the same second and leave the tag naming different
    content: EventBridge times have one-second resolution and random ids, so the order cannot tell which
    of the two the registry applied last."""
    if pointer is None or pointer.event_key[:19] != action.source.second:
        return False
    outcome = action.digest if action.action is TagAction.PUSH else None
    return outcome != pointer.digest


def break_tie(action: ImageAction, pointer: TagPointer, registry_digest: str | None) -> ImageAction:
    """The action, placed in its second where the registry's current state says it belongs.

    `registry_digest` is what the tag names in the registry now (None: no such tag). If that is what this
    action leaves, the action was applied last: it goes after every event of its second and becomes the
    pointer. If it is what the pointer names, the action was applied first: it goes before its second, into
    history only. Otherwise the tag has changed again since (a later event will say how), and the order of
    the positions stands.
    """
    outcome = action.digest if action.action is TagAction.PUSH else None
    if registry_digest == outcome and action.source.key < pointer.event_key:
        return replace(action, source=action.source.last_in_its_second())
    if registry_digest == pointer.digest and registry_digest != outcome and action.source.key > pointer.event_key:
        return replace(action, source=action.source.just_before_its_second())
    return action
