"""Every interface between the core's services and the outside world, and the errors they raise.

Services depend on these protocols only; adapters implement them and never import a service. The ports:

| port              | used by                                 | implemented by (adapters)                 |
|-------------------|-----------------------------------------|-------------------------------------------|
| TagLedger         | push guard                              | dynamodb.tag_ledger.DynamoDbTagLedger     |
| ScanLedger        | scan recorder                           | dynamodb.scan_ledger.DynamoDbScanLedger   |
| DeploymentLedger  | audit watcher                           | dynamodb.deployment_ledger                |
| LedgerReader      | ledger queries, backfill                | dynamodb.reader.DynamoDbLedgerReader      |
| AlertOutbox       | alert delivery (services.alert_delivery) | dynamodb.outbox.DynamoDbAlertOutbox      |
| AlertPublisher    | alert delivery                          | sns_publisher, alert_collector; the sinks |
|                   |                                         | chat_publisher, securityhub_publisher,    |
|                   |                                         | fanned out by alert_sinks (issue 13)      |
| ImageInventory    | backfill                                | ecr_registry.EcrRegistry                  |
| ManifestSource    | push guard (indexes, same-second ties)  | ecr_registry.EcrRegistry, .OrganizationRegistries |
| TagResolver       | `tagwarden prepush`                     | oci_registry.OciRegistry                  |
| AdmissionLedger   | admission webhook                       | dynamodb.admission_ledger                 |
| RevertRequests    | push guard (opt-in revert hand-off)     | sqs_revert_requests.SqsRevertRequests     |
| RevertLedger      | tag reverter                            | dynamodb.revert_ledger                    |
| TagRestorer       | tag reverter (the only ECR writer)      | ecr_restorer.EcrTagRestorer               |
| TrailLedger       | trail watcher                           | dynamodb.trail_ledger.DynamoDbTrailLedger |
| RepositorySettings| posture                                 | ecr_registry.EcrRegistry                  |

Alerts are written in the same atomic write as the ledger change that raised them (an outbox): the
ledger ports store them with a delivery lease (`lease_until`) that `AlertDelivery` hands out; everything
after the write (publish, lease, delivered flag) goes through `AlertOutbox` alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tagwarden.domain.admission import AdmissionView
from tagwarden.domain.alerts import Actor, Alert, RevertOutcome
from tagwarden.domain.deployments import DeploymentView, TagPosition
from tagwarden.domain.findings import FindingReported, KnownFinding
from tagwarden.domain.identity import ActorReport, HistoryCandidate
from tagwarden.domain.images import ImageName
from tagwarden.domain.indexes import ImageIndex
from tagwarden.domain.prepush import TagLookup
from tagwarden.domain.registry import RegistryImage, RegistryRepository, RegistryScan
from tagwarden.domain.revert import Mutability, PendingRevert, RevertRequest, RevertTarget
from tagwarden.domain.rules import Neighbours, TagDecision
from tagwarden.domain.scan_rules import FindingDecision, ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted, ScanState
from tagwarden.domain.tag_protection import KnownSetting, ProtectionSetting, SettingsChange
from tagwarden.domain.tags import ImageAction, TagMove, TagPointer, TagRef
from tagwarden.domain.workloads import Rollouts


class TagwardenError(Exception):
    """Base of the errors the core raises on purpose."""


class LedgerUnavailableError(TagwardenError):
    """The ledger could not be read or written (after the client's own retries); the event must be retried."""


class ConcurrentUpdateError(TagwardenError):
    """Someone else changed what a conditional write relied on; read again and decide again."""


class AlertDeliveryError(TagwardenError):
    """An alert could not be published; the event must be retried so the alert is not lost.

    `reached` names the sinks that did take it (a fan-out to several sinks), so the retry skips them."""

    def __init__(self, message: str, reached: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.reached = reached


class AlertRejectedError(AlertDeliveryError):
    """An optional alert sink (chat, Security Hub) refused an alert for good (not enabled, no permission,
    invalid): retrying would not help, so delivery counts it, logs it and goes on."""


class ManifestUnreadableError(TagwardenError):
    """The registry refused to show a manifest or tag (no permission: another account's registry); retrying
    would not help."""


# --- The alert outbox -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagEntry:
    """A tag history entry, as a holder of alerts."""

    tag: TagRef
    event_key: str


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """A scan history entry of one digest, as a holder of alerts."""

    image: ImageName
    digest: str
    event_key: str


@dataclass(frozen=True, slots=True)
class FindingEntry:
    """A deployment finding, recorded once per alert id however often it is observed."""

    alert_id: str


AlertEntry = TagEntry | ScanEntry | FindingEntry
"""Where a ledger entry's alerts wait for delivery."""


@dataclass(frozen=True, slots=True)
class RecordedAlerts:
    """The alerts a recorded entry raised, and whether they reached the topic."""

    alerts: tuple[Alert, ...] = ()
    delivered: bool = False
    # What an earlier attempt that failed part-way got out: alert ids every sink has, and `<alert id>#<sink>`
    # for a sink that has an alert some other sink did not take.
    published: frozenset[str] = frozenset()


class AlertOutbox(Protocol):
    """The delivery state of alerts already written with their ledger entry."""

    def claim(self, entry: AlertEntry, now: datetime, until: datetime) -> bool:
        """Take over publishing the entry's undelivered alerts if nobody holds a live lease on them."""
        ...

    def mark_published(self, entry: AlertEntry, alert_ids: Iterable[str]) -> None:
        """Remember what got out before a publish failed (best effort): alert ids, and `<alert id>#<sink>` for
        a sink that has an alert others did not take."""
        ...

    def mark_delivered(self, entry: AlertEntry) -> None:
        """Remember that the entry's alerts reached the topic, so retries do not repeat them."""
        ...

    def release(self, entry: AlertEntry) -> None:
        """Give up the lease (after a failed publish, or a run that withholds), so the next attempt may take over."""
        ...


class AlertPublisher(Protocol):
    """Delivers alerts to security staff (a topic, a chat channel, a findings service, or a collector)."""

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        """Publish one alert, except to the named sinks that have it already (an earlier attempt's
        `AlertDeliveryError.reached`); raise AlertDeliveryError when it did not reach its destination.
        A one-destination publisher names no sinks, so it never raises with `reached` set and gets no `skip`."""
        ...


# --- The ledger, as each service writes it ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagSnapshot:
    """What the ledger holds for one tag action, read in one request before deciding."""

    pointer: TagPointer | None
    # This event's history entry, if an earlier delivery recorded it: its alerts and their delivery.
    existing: RecordedAlerts | None
    scans: Mapping[str, ScanState] = field(default_factory=dict)
    # Where the existing entry was recorded: the event's own position, or the one a same-second tie gave it.
    existing_key: str | None = None
    # For an image index: its record's derivation counter (see `IndexPush`).
    derivation: int | None = None
    # The revert the existing entry asked for, and its state (opt-in revert).
    existing_revert: PendingRevert | None = None
    # Who made this action, if CloudTrail's record of it arrived first (read in the same request).
    pending_actor: Actor | None = None


@dataclass(frozen=True, slots=True)
class IndexPush:
    """A pushed image index: its platform manifests, read from the registry, and the scan state derived from
    theirs. The write holds only if every child's scan and the index's derivation counter are as read."""

    index: ImageIndex
    derived: ScanState | None
    child_scans: Mapping[str, ScanState]
    derivation: int | None


@dataclass(frozen=True, slots=True)
class ScanReading:
    """What the ledger holds for one scan event, read before deciding."""

    snapshot: ScanSnapshot
    existing: RecordedAlerts | None


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """A workload seen using a tag or a digest (refreshing its last-seen time)."""

    location: str
    seen_at: datetime
    tag: TagRef | None = None
    digest: tuple[ImageName, str] | None = None
    # Locations to forget in the same write: unseen for long, or the oldest beyond the cap.
    forget: tuple[str, ...] = ()


class TagLedger(Protocol):
    """Where tag pointers, tag histories and digest records live (the push guard's view)."""

    def read_for_action(self, tag: TagRef, action: ImageAction, children: Iterable[str] = ()) -> TagSnapshot:
        """The tag's pointer, this event's history entry if already recorded (at its own position or a tie's),
        and the scan states of the digest and of the index `children` it holds, in one read."""
        ...

    def neighbours(self, tag: TagRef, event_key: str) -> Neighbours:
        """The history entries just before and after a position in the tag's history."""
        ...

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """The latest scan of each digest that has one."""
        ...

    def apply(
        self,
        tag: TagRef,
        action: ImageAction,
        decision: TagDecision,
        expected: TagPointer | None,
        lease_until: datetime,
        index: IndexPush | None = None,
        pending_actor: Actor | None = None,
    ) -> None:
        """Write the decision atomically (its alerts leased until `lease_until`), provided the pointer is
        still `expected` and the action's pending actor is still `pending_actor` (so an actor CloudTrail
        leaves meanwhile is read on the retry). A pushed `index` is recorded with its children, and each
        child learns its parent.

        Raises ConcurrentUpdateError when the pointer changed or the event was recorded meanwhile.
        """
        ...

    def record_untagged(self, action: ImageAction) -> None:
        """Record a push or delete of a digest that concerns no tag (idempotent)."""
        ...


class ScanLedger(Protocol):
    """Scan records of digests, and the tag pointers that carry them (the scan recorder's view)."""

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """This scan's entry if already recorded, the digest's scan state and known tags, candidate pointers."""
        ...

    def apply_scan(
        self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, lease_until: datetime
    ) -> None:
        """Write the scan entry (its alerts leased until `lease_until`), digest state and pointer updates
        atomically, provided nothing read changed.

        Raises ConcurrentUpdateError when anything the decision relied on changed meanwhile.
        """
        ...

    def read_for_finding(self, report: FindingReported) -> FindingReading:
        """The finding as last recorded, and the digest's record and pointers as for a scan of it."""
        ...

    def apply_finding(
        self,
        report: FindingReported,
        decision: FindingDecision,
        reading: FindingReading,
        lease_until: datetime,
    ) -> None:
        """Write the finding, the digest's tally and (with a new state) its scan entry with alerts, the
        state on the digest and its pointers, the deployment findings, and the indexes holding the digest
        (their derived states and pointers, as `apply_scan`), atomically, provided the finding, tally and
        state (and each index's derivation counter) are still the ones read.

        Raises ConcurrentUpdateError when anything the decision relied on changed meanwhile.
        """
        ...


@dataclass(frozen=True, slots=True)
class FindingReading:
    """What the ledger holds for one Inspector finding event, read before deciding."""

    snapshot: ScanSnapshot
    # The finding as its newest applied event left it (None: never seen).
    known: KnownFinding | None
    # For a repeated delivery of the event that made `known`: where its alerts are, and what they are.
    entry: ScanEntry | None = None
    existing: RecordedAlerts | None = None


class DeploymentLedger(Protocol):
    """What the audit watcher reads and writes: tag pointers, digest scan states, usage and findings."""

    def read_deployment_view(
        self,
        tags: Iterable[TagRef],
        digests: Iterable[tuple[ImageName, str]],
        locations: Iterable[str] = (),
    ) -> DeploymentView:
        """Pointers and scan states of every tag and digest of a batch, and its workloads' rollouts, batched."""
        ...

    def tag_history(self, tag: TagRef, earliest: datetime, latest: datetime) -> tuple[TagPosition, ...]:
        """The tag's history entries at or before `latest`, newest first, down to the one in force at `earliest`."""
        ...

    def first_completed_scans(self, digests: Iterable[tuple[ImageName, str]]) -> dict[tuple[ImageName, str], datetime]:
        """When each digest's first completed scan is dated (digests without one are left out)."""
        ...

    def record_rollouts(self, changes: Mapping[str, tuple[Rollouts, Rollouts]]) -> None:
        """Store each workload's new rollouts (read -> new), provided its record is still the one read (else
        merge with the record found and try again, a few times)."""
        ...

    def record_usage(self, updates: Iterable[UsageUpdate]) -> None:
        """Refresh where tags and digests are in use (only on items the ledger already has)."""
        ...

    def recorded_findings(self, alert_ids: Iterable[str]) -> dict[str, RecordedAlerts]:
        """The findings among these ids that were recorded before, batched."""
        ...

    def record_finding(self, alert: Alert, lease_until: datetime) -> RecordedAlerts | None:
        """Record a finding once: None when it is new (the caller publishes), else what was recorded before."""
        ...


# --- Read side: people, CI gates and the backfill ---------------------------------------------------


class LedgerReader(Protocol):
    """The ledger's read side, as the queries and the backfill use it."""

    def pointer(self, tag: TagRef) -> TagPointer | None:
        """The tag's pointer, if the ledger has seen the tag."""
        ...

    def history(self, tag: TagRef) -> list[TagMove]:
        """The tag's whole history, oldest first."""
        ...

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """The latest scan of each digest that has one."""
        ...

    def digest_record(self, image: ImageName, digest: str) -> tuple[frozenset[str], ScanState | None] | None:
        """None for a digest the ledger never saw; else the tags ever pushed to it and its latest scan."""
        ...

    def scan_history(self, image: ImageName, digest: str) -> list[ScanState]:
        """Every scan recorded for the digest, oldest first."""
        ...

    def indexes(self, image: ImageName, digests: Iterable[str]) -> dict[str, ImageIndex]:
        """The image indexes among these digests, with their platform and attestation manifests."""
        ...


class ManifestSource(Protocol):
    """What the registry holds now: the entries of an image index, and where a tag points."""

    def index_of(self, image: ImageName, digest: str) -> ImageIndex | None:
        """The platform and attestation manifests of the index `digest`; None when the registry no longer
        holds it. Raises ManifestUnreadableError when the registry refuses to show it."""
        ...

    def tag_digest(self, tag: TagRef) -> str | None:
        """The digest the tag names in the registry now; None when the registry has no such tag."""
        ...


class ImageInventory(Protocol):
    """What a registry holds: repositories, their images, and the images' scans."""

    def repositories(self, names: Sequence[str]) -> list[RegistryRepository]:
        """The named repositories (every repository when `names` is empty); raise if one does not exist."""
        ...

    def images(self, repository: RegistryRepository) -> list[RegistryImage]:
        """Every image of the repository."""
        ...

    def scan_of(self, image: RegistryImage) -> RegistryScan | None:
        """The image's latest finished scan, or None if it has none."""
        ...


# --- Before the push: any OCI distribution registry (`tagwarden prepush`) ---------------------------


class RegistryError(TagwardenError):
    """A registry's HTTP API could not answer where a tag points."""


class RegistryUnavailableError(RegistryError):
    """The registry did not answer, or kept answering 429/5xx, after retries: worth retrying later."""


class RegistryRefusedError(RegistryError):
    """The registry answered but will not tell: credentials missing or rejected (401), access denied (403),
    or a certificate that does not verify. Retrying the same way would not help."""


class NotARegistryError(RegistryError):
    """What answered is not an OCI distribution registry (an HTML page, a proxy, a wrong port)."""


class TagResolver(Protocol):
    """Where a tag points in its registry now, over the registry's own API."""

    def lookup(self, tag: TagRef) -> TagLookup:
        """The tag's digest now (None when the tag or its repository does not exist).

        Raises RegistryUnavailableError, RegistryRefusedError or NotARegistryError.
        """


# --- Admission: the webhook's read of the ledger -------------------------------------------------------


class AdmissionLedger(Protocol):
    """What the admission webhook reads: where tags point now and what digests' scans say (never writes)."""

    def read_admission_view(self, tags: Iterable[TagRef], digests: Iterable[tuple[ImageName, str]]) -> AdmissionView:
        """Pointers and digest records of one object's images in one consistent request; raises
        LedgerUnavailableError when the ledger does not answer within the webhook's budget."""
        ...


# --- Opt-in revert of overwritten protected tags (domain.revert) ------------------------------------


class RevertHandoffError(TagwardenError):
    """A revert request could not be handed to the reverter; the event must be retried (its retry hands it again)."""


class RevertRefusedError(TagwardenError):
    """The registry refused the reverter for a reason retrying cannot change (access denied, no such
    repository, immutable tag, missing layers; the message says which): the request is settled at once."""


class RevertRequests(Protocol):
    """Where the push guard hands revert requests to the reverter (a queue)."""

    def request(self, request: RevertRequest) -> None:
        """Hand one request over; raise RevertHandoffError when it was not accepted."""
        ...


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as the registry stores it: its exact bytes (as text) and media type."""

    body: str
    media_type: str


class TagRestorer(Protocol):
    """The registry, as the reverter reads and writes it."""

    def mutability(self, image: ImageName) -> Mutability:
        """The repository's tag mutability setting."""
        ...

    def tag_digest(self, tag: TagRef) -> str | None:
        """The digest the tag names in the registry now; None when the registry has no such tag."""
        ...

    def manifest(self, image: ImageName, digest: str) -> StoredManifest | None:
        """The manifest `digest` of the repository; None when the registry no longer holds it."""
        ...

    def put_tag(self, tag: TagRef, digest: str, manifest: StoredManifest) -> None:
        """Make the tag name `digest` again by putting its manifest back under the tag.

        Raises RevertRefusedError when the registry refuses for good (immutable tag, missing layers)."""
        ...


class RevertLedger(Protocol):
    """The revert requests recorded on history entries, as the reverter reads and settles them."""

    def pending_revert(self, request: RevertRequest) -> tuple[PendingRevert, RecordedAlerts] | None:
        """The request as recorded on its entry, with the entry's alerts; None if no entry asked for it."""
        ...

    def settle_revert(
        self, pending: PendingRevert, outcome: RevertOutcome, alerts: tuple[Alert, ...]
    ) -> RecordedAlerts:
        """Record the outcome and the alerts that say it, provided the request is still pending, and release
        the tag's marker (`release_marker`).

        Raises ConcurrentUpdateError when another attempt settled it first."""
        ...

    def target(self, pending: PendingRevert) -> RevertTarget:
        """What the ledger knows of the content the request would put back (its scan, when first seen)."""
        ...

    def release_marker(self, pending: PendingRevert) -> None:
        """Release the tag pointer's marker of this settled request, if the marker is still this request's."""
        ...


# --- CloudTrail: repository settings and who pushed (trail watcher) ---------------------------------


# The latest tag mutability setting the ledger holds for a repository or creation template (a domain value:
# the decision reads it).
RecordedSetting = KnownSetting


@dataclass(frozen=True, slots=True)
class SettingsReading:
    """What the ledger holds for one settings change, read in one request before deciding."""

    recorded: RecordedSetting | None
    # This event's alert, if an earlier delivery recorded it.
    existing: RecordedAlerts | None


class TrailLedger(Protocol):
    """Repository settings and the actors of tag actions (the trail watcher's view)."""

    def read_settings(self, change: SettingsChange, alert_id: str) -> SettingsReading:
        """The subject's recorded setting and the alert this change would raise, if recorded, in one read."""
        ...

    def apply_settings(
        self,
        change: SettingsChange,
        expected: RecordedSetting | None,
        record: bool,
        alert: Alert | None,
        lease_until: datetime,
        order_unknown: bool = False,
    ) -> None:
        """Write the new setting (when `record`, provided the recorded one is still `expected`) and the alert
        (once per id, leased until `lease_until`) atomically; `order_unknown` marks the setting kept (the new
        one, or else the recorded one) as unordered against a same-second change. Raises ConcurrentUpdateError
        when the recorded setting is no longer `expected`."""
        ...

    def history_near(self, report: ActorReport, window: timedelta) -> list[HistoryCandidate]:
        """The tag's history entries of the report's action and digest nearest to its time on either side,
        within `window` (each side read outward from the time, page by page, up to a bound)."""
        ...

    def name_actor(self, tag: TagRef, event_key: str, actor: Actor) -> bool:
        """Set the entry's actor unless it names another CloudTrail event's; False when it does."""
        ...

    def tags_of_digest(self, image: ImageName, digest: str) -> tuple[str, ...]:
        """The tags the ledger has seen pushed on a digest (its digest record), none when unknown."""
        ...

    def leave_actor(self, report: ActorReport) -> None:
        """Keep the actor where the push guard reads it with the action (a newer call's actor wins)."""
        ...


class RepositorySettings(Protocol):
    """Every repository of a registry with its tag mutability setting."""

    def repository_settings(self) -> Iterable[tuple[ImageName, str, ProtectionSetting]]:
        """Each repository (name, registry account, setting), page by page."""
        ...
