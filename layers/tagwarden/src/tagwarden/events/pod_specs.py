"""Where Kubernetes objects keep their pod spec, and the container lists a pod spec has.

One table for every reader of Kubernetes objects: the admission webhook finds a request's kind here by
(API group, kind), the audit watcher an audit event's resource by its plural name (`objectRef.resource`).
Paths are from the Kubernetes API reference: a Pod's `spec`, a PodTemplate's `template.spec`, a CronJob's
`spec.jobTemplate.spec.template.spec`, every other workload's `spec.template.spec`.
"""

from __future__ import annotations

from dataclasses import dataclass

_TEMPLATE = ("spec", "template", "spec")


@dataclass(frozen=True, slots=True)
class PodSpecKind:
    """A kind that carries a pod spec: its API group (the core group is ""), kind, plural resource and the
    keys leading from the object to the pod spec."""

    group: str
    kind: str
    resource: str
    path: tuple[str, ...]


POD_SPEC_KINDS: tuple[PodSpecKind, ...] = (
    PodSpecKind("", "Pod", "pods", ("spec",)),
    PodSpecKind("", "ReplicationController", "replicationcontrollers", _TEMPLATE),
    PodSpecKind("", "PodTemplate", "podtemplates", ("template", "spec")),
    PodSpecKind("apps", "Deployment", "deployments", _TEMPLATE),
    PodSpecKind("apps", "ReplicaSet", "replicasets", _TEMPLATE),
    PodSpecKind("apps", "StatefulSet", "statefulsets", _TEMPLATE),
    PodSpecKind("apps", "DaemonSet", "daemonsets", _TEMPLATE),
    PodSpecKind("batch", "Job", "jobs", _TEMPLATE),
    PodSpecKind("batch", "CronJob", "cronjobs", ("spec", "jobTemplate", "spec", "template", "spec")),
)
POD_SPEC_BY_KIND: dict[tuple[str, str], PodSpecKind] = {(k.group, k.kind): k for k in POD_SPEC_KINDS}
# A pod spec's container lists, in the order the API server validates them (PodSpec field order).
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# The only list the `ephemeralcontainers` subresource of a Pod writes (`kubectl debug`).
EPHEMERAL_CONTAINERS = "ephemeralContainers"
