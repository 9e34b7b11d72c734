"""Real traffic of multi-platform images, through all three real handlers, with moto's ECR holding the builds.

What real ECR does (research 1.3, 2.4, 6, 7.3): a `docker buildx build --platform linux/amd64,linux/arm64
--push` emits one PUSH per manifest, in any order: the untagged platform manifests, the untagged
attestation manifests BuildKit adds, and the index under each of its tags. Scanners scan the platform
manifests (and fail on attestations); the kubelet reports the index digest as `imageID`; a workload may pin a
platform manifest by digest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from tests.support.audit import ECR, envelope, kubelet_status
from tests.support.events import ecr_scan
from tests.support.handlers import Handler
from tests.support.multiarch import build
from tests.support.multiarch_day import DAY, benign_day, deliver, deploy, release, scans
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient


@pytest.fixture
def ecr(stack: Stack) -> ECRClient:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop/api")
    return client


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_benign_day_of_multi_platform_releases_raises_nothing_above_low(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, seed: int
) -> None:
    """Given a CI/CD day: three multi-platform builds, their platform scans before or after the index pushes,
    `latest` following each release, and deployments whose kubelets report the index or a platform digest."""
    day = benign_day(ecr)

    # When the events are delivered in any order, then the deployments are logged,
    deliver(day.ecr_events, push_guard, scan_recorder, seed)
    for delivery in day.audit_deliveries:
        audit_watcher(delivery)

    # Then nothing above LOW reaches the security inbox.
    received = stack.received_alerts()
    loud = [
        (r.alert.type, r.alert.severity, r.alert.tag) for r in received if r.alert.severity.rank > Severity.LOW.rank
    ]
    assert loud == []
    # only `latest` following the releases: LOW when it names an index not yet scanned, INFO once scanned
    assert [r.alert.tag for r in received] == ["latest", "latest"], [
        (r.alert.type, r.alert.severity, r.alert.tag, r.alert.summary[:150]) for r in received
    ]


def test_a_protected_tag_moved_to_another_index_after_its_scan_is_critical_and_running_it_is_a_mismatch(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    """Given 2.0.0 released and its platforms scanned clean,"""
    genuine, pushes = release(ecr, "api 2.0.0", ["2.0.0"], f"{DAY}T09:00:00Z")
    deliver(
        [("push", e) for e in pushes] + [("scan", e) for e in scans(genuine, f"{DAY}T09:00:30Z", {})],
        push_guard,
        scan_recorder,
        7,
    )
    # when an attacker pushes another multi-platform image over 2.0.0 (unscanned: scanning is off for it),
    forged, pushes = release(ecr, "api 2.0.0 forged", ["2.0.0"], f"{DAY}T21:13:09Z")
    for event in pushes:
        push_guard(event)
    # and a node pulls 2.0.0 afterwards,
    audit_watcher(deploy("2.0.0", "api-5d8f7c9b6-q7x2m", f"{ECR}/shop/api@{forged.index_digest}", "a-1", "21:20:00"))

    # then the move is critical, and so is running what was not scanned.
    received = [(r.alert.type, r.alert.severity) for r in stack.received_alerts()]
    assert received == [
        (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL),
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, Severity.HIGH),  # the Deployment names 2.0.0, i.e. the forged index
        (AlertType.DEPLOYED_DIGEST_MISMATCH, Severity.CRITICAL),
    ]


def test_a_kubelet_running_a_digest_outside_the_scanned_index_is_a_mismatch(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    """Given 2.1.0 released and scanned, when a node runs content that is none of its platform manifests
    (a poisoned node cache, a registry mirror serving other bytes), then that is a digest mismatch."""
    genuine, pushes = release(ecr, "api 2.1.0", ["2.1.0"], f"{DAY}T09:00:00Z")
    deliver(
        [("push", e) for e in pushes] + [("scan", e) for e in scans(genuine, f"{DAY}T09:00:30Z", {})],
        push_guard,
        scan_recorder,
        8,
    )
    stranger = build("not in the index").digest("linux/amd64")

    image = f"{ECR}/shop/api:2.1.0"
    audit_watcher(envelope([kubelet_status("api-5d8f7c9b6-n4k8s", image, f"{ECR}/shop/api@{stranger}", "m-1")]))
    # while a node running one of the index's own platform manifests is fine.
    audit_watcher(
        envelope(
            [kubelet_status("api-5d8f7c9b6-p2l9d", image, f"{ECR}/shop/api@{genuine.digest('linux/arm64')}", "m-2")]
        )
    )

    (received,) = stack.received_alerts()
    alert = received.alert
    assert (alert.type, alert.severity) == (AlertType.DEPLOYED_DIGEST_MISMATCH, Severity.CRITICAL)
    assert (alert.current_digest, alert.scanned_digest) == (stranger, genuine.index_digest)


def test_a_vulnerable_platform_makes_the_whole_index_vulnerable(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    """Given a release whose arm64 image has a CRITICAL finding, when it is deployed by tag, then the
    deployment is VULNERABLE_IMAGE_DEPLOYED: the worst platform decides for the index."""
    pushed, pushes = release(ecr, "api 2.2.0", ["2.2.0"], f"{DAY}T09:00:00Z")
    for event in pushes:
        push_guard(event)
    scan_recorder(ecr_scan(digest=pushed.digest("linux/amd64"), tags=[], time=f"{DAY}T09:00:20Z", counts={}))
    scan_recorder(
        ecr_scan(digest=pushed.digest("linux/arm64"), tags=[], time=f"{DAY}T09:00:21Z", counts={"CRITICAL": 1})
    )

    audit_watcher(deploy("2.2.0", "api-5d8f7c9b6-v1v1v", f"{ECR}/shop/api@{pushed.index_digest}", "v-1"))

    received = {(r.alert.type, r.alert.severity) for r in stack.received_alerts()}
    assert received == {(AlertType.VULNERABLE_IMAGE_DEPLOYED, Severity.CRITICAL)}
