"""What the audit log says workloads deploy and run, and the rules that check it against the ledger."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tagwarden.domain.alerts import RUNBOOKS, Alert, AlertType, UsageSite, derive_alert_id
from tagwarden.domain.images import ImageName, ImageReference, ecr_host_parts
from tagwarden.domain.registry_scope import RegistryScope
from tagwarden.domain.rules import short_digest
from tagwarden.domain.scans import FindingSeverity, ScanState, Verdict, severity_counts
from tagwarden.domain.severity import Severity
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.domain.workloads import Workload

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
class DeploymentView:
    """The ledger's state for every tag and digest a batch of observations mentions."""

    pointers: Mapping[TagRef, TagPointer | None]
    scans: Mapping[DigestKey, ScanState]
    # Where each digest the ledger has a record of was seen in use (absent: no record).
    digest_usage: Mapping[DigestKey, Mapping[str, datetime]] = field(default_factory=dict)

    def merged(self, more: DeploymentView) -> DeploymentView:
        """This view with what a second read added."""
        return DeploymentView(
            {**self.pointers, **more.pointers},
            {**self.scans, **more.scans},
            {**self.digest_usage, **more.digest_usage},
        )


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


def check(
    observation: Observation, view: DeploymentView, detected_at: datetime, scope: RegistryScope | None = None
) -> Alert | None:
    """The finding for one observation, if any (the README's table of deployment alerts).

    `scope` knows which accounts' events reach Tagwarden: an unscanned image of another account's
    registry says so, since no push or scan of it can ever be in the ledger.
    """
    scope = scope or RegistryScope()
    if isinstance(observation, ImageReferenced):
        return _check_reference(observation, view, detected_at, scope)
    return _check_running(observation, view, detected_at, scope)


def _check_reference(
    observation: ImageReferenced, view: DeploymentView, detected_at: datetime, scope: RegistryScope
) -> Alert | None:
    reference = observation.reference
    digest = reference.digest
    if digest is None and reference.tag is not None:
        pointer = view.pointers.get(TagRef(reference.name, reference.tag))
        if pointer is None or pointer.digest is None:
            return _unscanned(observation.workload, reference, None, detected_at, observation.seen_at, scope)
        digest, scan = pointer.digest, pointer.scan
    else:
        assert digest is not None
        scan = view.scans.get((reference.name, digest))
    if scan is None or not scan.completed:
        return _unscanned(observation.workload, reference, digest, detected_at, observation.seen_at, scope)
    if not scan.passing:
        return _vulnerable(observation.workload, reference, digest, scan, detected_at, observation.seen_at)
    return None


def _check_running(
    observation: ImageRunning, view: DeploymentView, detected_at: datetime, scope: RegistryScope
) -> Alert | None:
    running, origin = observation.running, observation.started_from
    digest = running.digest
    assert digest is not None
    origin_tag = _origin_tag(observation)
    pointer = view.pointers.get(origin_tag) if origin_tag is not None else None
    if pointer is not None and pointer.digest == digest:
        scan = pointer.scan
    else:
        scan = next((s for key in _running_keys(observation) if (s := view.scans.get(key)) and s.completed), None)
    shown = origin or running
    if scan is not None and scan.completed:
        if scan.passing:
            return None
        return _vulnerable(observation.workload, shown, digest, scan, detected_at, observation.seen_at)
    mark = pointer.scanned_mark() if pointer is not None else None
    if mark is None or mark.digest == digest:
        return _unscanned(observation.workload, shown, digest, detected_at, observation.seen_at, scope, running=True)
    return _alert(
        AlertType.DEPLOYED_DIGEST_MISMATCH,
        Severity.CRITICAL,
        observation.workload,
        shown,
        digest,
        detected_at,
        observation.seen_at,
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
    detected_at: datetime,
    seen_at: datetime,
    scope: RegistryScope,
    *,
    running: bool = False,
) -> Alert:
    foreign = scope.unmonitored_account(reference.name.registry)
    if foreign is not None:
        state = (
            f"it comes from account {foreign}, whose ECR events do not reach Tagwarden, so no push or scan "
            "of it can be in the ledger"
        )
    elif digest is None:
        state = "the ledger has never seen this tag pushed (or it was deleted), so nothing shows it was scanned"
    else:
        state = f"{short_digest(digest)}, which has no completed scan"
    verb = "runs" if running else "deploys"
    return _alert(
        AlertType.UNSCANNED_IMAGE_DEPLOYED,
        Severity.HIGH,
        workload,
        reference,
        digest,
        detected_at,
        seen_at,
        summary=f"{_where(workload)} {verb} {reference}: {state}.",
    )


def _vulnerable(
    workload: Workload,
    reference: ImageReference,
    digest: str,
    scan: ScanState,
    detected_at: datetime,
    seen_at: datetime,
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
        detected_at,
        seen_at,
        summary=f"{_where(workload)} deploys {reference} ({short_digest(digest)}), {verdict}.",
        scanned_digest=digest,
        scanned_at=scan.scanned_at,
        episode=scan.failing_since,
    )


def vulnerable_severity(scan: ScanState) -> Severity:
    """CRITICAL when the scan has CRITICAL findings, else HIGH (the README's severities)."""
    return Severity.CRITICAL if scan.finding_counts.get(FindingSeverity.CRITICAL.value, 0) > 0 else Severity.HIGH


def vulnerable_alert_id(location: str, image: ImageName, digest: str, scan: ScanState) -> str:
    """The id of "this workload uses this failing content": one per workload, content and failing episode.

    The audit watcher and the scan recorder both raise it, so each finding reaches subscribers once.
    """
    episode = (scan.failing_since,) if scan.failing_since else ()
    return derive_alert_id(AlertType.VULNERABLE_IMAGE_DEPLOYED, location, str(image), digest, *episode)


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
    detected_at: datetime,
    seen_at: datetime,
    *,
    summary: str,
    previous_digest: str | None = None,
    scanned_digest: str | None = None,
    scanned_at: datetime | None = None,
    episode: str | None = None,
) -> Alert:
    account, region = ecr_host_parts(reference.name.registry)
    # One finding per workload and content (and failing episode): replicas, retries and duplicate
    # deliveries share the id.
    episode_part = (episode,) if episode else ()
    return Alert(
        alert_id=derive_alert_id(
            alert_type, workload.location, str(reference.name), digest or reference.tag, *episode_part
        ),
        type=alert_type,
        severity=severity,
        summary=summary,
        detected_at=detected_at,
        event_time=seen_at,
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
