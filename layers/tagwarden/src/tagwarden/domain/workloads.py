"""Kubernetes workloads as the audit log shows them, and where images are in use."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tagwarden.domain.alerts import KubernetesContext, UsageSite

# A workload that stopped using a tag this long ago no longer counts as using it.
IN_USE_WINDOW = timedelta(days=30)
# The ledger's "last seen" of a workload is refreshed at most this often (audit logs repeat a lot).
USAGE_REFRESH = timedelta(hours=1)

# At most this many workloads are kept per tag or digest (the most recently seen), and listed in an alert:
# generated workload names must not grow a ledger item towards DynamoDB's 400 KB or an alert past SNS's 256 KB.
MAX_SITES_KEPT = 50
MAX_SITES_ALERTED = 10

# Pods of Deployments are named <deployment>-<pod-template-hash>-<5 chars>; of ReplicaSets, DaemonSets and
# Jobs <owner>-<5 chars>; of StatefulSets <owner>-<ordinal>. Jobs of CronJobs are <cronjob>-<scheduled
# time in minutes>, eight digits or more.
_DEPLOYMENT_POD = re.compile(r"(?P<owner>.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[a-z0-9]{5}")
_GENERATED_POD = re.compile(r"(?P<owner>.+)-[a-z0-9]{5}")
_STATEFUL_POD = re.compile(r"(?P<owner>.+)-[0-9]{1,7}")
_CRONJOB_JOB = re.compile(r"(?P<owner>.+)-[0-9]{8,}")
_REPLICASET = re.compile(r"(?P<owner>.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}")


@functools.lru_cache(maxsize=4096)
def workload_of_pod(pod_name: str) -> str:
    """The workload a pod most likely belongs to, from Kubernetes' naming of generated pods.

    Audit events of kubelet status updates name only the pod, so this is what lets all replicas (and all
    runs of a CronJob) share one alert.
    """
    if pod_name.endswith("-"):
        return workload_of_generate_name(pod_name)
    for pattern in (_DEPLOYMENT_POD, _GENERATED_POD, _STATEFUL_POD):
        match = pattern.fullmatch(pod_name)
        if match:
            return workload_of_job(match["owner"])
    return pod_name


def workload_of_generate_name(prefix: str) -> str:
    """The workload of a pod known only by its `generateName` (a create logged at level Request).

    Controllers name pods `<owner>-` plus a random suffix, so the prefix without its dash is the owner:
    a ReplicaSet (`<deployment>-<pod-template-hash>`), a Job, a DaemonSet. The result is the same as for
    the pod's generated name, so both lines share the workload's finding.
    """
    owner = prefix.rstrip("-")
    match = _REPLICASET.fullmatch(owner)
    return workload_of_job(match["owner"] if match else owner) if owner else prefix


def workload_of_job(job_name: str) -> str:
    """The CronJob a Job was created by, when its name says so; else the Job itself."""
    match = _CRONJOB_JOB.fullmatch(job_name)
    return match["owner"] if match else job_name


def cluster_id(name: str, owner: str | None, region: str | None, home_account: str | None) -> str:
    """How the ledger and alerts name an EKS cluster: its bare name in the stack's own account, else
    `<account>:<region>:<name>`.

    EKS names are unique only within an account and region, and an organization's member accounts reuse
    them (`prod` everywhere): the name alone would merge two clusters' usage records, rollouts and findings
    (locations and alert ids are built from it). The stack's own clusters keep the bare name, so a ledger
    written before organization support stays valid; `:` is not allowed in EKS names (nor `/`, which
    separates a location's parts), so a qualified id never equals a bare name. An unknown owner (a replayed
    raw audit file) or an unknown home account is the stack's own: there is nothing to tell it apart from.
    """
    if not owner or home_account is None or owner == home_account:
        return name
    return f"{owner}:{region or '-'}:{name}"


@dataclass(frozen=True, slots=True)
class Workload:
    """The object an audit event is about, and who acted on it."""

    cluster: str
    namespace: str | None
    kind: str
    name: str
    user: str | None = None
    audit_id: str | None = None

    @property
    def owner_name(self) -> str:
        """The workload name that replicas share (pods are mapped to their likely owner)."""
        if self.kind == "Pod":
            return workload_of_pod(self.name)
        return workload_of_job(self.name) if self.kind == "Job" else self.name

    @property
    def location(self) -> str:
        """Where an image is in use, `cluster/namespace/workload`: a workload and its pods are one place.

        It is also what makes a deployment finding 'the same' across replicas, retries and deliveries.
        """
        return f"{self.cluster}/{self.namespace or '-'}/{self.owner_name}"

    def context(self) -> KubernetesContext:
        """The alert's `kubernetes` field."""
        return KubernetesContext(
            cluster=self.cluster,
            namespace=self.namespace,
            kind=self.kind,
            name=self.name,
            user=self.user,
            audit_id=self.audit_id,
        )


def recent_sites(in_use: Mapping[str, datetime], now: datetime) -> tuple[UsageSite, ...]:
    """The workloads seen using an image within IN_USE_WINDOW, most recent first."""
    sites = []
    for location, last_seen in in_use.items():
        if now - last_seen > IN_USE_WINDOW:
            continue
        parts = location.split("/", 2)
        if len(parts) != 3:
            continue
        cluster, namespace, workload = parts
        sites.append(UsageSite(cluster=cluster, namespace=namespace, workload=workload, last_seen=last_seen))
    return tuple(sorted(sites, key=lambda site: site.last_seen, reverse=True))


def stale_sites(in_use: Mapping[str, datetime], now: datetime, adding: int = 0) -> list[str]:
    """Locations to forget: unseen for IN_USE_WINDOW, and the oldest beyond MAX_SITES_KEPT (room for `adding`)."""
    fresh = sorted((seen, location) for location, seen in in_use.items() if now - seen <= IN_USE_WINDOW)
    stale = [location for location, seen in in_use.items() if now - seen > IN_USE_WINDOW]
    excess = len(fresh) + adding - MAX_SITES_KEPT
    if excess > 0:
        stale.extend(location for _, location in fresh[:excess])
    return stale


def pruned(in_use: Mapping[str, datetime], now: datetime) -> dict[str, datetime]:
    """The usage map without its stale sites."""
    drop = set(stale_sites(in_use, now))
    return {location: seen for location, seen in in_use.items() if location not in drop}


def needs_refresh(in_use: Mapping[str, datetime], location: str, seen: datetime) -> bool:
    """Whether the ledger's last-seen of a location is missing or older than USAGE_REFRESH."""
    last = in_use.get(location)
    return last is None or seen - last >= USAGE_REFRESH


# A finding seen again this long after its rollout began is a new finding (alerted again).
ROLLOUT_WINDOW = timedelta(hours=24)
# At most this many contents are remembered per workload (the most recently rolled out).
MAX_ROLLOUTS_KEPT = 20


@dataclass(frozen=True, slots=True)
class Rollouts:
    """The contents recently rolled out at one workload (content -> start of its latest rollout).

    `version` is the ledger's version of the record (0: none yet), so a write can be conditioned on it.
    """

    starts: Mapping[str, datetime] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True, slots=True)
class Sighting:
    """Content (image name and digest, or tag when no digest is known) seen at a workload, and how.

    `introduces` is true for spec writes (workload and pod creations, updates, patches): only they can
    roll content out again. A kubelet reporting an old pod during a newer rollout does not.
    """

    content: str
    seen_at: datetime
    introduces: bool


def rollout_starts(
    known: Mapping[str, datetime], sightings: Sequence[Sighting]
) -> tuple[list[datetime], dict[str, datetime]]:
    """The start of the rollout each sighting belongs to, and the workload's rollouts afterwards.

    `known` maps each content recently rolled out at the workload to the start of its latest rollout. A
    sighting starts a new rollout of its content when the content is unknown, when its rollout began
    ROLLOUT_WINDOW or more before, or when it is a spec write and other content was rolled out since (a
    rollback: A, then B, then A again). Sightings are taken in time order, whatever order they came in; a
    line older than its content's latest rollout belongs to that rollout (the ledger keeps no older ones).
    """
    state = dict(known)
    starts: list[datetime | None] = [None] * len(sightings)
    for index in sorted(range(len(sightings)), key=lambda n: sightings[n].seen_at):
        sighting = sightings[index]
        start = state.get(sighting.content)
        if start is None or sighting.seen_at - start >= ROLLOUT_WINDOW or _rolled_back(state, sighting, start):
            start = state[sighting.content] = sighting.seen_at
        starts[index] = start
    newest = max(state.values(), default=None)
    kept = sorted(
        ((start, content) for content, start in state.items() if newest is None or newest - start < ROLLOUT_WINDOW),
        reverse=True,
    )[:MAX_ROLLOUTS_KEPT]
    return [start for start in starts if start is not None], {content: start for start, content in kept}


def _rolled_back(state: Mapping[str, datetime], sighting: Sighting, start: datetime) -> bool:
    """A spec write of content whose rollout was followed by another content's, before this line."""
    if not sighting.introduces or sighting.seen_at <= start:
        return False
    return any(start < other <= sighting.seen_at for content, other in state.items() if content != sighting.content)
