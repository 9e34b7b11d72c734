"""Detection rules for completed scans: where the scan state goes, and which tags moved meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from tagwarden.domain.alerts import Alert, UsageSite
from tagwarden.domain.deployments import vulnerable_in_use
from tagwarden.domain.findings import INSPECTOR_SCANNER, FindingReported, FindingTally, KnownFinding, revision_key
from tagwarden.domain.images import ImageName
from tagwarden.domain.indexes import ImageIndex, derived_scan
from tagwarden.domain.rules import MoveFacts, tag_move_alert
from tagwarden.domain.scans import FindingSeverity, ScanCompleted, ScannedDigest, ScanState, ScanStatus, Verdict
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.domain.workloads import MAX_SITES_KEPT, recent_sites


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
    # Where the index itself (the kubelet's `imageID`, or a reference by its digest) was seen in use.
    in_use: Mapping[str, datetime] = field(default_factory=dict)


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
    # Where the digest itself (by digest reference) was seen in use.
    in_use: Mapping[str, datetime] = field(default_factory=dict)
    # What Inspector's finding events told about the digest (None: no finding event yet).
    findings: FindingTally | None = None
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
    # Deployment findings among `alerts`, recorded as findings too so the audit watcher does not raise
    # them again when it next sees the workload.
    findings: tuple[Alert, ...] = ()
    # The digest's finding tally after this report, when it changes it.
    tally: FindingTally | None = None
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


def with_deployed_findings(
    decision: ScanDecision, scan: ScanCompleted, snapshot: ScanSnapshot, detected_at: datetime
) -> ScanDecision:
    """The decision plus VULNERABLE_IMAGE_DEPLOYED for the workloads using the digest, when the scan turns
    the digest's verdict to `fail` (see `deployed_vulnerable`)."""
    findings = deployed_vulnerable(scan.image, scan.digest, decision, snapshot, scan.source, detected_at)
    return replace(decision, alerts=decision.alerts + findings, findings=findings) if findings else decision


def deployed_vulnerable(
    image: ImageName,
    digest: str,
    decision: ScanDecision,
    snapshot: ScanSnapshot,
    source: SourceEvent,
    detected_at: datetime,
) -> tuple[Alert, ...]:
    """One alert per workload in use of the digest when the decision changes its verdict to `fail`.

    Once per change of verdict: a rescan that still fails raises nothing; pass -> fail raises, and
    fail -> pass -> fail raises again (a new failing episode, hence new alert ids). A report that does
    not replace the digest's state (an older one, delivered late) changes no verdict. Workloads are those
    seen in the last 30 days using the digest by digest, or through a tag that names it now.
    """
    if not (decision.replaces_current and decision.state.turned_failing(snapshot.current)):
        return ()
    sites: dict[str, tuple[UsageSite, str | None]] = {}
    for site in recent_sites(snapshot.in_use, detected_at):
        sites[_location(site)] = (site, None)
    for tag_name, pointer in sorted(snapshot.pointers.items()):
        if pointer is None or pointer.digest != digest:
            continue
        for site in recent_sites(pointer.in_use, detected_at):
            known = sites.get(_location(site))
            if known is None or known[0].last_seen < site.last_seen:
                sites[_location(site)] = (site, tag_name)
    # Bounded like the usage the ledger keeps: the most recently seen first; the audit watcher raises the
    # same finding for any other workload when it next sees it.
    chosen = sorted(sites.values(), key=lambda entry: entry[0].last_seen, reverse=True)[:MAX_SITES_KEPT]
    return vulnerable_in_use(image, digest, decision.state, chosen, source, detected_at)


def _location(site: UsageSite) -> str:
    return f"{site.cluster}/{site.namespace}/{site.workload}"


def scan_state_with_findings(
    scan: ScanCompleted, snapshot: ScanSnapshot, fail_severity: FindingSeverity, recorded_at: datetime
) -> tuple[ScanState, FindingTally | None]:
    """The state a scan report gives its digest, as the successor of the digest's current state (a failing
    episode it starts is learned at `recorded_at`, the recorder's clock).

    An Inspector summary also becomes the digest's finding tally's summary, and the counts are the
    tally's: finding events that arrived before the summary still count (see `domain.findings`).
    """
    state = scan.state(fail_severity)
    tally = None
    if scan.scanner == INSPECTOR_SCANNER and state.completed:
        tally = (snapshot.findings or FindingTally()).with_summary(scan.finding_counts, scan.unrated)
        state = replace(state, finding_counts=tally.counts(), verdict=tally.verdict(fail_severity))
    return state.following(snapshot.current, recorded_at), tally


@dataclass(frozen=True, slots=True)
class FindingDecision:
    """What one Inspector finding event changes: the finding, the digest's tally, and maybe its state.

    `scan` is None when the digest's verdict stays as it was (the event repeated what was known, or only
    refreshed the finding's times), or when the ledger has no summary to judge the digest by yet.
    """

    finding: KnownFinding
    tally: FindingTally
    scan: ScanDecision | None


def decide_finding(
    report: FindingReported,
    known: KnownFinding | None,
    snapshot: ScanSnapshot,
    fail_severity: FindingSeverity,
    detected_at: datetime,
) -> FindingDecision | None:
    """Apply one finding event to the digest; None when an equal or newer event of the finding was applied.

    Without an Inspector summary the tally falls back on the digest's completed scan (ECR's or the
    backfill's counts); without either, findings are kept and judge the digest only when they make it fail:
    a handful of finding events cannot show that an image passes. With a new state, the pointers naming the
    digest carry it, and the workloads using the digest are alerted if its verdict turned to `fail`.
    """
    after = report.known
    if not after.newer_than(known):
        return None
    current = snapshot.current
    before = snapshot.findings
    if before is None:
        baseline = current.finding_counts if current is not None and current.completed else None
        before = FindingTally(summary=dict(baseline) if baseline is not None else None)
    tally = before.with_finding(known, after)
    counts, verdict = tally.counts(), tally.verdict(fail_severity)
    unchanged = (
        current is not None
        and current.completed
        and (current.finding_counts, current.verdict)
        == (
            counts,
            verdict,
        )
    )
    # Without a summary, a handful of finding events cannot show that an image passes; they can show that
    # it fails (its active findings are a lower bound), and then they do.
    undecidable = tally.summary is None and verdict is not Verdict.FAIL
    if undecidable or unchanged:
        return FindingDecision(after, tally, None)
    state = ScanState(
        status=ScanStatus.COMPLETE,
        scanned_at=report.source.event_time,
        scanner=INSPECTOR_SCANNER,
        verdict=verdict,
        finding_counts=counts,
        event_key=revision_key(report.source, current.event_key if current is not None else None),
    ).following(current, detected_at)
    updates = _carrying(snapshot.pointers, report.digest, state)
    decision = ScanDecision(state, replaces_current=True, pointer_updates=updates, moved_tags={}, alerts=())
    found = deployed_vulnerable(report.image, report.digest, decision, snapshot, report.source, detected_at)
    return FindingDecision(after, tally, replace(decision, alerts=found, findings=found, tally=tally))


def finding_as_scan(report: FindingReported, state: ScanState) -> ScanCompleted:
    """A finding event that changed its digest's state, as the scan report of that digest it amounts to:
    what the indexes holding the digest derive from (`decide_parents`), as for any other scan of it."""
    return ScanCompleted(
        image=report.image,
        digest=report.digest,
        tags=(),
        scanner=INSPECTOR_SCANNER,
        status=ScanStatus.COMPLETE,
        finding_counts=dict(state.finding_counts),
        source=report.source,
    )


def decide_parents(
    scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, policy: TagPolicy, detected_at: datetime
) -> ScanDecision:
    """The decision, extended to the image indexes that hold the scanned digest.

    A platform manifest's scan (or an Inspector finding event that changed its state, `finding_as_scan`) is
    the scan of every index holding it, once all the index's platform manifests have one (`derived_scan`):
    each index's derived state is recomputed, and when it changes it is recorded and carried to the tags
    naming the index exactly as a scan of a single image is (`decide_scan`), including TAG_MOVED_AFTER_SCAN
    for a tag that moved off the index while it was scanned, and VULNERABLE_IMAGE_DEPLOYED for the workloads
    using the index when its verdict turns to fail (`deployed_vulnerable`: the kubelet names the index).
    """
    if not snapshot.parents:
        return decision
    child_state = decision.state if decision.replaces_current else snapshot.current
    parents: list[ParentDecision] = []
    alerts = list(decision.alerts)
    findings = list(decision.findings)
    for digest, parent in sorted(snapshot.parents.items()):
        scans = dict(parent.sibling_scans)
        if child_state is not None:
            scans[scan.digest] = child_state
        derived = derived_scan(parent.index, scans)
        # The index has failing episodes of its own, as a single image does: its in-use findings carry them.
        derived = derived.following(parent.current, detected_at) if derived is not None else None
        if derived is None or derived == parent.current:
            parents.append(ParentDecision(digest, parent.derivation, None, {}, {}, ()))
            continue
        as_index = replace(scan, digest=digest, tags=())
        index_snapshot = ScanSnapshot(parent.current, parent.known_tags, parent.pointers, in_use=parent.in_use)
        carried = decide_scan(as_index, derived, index_snapshot, policy, detected_at)
        # A changed derived state is always written (the index has no report of its own to order it by), and
        # carried: it takes its latest platform's event key, which a finding event's state may share with the
        # state it changes (two findings on two platforms in the same second), so keys cannot order them here.
        updates = _carrying(parent.pointers, digest, derived)
        carried = replace(carried, replaces_current=True, pointer_updates=updates)
        found = deployed_vulnerable(scan.image, digest, carried, index_snapshot, scan.source, detected_at)
        parents.append(
            ParentDecision(
                digest,
                parent.derivation,
                derived,
                carried.pointer_updates,
                carried.moved_tags,
                carried.alerts + found,
            )
        )
        alerts.extend(carried.alerts + found)
        findings.extend(found)
    kept = _bounded_findings(findings)
    if len(kept) < len(findings):
        dropped = {alert.alert_id for alert in findings} - {alert.alert_id for alert in kept}
        alerts = [alert for alert in alerts if alert.alert_id not in dropped]
        parents = [replace(p, alerts=tuple(a for a in p.alerts if a.alert_id not in dropped)) for p in parents]
    return replace(decision, parents=tuple(parents), alerts=tuple(alerts), findings=kept)


# In-use findings one scan or finding event raises, across the scanned digest and every index holding it: each
# is one item of the decision's transaction (at most 100 items, with the scan entry, the digest's record and the
# indexes' changed states) and one alert on the scan entry's outbox. The most recently seen workloads are
# alerted; the audit watcher raises the same finding (same id) for the others when it next sees them.
MAX_IN_USE_ALERTS = MAX_SITES_KEPT


def _bounded_findings(findings: list[Alert]) -> tuple[Alert, ...]:
    """At most MAX_IN_USE_ALERTS of the decision's in-use findings, the most recently seen workloads first
    (in their original order); ids are distinct per digest and workload, so they name what is dropped."""
    if len(findings) <= MAX_IN_USE_ALERTS:
        return tuple(findings)
    ranked = sorted(range(len(findings)), key=lambda n: _last_seen(findings[n]), reverse=True)
    chosen = set(ranked[:MAX_IN_USE_ALERTS])
    return tuple(alert for n, alert in enumerate(findings) if n in chosen)


def _last_seen(alert: Alert) -> datetime:
    return max(site.last_seen for site in alert.in_use) if alert.in_use else alert.detected_at


def _carrying(pointers: Mapping[str, TagPointer | None], digest: str, state: ScanState) -> dict[str, TagPointer]:
    """The pointers naming `digest` (a deleted tag: last naming it), carrying its new `state`."""
    return {
        tag_name: replace(pointer, scan=state, version=pointer.version + 1)
        for tag_name, pointer in sorted(pointers.items())
        if pointer is not None and (pointer.digest or pointer.last_digest) == digest and pointer.scan != state
    }
