"""Who wrote a workload's spec: people and their tools roll content out; Kubernetes' controllers do not."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsDecode
from tagwarden.domain.deployments import ImageReferenced
from tagwarden.domain.workloads import Workload
from tagwarden.events.audit import read_delivery

from tests.support.audit import audit_line


@pytest.mark.parametrize(
    ("username", "by_controller"),
    [
        ("system:serviceaccount:kube-system:replicaset-controller", True),  # a Deployment's pods
        ("system:serviceaccount:kube-system:job-controller", True),  # a Job's (a CronJob run's) pods
        ("system:serviceaccount:kube-system:cronjob-controller", True),  # a CronJob's Jobs
        ("system:serviceaccount:kube-system:daemon-set-controller", True),
        ("system:serviceaccount:kube-system:statefulset-controller", True),
        ("system:kube-controller-manager", True),  # without per-controller credentials
        ("arn:aws:sts::111122223333:assumed-role/shop-deployer/gha-7f3c2a91", False),  # CI through EKS auth
        ("kubernetes-admin", False),
        ("system:serviceaccount:argocd:argocd-application-controller", False),  # GitOps: a tool of people
        ("system:serviceaccount:kube-system:deployer", False),  # not a controller's name
        ("system:node:ip-10-42-17-203.eu-west-1.compute.internal", False),
        (None, False),
    ],
)
def test_controllers_are_told_apart_from_people_and_their_tools(username: str | None, by_controller: bool) -> None:
    assert Workload("prod", "shop", "Pod", "api-7d9f8c6b5d-x2k9p", user=username).by_controller is by_controller


def test_a_replicaset_controllers_pod_creation_is_read_as_made_by_a_controller() -> None:
    # The real shape of a ReplicaSet controller's pod creation on EKS (events/audit_watcher/lines)
    line = audit_line("pod_create_request_response.json")
    data = CloudWatchLogsDecode(
        messageType="DATA_MESSAGE",
        owner="111122223333",
        logGroup="/aws/eks/prod-eks/cluster",
        logStream="kube-apiserver-audit-6e3f8b2a4c1d5e7f9a0b2c4d6e8f0a1b",
        subscriptionFilters=["tagwarden"],
        logEvents=[{"id": "1", "timestamp": 1763631065000, "message": json.dumps(line)}],
    )
    (observation,) = read_delivery(data).observations
    assert isinstance(observation, ImageReferenced)
    assert (
        observation.workload.user
        == line["user"]["username"]
        == "system:serviceaccount:kube-system:replicaset-controller"
    )
    assert observation.workload.by_controller
