"""`tagwarden preflight`: are the EKS clusters of `EksClusterNames` ready for the stack's subscriptions?

The stack subscribes the audit watcher to each cluster's `/aws/eks/<name>/cluster` log group (template.yaml,
`Fn::ForEach::EksAuditLogSubscriptions`). CloudFormation only finds out at deploy time that a cluster is in
another region, has audit logging off, has no such log group yet, or that the group already carries the two
subscription filters CloudWatch Logs allows, and then rolls the whole deploy back. This command asks EKS and
CloudWatch Logs first and names each cluster that is not ready, and why.

`check_clusters` is the check itself, on an EKS and a CloudWatch Logs client; `tagwarden preflight`
(cli/main.py) runs it with the command's clients and prints `readiness_lines` or `readiness_json`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tagwarden.cli.errors import usage_error

# EKS's own cluster name grammar (CreateCluster); template.yaml's EksClusterNames AllowedPattern is
# '^$|' + this (tests/integration/test_template_safety.py checks that they agree).
CLUSTER_NAME_PATTERN = "^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"
CLUSTERS_PARAMETER = "EksClusterNames"
AUDIT_LOG_TYPE = "audit"
# CloudWatch Logs allows two subscription filters per log group (a quota that cannot be raised).
SUBSCRIPTION_FILTERS_PER_LOG_GROUP = 2
# template.yaml names each cluster's filter `${AWS::StackName}-tagwarden-audit-watcher`: a filter of that
# name is the stack's own, which a deploy updates in place without needing a free slot.
STACK_FILTER_SUFFIX = "-tagwarden-audit-watcher"
ENABLE_AUDIT_LOGGING = (
    "aws eks update-cluster-config --name {cluster} "
    """--logging '{{"clusterLogging":[{{"types":["audit"],"enabled":true}}]}}'"""
)


def audit_log_group(cluster: str) -> str:
    """The log group EKS writes a cluster's control-plane logs to, audit log included."""
    return f"/aws/eks/{cluster}/cluster"


def stack_filter_name(stack_name: str) -> str:
    """The name the stack gives its subscription filter on each cluster's audit log group."""
    return f"{stack_name}{STACK_FILTER_SUFFIX}"


class NotReady(StrEnum):
    """Why the stack's subscription filter on a cluster's audit log group would fail to be created."""

    CLUSTER_NOT_FOUND = "cluster_not_found"
    AUDIT_LOGGING_OFF = "audit_logging_off"
    LOG_GROUP_MISSING = "log_group_missing"
    NO_FREE_FILTER_SLOT = "no_free_filter_slot"


@dataclass(frozen=True, slots=True)
class ClusterReadiness:
    """One cluster's verdict: ready, or the first thing that would make the deploy roll back."""

    cluster: str
    problem: NotReady | None
    reason: str
    # The filters already on the audit log group that are not the stack's own (they take the slots).
    other_filters: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """True when the stack can subscribe to this cluster's audit log group."""
        return self.problem is None

    @property
    def log_group(self) -> str:
        """The audit log group the stack subscribes to."""
        return audit_log_group(self.cluster)


def parse_cluster_names(text: str) -> list[str]:
    """The names of a comma-separated list, split and trimmed as CloudFormation does a CommaDelimitedList.

    Empty text means no clusters. An empty entry (a stray comma) or a name EKS would not accept is a usage
    error, as the template's pattern and rule make it a parameter error at deploy time.
    """
    if not text.strip():
        return []
    names = [name.strip() for name in text.split(",")]
    if "" in names:
        raise usage_error(f"{text!r} has an empty entry (a leading, trailing or doubled comma)")
    for name in names:
        if not re.fullmatch(CLUSTER_NAME_PATTERN, name):
            raise usage_error(
                f"{name!r} is not an EKS cluster name (letters, digits, - and _, starting with a letter or digit)"
            )
    # Fn::ForEach names each cluster's subscription filter after the name without its - and _: two names
    # that differ only there (or a name given twice) make one logical id twice, and the deploy fails.
    seen: dict[str, str] = {}
    for name in names:
        logical = re.sub(r"[^0-9A-Za-z]", "", name)
        if logical in seen:
            raise usage_error(
                f"{seen[logical]!r} and {name!r} would both be the stack's AuditLogSubscription{logical}: "
                "give each cluster once (names that differ only in - or _ cannot both be listed)"
            )
        seen[logical] = name
    return names


def check_clusters(
    eks: Any, logs: Any, clusters: Sequence[str], filter_name: str | None = None
) -> list[ClusterReadiness]:
    """Each cluster's readiness for the stack's subscription filter, in the order given.

    `eks` and `logs` are boto3 clients (typed Any: this project installs no EKS or CloudWatch Logs stubs) of
    the stack's region. `filter_name` is the stack's own filter (`stack_filter_name`), which does not need a
    free slot; without it every existing filter counts. AWS errors other than "not found" (access denied,
    throttling after retries) propagate.
    """
    return [check_cluster(eks, logs, cluster, filter_name) for cluster in clusters]


def check_cluster(eks: Any, logs: Any, cluster: str, filter_name: str | None = None) -> ClusterReadiness:
    """One cluster's readiness (see `check_clusters`): the first failed condition, in the order a deploy hits them."""
    region = eks.meta.region_name
    try:
        described = eks.describe_cluster(name=cluster)["cluster"]
    except eks.exceptions.ResourceNotFoundException:
        return ClusterReadiness(
            cluster,
            NotReady.CLUSTER_NOT_FOUND,
            f"no EKS cluster {cluster!r} in {region} (the stack subscribes in its own region; check the name)",
        )
    if not _audit_logging_enabled(described):
        # The log group may still exist from when audit logging was on: a filter on it would deploy and
        # then receive nothing, so this is "not ready" too.
        return ClusterReadiness(
            cluster,
            NotReady.AUDIT_LOGGING_OFF,
            f"control-plane audit logging is off; enable it with: {ENABLE_AUDIT_LOGGING.format(cluster=cluster)}",
        )
    log_group = audit_log_group(cluster)
    try:
        filters = logs.describe_subscription_filters(logGroupName=log_group)["subscriptionFilters"]
    except logs.exceptions.ResourceNotFoundException:
        return ClusterReadiness(
            cluster,
            NotReady.LOG_GROUP_MISSING,
            f"log group {log_group} does not exist yet (EKS creates it with the first audit log events, "
            "a few minutes after audit logging is enabled)",
        )
    others = tuple(sorted(f["filterName"] for f in filters if f.get("filterName") != filter_name))
    if len(others) >= SUBSCRIPTION_FILTERS_PER_LOG_GROUP:
        return ClusterReadiness(
            cluster,
            NotReady.NO_FREE_FILTER_SLOT,
            f"log group {log_group} already has {len(others)} subscription filters of other owners "
            f"({', '.join(others)}); CloudWatch Logs allows {SUBSCRIPTION_FILTERS_PER_LOG_GROUP}",
            others,
        )
    return ClusterReadiness(cluster, None, "ready", others)


def _audit_logging_enabled(cluster: dict[str, Any]) -> bool:
    setups = cluster.get("logging", {}).get("clusterLogging", [])
    return any(setup.get("enabled") and AUDIT_LOG_TYPE in setup.get("types", []) for setup in setups)


def readiness_json(results: Sequence[ClusterReadiness]) -> dict[str, object]:
    """The verdicts as JSON: all ready or not, and each cluster's."""
    return {
        "ready": all(result.ready for result in results),
        "clusters": [
            {
                "cluster": result.cluster,
                "ready": result.ready,
                "problem": result.problem.value if result.problem is not None else None,
                "reason": result.reason,
                "log_group": result.log_group,
                "other_filters": list(result.other_filters),
            }
            for result in results
        ],
    }


def readiness_lines(results: Sequence[ClusterReadiness], region: str) -> list[str]:
    """One line per cluster, not a table: the reasons are long, and CI logs read lines."""
    if not results:
        return ["no EKS clusters to check (EksClusterNames is empty)"]
    width = max(len(result.cluster) for result in results)
    lines = [f"EKS clusters in {region}, for the stack's audit log subscriptions:"]
    for result in results:
        verdict = "ready" if result.ready else f"NOT READY: {result.reason}"
        lines.append(f"  {result.cluster:<{width}}  {verdict}")
    return lines
