"""What the audit log says workloads deploy and run, and the rules that check it against the ledger.

Every line is judged at the time it describes (its `stageTimestamp`), not when it is processed: CloudWatch
delivers minutes late, and out of order. A tag named by a line older than the tag's last move is looked up
in the tag's history at the line's time. A digest counts as scanned at that time when a completed scan of
it is dated at or before the line; its verdict is the latest known (a digest found failing later is still
reported as failing). One finding per workload, content and rollout (see `workloads.rollout_starts`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tagwarden.domain.alerts import RUNBOOKS, Alert, AlertType, UsageSite, derive_alert_id
from tagwarden.domain.images import ImageName, ImageReference, ecr_host_parts
from tagwarden.domain.registry_scope import RegistryScope
from tagwarden.domain.rules import short_digest
from tagwarden.domain.scans import FindingSeverity, ScanState, Verdict, severity_counts
from tagwarden.domain.severity import Severity
from tagwarden.domain.sources import SourceEvent, key_time, ordering_key
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.domain.workloads import ROLLOUT_WINDOW, Rollouts, Sighting, Workload, rollout_starts

DigestKey = tuple[ImageName, str]


@dataclass(frozen=True, slots=True)
class ImageReferenced:
    """A pod spec or workload pod template names an image (what will be pulled)."""

    reference: ImageReference
    workload: Workload
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class ImageRunning:
    """The kubelet reports the digest it actually pulled for a container, and the image it started from."""

    running: ImageReference  # always carries a digest
    started_from: ImageReference | None
    workload: Workload
    seen_at: datetime


Observation = ImageReferenced | ImageRunning


@dataclass(frozen=True, slots=True)
class TagPosition:
    """One entry of a tag's history as the audit watcher reads it: from when (`event_key`), which content.

    `digest` is None for a delete: from then on the tag named nothing.
    """

    event_key: str
    digest: str | None


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """The ledger's state for every tag, digest and workload a batch of observations mentions."""

    pointers: Mapping[TagRef, TagPointer | None]
    scans: Mapping[DigestKey, ScanState]
    # Where each digest the ledger has a record of was seen in use (absent: no record).
    digest_usage: Mapping[DigestKey, Mapping[str, datetime]] = field(default_factory=dict)
    # History entries, newest first, of tags named by lines older than the tag's last move.
    histories: Mapping[TagRef, tuple[TagPosition, ...]] = field(default_factory=dict)
    # When each digest whose scan is dated after a line naming it first completed a scan (None: never).
    first_scans: Mapping[DigestKey, datetime | None] = field(default_factory=dict)
    # Per workload location: each content recently rolled out there, and when its latest rollout began.
    rollouts: Mapping[str, Rollouts] = field(default_factory=dict)

    def merged(self, more: DeploymentView) -> DeploymentView:
        """This view with what a later read added."""
        return DeploymentView(
            {**self.pointers, **more.pointers},
            {**self.scans, **more.scans},
            {**self.digest_usage, **more.digest_usage},
            {**self.histories, **more.histories},
            {**self.first_scans, **more.first_scans},
            {**self.rollouts, **more.rollouts},
        )

    def tag_at(self, tag: TagRef, moment: datetime) -> tuple[str | None, ScanState | None]:
        """The digest the tag named at `moment` (None: deleted, or not pushed yet) and that digest's scan."""
        pointer = self.pointers.get(tag)
        if pointer is None:
            return None, None
        history = self.histories.get(tag)
        if history is None or pointer.event_key <= moment_key(moment):
            return pointer.digest, pointer.scan
        position = next((p for p in history if p.event_key <= moment_key(moment)), None)
        if position is None or position.digest is None:
            return None, None
        if position.digest == pointer.digest:
            return position.digest, pointer.scan
        return position.digest, self.scans.get((tag.image, position.digest))


def moment_key(moment: datetime) -> str:
    """The history position just after every event at `moment`: entries at or before it sort lower.

    Registry events have one-second times, so a move stamped in the same second as a line counts as
    before it.
    """
    return ordering_key(moment, "\U0010ffff")


def tags_named_before_their_move(
    observations: Iterable[Observation], view: DeploymentView
) -> dict[TagRef, tuple[datetime, datetime]]:
    """Tags named by lines older than the tag's last move, with the earliest and latest such line's time.

    Only these need their history read (the common case, a line newer than the move, reads none).
    """
    older: dict[TagRef, tuple[datetime, datetime]] = {}
    for observation in observations:
        if not isinstance(observation, ImageReferenced):
            continue
        reference = observation.reference
        if reference.digest is not None or reference.tag is None:
            continue
        tag = TagRef(reference.name, reference.tag)
        pointer = view.pointers.get(tag)
        if pointer is not None and pointer.event_key > moment_key(observation.seen_at):
            earliest, latest = older.get(tag, (observation.seen_at, observation.seen_at))
            older[tag] = (min(earliest, observation.seen_at), max(latest, observation.seen_at))
    return older


def history_digests(view: DeploymentView) -> set[DigestKey]:
    """Digests the read histories name whose scan state the view does not hold yet."""
    missing: set[DigestKey] = set()
    for tag, history in view.histories.items():
        pointer = view.pointers.get(tag)
        for position in history:
            if position.digest is None or (pointer is not None and position.digest == pointer.digest):
                continue
            if (tag.image, position.digest) not in view.scans:
                missing.add((tag.image, position.digest))
    return missing


def scanned_after_lines(observations: Iterable[Observation], contents: Iterable[Content]) -> set[DigestKey]:
    """Digests with a completed, passing scan dated after a line naming them: was an earlier scan complete?"""
    wanted: set[DigestKey] = set()
    for observation, content in zip(observations, contents, strict=True):
        scan = content.scan
        if scan is not None and scan.passing and scan.scanned_at > observation.seen_at and content.key is not None:
            wanted.add(content.key)
    return wanted


def sighting(observation: Observation, content: Content) -> Sighting:
    """The content an observation shows at its workload, for grouping its findings by rollout."""
    material = f"{content.shown.name}@{content.digest or content.shown.tag or ''}"
    written = isinstance(observation, ImageReferenced) and not observation.workload.by_controller
    return Sighting(material, observation.seen_at, introduces=written)


def rollouts_of(
    observations: Sequence[Observation], contents: Sequence[Content], view: DeploymentView
) -> tuple[list[datetime], dict[str, tuple[Rollouts, Rollouts]]]:
    """The rollout start of each observation, and the workloads whose rollouts changed (read -> new).

    A batch that only repeats known content at known workloads changes nothing, so nothing is written.
    """
    by_location: dict[str, list[int]] = {}
    for index, observation in enumerate(observations):
        by_location.setdefault(observation.workload.location, []).append(index)
    starts: list[datetime] = [observation.seen_at for observation in observations]
    changed: dict[str, tuple[Rollouts, Rollouts]] = {}
    for location, indexes in by_location.items():
        known = view.rollouts.get(location, Rollouts())
        found, after = rollout_starts(known, [sighting(observations[n], contents[n]) for n in indexes])
        for index, start in zip(indexes, found, strict=True):
            starts[index] = start
        if not after.same_record(known):
            changed[location] = (known, after)
    return starts, changed


def ledger_keys(observations: Iterable[Observation]) -> tuple[set[TagRef], set[DigestKey]]:
    """The tags and digests to read first for a batch, each distinct one once.

    A running digest is looked up through the pointer of the tag it was started from, which carries the
    scan state of the tag's current digest: one read per image in the usual case where the kubelet pulled
    what the tag names. Digests the pointers do not cover are read afterwards (`uncovered_digests`).
    """
    tags: set[TagRef] = set()
    digests: set[DigestKey] = set()
    for observation in observations:
        if isinstance(observation, ImageReferenced):
            reference = observation.reference
            if reference.digest is not None:
                digests.add((reference.name, reference.digest))
            elif reference.tag is not None:
                tags.add(TagRef(reference.name, reference.tag))
            continue
        origin_tag = _origin_tag(observation)
        if origin_tag is not None:
            tags.add(origin_tag)
        else:
            digests.update(_running_keys(observation))
    return tags, digests


def uncovered_digests(observations: Iterable[Observation], view: DeploymentView) -> set[DigestKey]:
    """Running digests whose tag's pointer names other content (or nothing): read their own records."""
    missing: set[DigestKey] = set()
    for observation in observations:
        if isinstance(observation, ImageRunning) and (origin_tag := _origin_tag(observation)) is not None:
            pointer = view.pointers.get(origin_tag)
            if pointer is None or pointer.digest != observation.running.digest:
                missing.update(key for key in _running_keys(observation) if key not in view.scans)
    return missing


def _origin_tag(observation: ImageRunning) -> TagRef | None:
    origin = observation.started_from
    if origin is None or origin.digest is not None or origin.tag is None:
        return None
    return TagRef(origin.name, origin.tag)


def _running_keys(observation: ImageRunning) -> set[DigestKey]:
    digest = observation.running.digest
    assert digest is not None
    # The runtime may report another repository than the spec's: the digest is what matters.
    names = {observation.running.name} | ({observation.started_from.name} if observation.started_from else set())
    return {(name, digest) for name in names}


@dataclass(frozen=True, slots=True)
class Content:
    """What an observation deployed or ran, as the ledger knew it at the line's time (see `content_of`)."""

    shown: ImageReference  # the name the workload used
    digest: str | None  # None: a tag that named nothing then
    scan: ScanState | None  # the digest's latest scan
    key: DigestKey | None  # where the digest's scan history lives
    pointer: TagPointer | None = None  # the start tag's pointer (kubelet observations)


def content_of(observation: Observation, view: DeploymentView) -> Content:
    """What the observation deployed or ran: the digest a tag named at the line's time, and its scan.

    Computed once per observation, after the view holds the histories and digests the batch needs.
    """
    if isinstance(observation, ImageReferenced):
        reference = observation.reference
        if reference.digest is None and reference.tag is not None:
            digest, scan = view.tag_at(TagRef(reference.name, reference.tag), observation.seen_at)
            return Content(reference, digest, scan, (reference.name, digest) if digest is not None else None)
        assert reference.digest is not None
        key = (reference.name, reference.digest)
        return Content(reference, reference.digest, view.scans.get(key), key)
    digest = observation.running.digest
    assert digest is not None
    origin_tag = _origin_tag(observation)
    pointer = view.pointers.get(origin_tag) if origin_tag is not None else None
    shown = observation.started_from or observation.running
    if pointer is not None and pointer.digest == digest:
        assert origin_tag is not None
        return Content(shown, digest, pointer.scan, (origin_tag.image, digest), pointer)
    for key in sorted(_running_keys(observation), key=str):
        scan = view.scans.get(key)
        if scan is not None and scan.completed:
            return Content(shown, digest, scan, key, pointer)
    return Content(shown, digest, None, None, pointer)


def _scanned_then(content: Content, view: DeploymentView, moment: datetime) -> bool:
    """Whether the content had a completed scan at `moment` (its latest scan may be a later rescan)."""
    scan = content.scan
    if scan is None or not scan.completed:
        return False
    if scan.scanned_at <= moment:
        return True
    first = view.first_scans.get(content.key) if content.key is not None else None
    return first is not None and first <= moment


def check(
    observation: Observation,
    content: Content,
    view: DeploymentView,
    detected_at: datetime,
    since: datetime,
    scope: RegistryScope | None = None,
) -> Alert | None:
    """The finding for one observation, if any (the README's table of deployment alerts).

    `content` is the observation's `content_of`; `since` the start of the rollout the observation belongs
    to at its workload (`rollouts_of`): the same unscanned or mismatched content in another rollout is
    another alert. `scope` knows which accounts' events reach Tagwarden: an unscanned image of another
    account's registry says so, since no push or scan of it can ever be in the ledger.
    """
    # How the rollout began matters only to a failing digest's finding: asked then, not for every line.
    kubelet_started = functools.partial(_kubelet_started, observation, content, view, since)
    moment = _Moment(detected_at, observation.seen_at, since, scope or RegistryScope(), kubelet_started)
    if isinstance(observation, ImageReferenced):
        return _check_reference(observation, content, view, moment)
    return _check_running(observation, content, view, moment)


@dataclass(frozen=True, slots=True)
class _Moment:
    """When an observation is judged: detected now, seen at the line's time, in the rollout begun `since`."""

    detected_at: datetime
    seen_at: datetime
    since: datetime
    scope: RegistryScope
    # Whether the rollout begun `since` was started by a kubelet line, not a spec write (`_kubelet_started`).
    kubelet_started: Callable[[], bool]


def _check_reference(
    observation: ImageReferenced, content: Content, view: DeploymentView, moment: _Moment
) -> Alert | None:
    reference, digest, scan = observation.reference, content.digest, content.scan
    if digest is None:
        return _unscanned(observation.workload, reference, None, moment)
    if scan is None or not scan.completed:
        return _unscanned(observation.workload, reference, digest, moment)
    if not scan.passing:
        return _vulnerable(observation.workload, reference, digest, scan, moment)
    if not _scanned_then(content, view, observation.seen_at):
        return _unscanned(observation.workload, reference, digest, moment, scanned_later=scan)
    return None


def _check_running(observation: ImageRunning, content: Content, view: DeploymentView, moment: _Moment) -> Alert | None:
    shown, digest, scan, pointer = content.shown, content.digest, content.scan, content.pointer
    assert digest is not None
    if scan is not None and scan.completed:
        if not scan.passing:
            return _vulnerable(observation.workload, shown, digest, scan, moment)
        if _scanned_then(content, view, observation.seen_at):
            return None
        return _unscanned(observation.workload, shown, digest, moment, running=True, scanned_later=scan)
    mark = pointer.scanned_mark() if pointer is not None else None
    if mark is None or mark.digest == digest:
        return _unscanned(observation.workload, shown, digest, moment, running=True)
    return _alert(
        AlertType.DEPLOYED_DIGEST_MISMATCH,
        Severity.CRITICAL,
        observation.workload,
        shown,
        digest,
        moment,
        summary=(
            f"{_where(observation.workload)} runs {short_digest(digest)} from {shown}, which has no completed "
            f"scan, while the tag named the scanned {short_digest(mark.digest)}: what was checked is not what runs."
        ),
        previous_digest=mark.digest,
        scanned_digest=mark.digest,
        scanned_at=mark.scanned_at,
    )


def _where(workload: Workload) -> str:
    return f"{workload.kind} {workload.namespace or '-'}/{workload.name} in cluster {workload.cluster}"


def _unscanned(
    workload: Workload,
    reference: ImageReference,
    digest: str | None,
    moment: _Moment,
    *,
    running: bool = False,
    scanned_later: ScanState | None = None,
) -> Alert:
    at = f"{moment.seen_at:%Y-%m-%d %H:%M:%S}Z"
    foreign = moment.scope.unmonitored_account(reference.name.registry)
    if foreign is not None:
        state = (
            f"it comes from account {foreign}, whose ECR events do not reach Tagwarden, so no push or scan "
            "of it can be in the ledger"
        )
    elif digest is None:
        state = (
            f"the ledger shows no push of this tag in force at {at} (never pushed then, or deleted; or pushed "
            "in another region, whose ECR events this stack does not receive)"
        )
    elif scanned_later is not None:
        state = (
            f"{short_digest(digest)}, which had no completed scan at {at} "
            f"(its scan completed later, at {scanned_later.scanned_at:%Y-%m-%d %H:%M:%S}Z)"
        )
    else:
        state = f"{short_digest(digest)}, which has no completed scan"
    verb = "runs" if running else "deploys"
    return _alert(
        AlertType.UNSCANNED_IMAGE_DEPLOYED,
        Severity.HIGH,
        workload,
        reference,
        digest,
        moment,
        summary=f"{_where(workload)} {verb} {reference}: {state}.",
    )


def _vulnerable(
    workload: Workload,
    reference: ImageReference,
    digest: str,
    scan: ScanState,
    moment: _Moment,
) -> Alert:
    if scan.verdict is Verdict.UNDECIDED:
        verdict = f"whose scan could not decide its verdict: {_counts(scan)} and findings of unknown severity"
    else:
        verdict = f"which failed its scan: {_counts(scan)}"
    return _alert(
        AlertType.VULNERABLE_IMAGE_DEPLOYED,
        vulnerable_severity(scan),
        workload,
        reference,
        digest,
        moment,
        summary=f"{_where(workload)} deploys {reference} ({short_digest(digest)}), {verdict}.",
        scanned_digest=digest,
        scanned_at=scan.scanned_at,
        alert_id=vulnerable_alert_id(
            workload.location, reference.name, digest, scan, moment.since, kubelet_started=moment.kubelet_started()
        ),
    )


def vulnerable_severity(scan: ScanState) -> Severity:
    """CRITICAL when the scan has CRITICAL findings, else HIGH (the README's severities)."""
    return Severity.CRITICAL if scan.finding_counts.get(FindingSeverity.CRITICAL.value, 0) > 0 else Severity.HIGH


# How far the API server's clock (a rollout's `stageTimestamp`) may run ahead of Lambda's (the time the
# scan recorder learned of a failing episode) without a rollout the recorder alerted counting as a later one.
RECORDING_SKEW = timedelta(minutes=1)


def vulnerable_alert_id(
    location: str,
    image: ImageName,
    digest: str,
    scan: ScanState,
    rollout: datetime | None = None,
    *,
    kubelet_started: bool = False,
) -> str:
    """The id of "this workload uses this failing content": one per workload, content and failing episode,
    or per rollout for a rollout of the content begun after the ledger learned of the episode.

    The scan recorder alerts the workloads in use when the verdict turns (`rollout` None: it does not read
    rollouts) and the audit watcher raises the same id for any rollout already under way then, so each such
    finding reaches subscribers once. A rollout begun later (a deployment of known-vulnerable content, or a
    rollback to it: D, then B, then D again) is a finding of its own: `rollout` is its start, compared with
    the episode's recording time (RECORDING_SKEW allowed for the two clocks).

    A rollout a kubelet line started (`kubelet_started`: no spec write at its start; the ROLLOUT_WINDOW rule
    restarting the rollout of content still running a day on) is a reminder, not a deployment: it counts as
    later only ROLLOUT_WINDOW after the recording, so a workload alerted when the episode was learned is
    reminded at most once per ROLLOUT_WINDOW, not whenever its day-old rollout restarts after the recording.
    """
    episode = (scan.failing_since,) if scan.failing_since else ()
    learned = episode_learned_at(scan)
    per_rollout: tuple[str, ...] = ()
    if rollout is not None and learned is not None:
        later = rollout >= learned + ROLLOUT_WINDOW if kubelet_started else rollout > learned + RECORDING_SKEW
        per_rollout = (rollout.isoformat(),) if later else ()
    return derive_alert_id(AlertType.VULNERABLE_IMAGE_DEPLOYED, location, str(image), digest, *episode, *per_rollout)


def _kubelet_started(observation: Observation, content: Content, view: DeploymentView, since: datetime) -> bool:
    """Whether the rollout begun `since` was started by a kubelet line (the record's provisional starts): no
    spec write shows a deployment then. It is how the ROLLOUT_WINDOW rule restarts the rollout of content
    still running a day on. `view.rollouts` must hold the workload's rollouts with the batch's own lines
    (`rollouts_of`'s new records), so that every line of one rollout is judged alike. A rollout whose
    kubelet-made start a spec write learned later replaced keeps that start as its name (`Rollouts.aliases`),
    and its findings keep the id they were first raised with: it is judged as kubelet-started too.
    """
    record = view.rollouts.get(observation.workload.location)
    if record is None:
        return False
    shown = sighting(observation, content).content
    return since in record.provisional.get(shown, ()) or since in record.aliases.get(shown, {}).values()


def episode_learned_at(scan: ScanState) -> datetime | None:
    """When the ledger learned of the digest's failing episode: its recording time, or for a state recorded
    before that was kept, the time of the event that started the episode (the start of `failing_since`)."""
    if scan.failing_recorded_at is not None:
        return scan.failing_recorded_at
    return key_time(scan.failing_since) if scan.failing_since is not None else None


def vulnerable_in_use(
    image: ImageName,
    digest: str,
    scan: ScanState,
    sites: Iterable[tuple[UsageSite, str | None]],
    source: SourceEvent,
    detected_at: datetime,
) -> tuple[Alert, ...]:
    """VULNERABLE_IMAGE_DEPLOYED for each workload seen using a digest whose verdict just turned to fail.

    `sites` are the workloads with the tag they use the digest through (None: by digest). No audit event
    is behind these findings, so `kubernetes` is empty and the workload is the alert's one `in_use` site.
    """
    account, region = ecr_host_parts(image.registry)
    alerts = []
    for site, tag in sites:
        location = f"{site.cluster}/{site.namespace}/{site.workload}"
        shown = f"{image}:{tag}" if tag else f"{image}@{digest}"
        alerts.append(
            Alert(
                alert_id=vulnerable_alert_id(location, image, digest, scan),
                type=AlertType.VULNERABLE_IMAGE_DEPLOYED,
                severity=vulnerable_severity(scan),
                summary=(
                    f"Workload {site.namespace}/{site.workload} in cluster {site.cluster} uses {shown} "
                    f"({short_digest(digest)}), whose verdict turned to fail: {_counts(scan)}."
                ),
                detected_at=detected_at,
                event_time=source.event_time,
                account=account,
                region=region,
                registry=image.registry,
                repository=image.repository,
                tag=tag,
                current_digest=digest,
                scanned_digest=digest,
                scanned_at=scan.scanned_at,
                in_use=(site,),
                evidence=(source.event_id,),
                runbook=RUNBOOKS[AlertType.VULNERABLE_IMAGE_DEPLOYED],
            )
        )
    return tuple(alerts)


def _counts(scan: ScanState) -> str:
    return severity_counts(scan.finding_counts) or "no rated findings"


def _alert(
    alert_type: AlertType,
    severity: Severity,
    workload: Workload,
    reference: ImageReference,
    digest: str | None,
    moment: _Moment,
    *,
    summary: str,
    previous_digest: str | None = None,
    scanned_digest: str | None = None,
    scanned_at: datetime | None = None,
    alert_id: str | None = None,
) -> Alert:
    account, region = ecr_host_parts(reference.name.registry)
    # One finding per workload, content and rollout (a rollback to unscanned content alerts again): replicas,
    # retries and duplicate deliveries share the id. A failing digest's finding brings its own id instead
    # (`vulnerable_alert_id`: per failing episode, the id the scan recorder raises too).
    content = digest or reference.tag
    return Alert(
        alert_id=alert_id
        or derive_alert_id(alert_type, workload.location, str(reference.name), content, moment.since.isoformat()),
        type=alert_type,
        severity=severity,
        summary=summary,
        detected_at=moment.detected_at,
        event_time=moment.seen_at,
        account=account,
        region=region,
        registry=reference.name.registry,
        repository=reference.name.repository,
        tag=reference.tag,
        previous_digest=previous_digest,
        current_digest=digest,
        scanned_digest=scanned_digest,
        scanned_at=scanned_at,
        kubernetes=workload.context(),
        evidence=(workload.audit_id,) if workload.audit_id else (),
        runbook=RUNBOOKS[alert_type],
    )
