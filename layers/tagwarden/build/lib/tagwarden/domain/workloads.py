"""Kubernetes workloads as the audit log shows them, and where images are in use."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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


def workload_of_pod(pod_name: str) -> str:
    """The workload a pod most likely belongs to, from Kubernetes' naming of generated pods.

    Audit events of kubelet status updates name only the pod, so this is what lets all replicas (and all
    runs of a CronJob) share one alert.
    """
    for pattern in (_DEPLOYMENT_POD, _GENERATED_POD, _STATEFUL_POD):
        match = pattern.fullmatch(pod_name)
        if match:
            return workload_of_job(match["owner"])
    return pod_name


def workload_of_job(job_name: str) -> str:
    """The CronJob a Job was created by, when its name says so; else the Job itself."""
    match = _CRONJOB_JOB.fullmatch(job_name)
    return match["owner"] if match else job_name


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
