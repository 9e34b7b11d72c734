"""Real traffic, ordering: two pushes of one tag in the same second, told apart by asking ECR.

ECR event times have one-second resolution and EventBridge ids are random, so neither orders two pushes
of one tag in the same second; the push guard asks ECR where the tag points now (README "Two actions on one
tag in the same second"). The story runs through the real push guard, scan recorder and audit watcher, on
moto's ECR holding both images (their digests are the events').
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.same_second import HIGH_ID, LOW_ID, ledger_pointer, put
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

SECOND = "2026-11-20T10:00:07Z"
IMAGE = f"{ECR}/shop/api"


@pytest.fixture
def ecr(stack: Stack) -> ECRClient:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop/api")
    return client


@pytest.mark.parametrize("reversed_delivery", [True, False], ids=["arrive-reversed", "arrive-in-order"])
def test_a_ci_retry_pushing_a_release_twice_in_one_second_leaves_the_tag_where_ecr_has_it(
    stack: Stack,
    ecr: ECRClient,
    push_guard: Handler,
    scan_recorder: Handler,
    audit_watcher: Handler,
    reversed_delivery: bool,
) -> None:
    # Given CI pushes v1.2 at 10:00:07 and its retry pushes a rebuilt image over it in the same second: ECR
    # applied the rebuild last, but its event's random id sorts first
    first = put(ecr, "api v1.2 build 1", "v1.2")
    rebuilt = put(ecr, "api v1.2 build 1 retried", "v1.2")
    pushes = [
        ecr_image_action(tag="v1.2", digest=first, time=SECOND, event_id=HIGH_ID),
        ecr_image_action(tag="v1.2", digest=rebuilt, time=SECOND, event_id=LOW_ID),
    ]

    # When EventBridge delivers the two events (the rebuild's first, when reversed)
    outcomes = [push_guard(event)["outcome"] for event in (reversed(pushes) if reversed_delivery else pushes)]

    # Then the pointer names the rebuild, as ECR does (the first build, arriving second, goes into the tag's
    # history before it, as a late event), and the release tag's one move is alerted once
    assert outcomes == (["recorded", "late"] if reversed_delivery else ["recorded", "recorded"])
    assert ledger_pointer(stack, "v1.2") == rebuilt
    (moved,) = stack.received_alerts()
    assert (moved.alert.type, moved.alert.severity) == (AlertType.TAG_OVERWRITTEN, Severity.HIGH)
    assert (moved.alert.previous_digest, moved.alert.current_digest) == (first, rebuilt)

    # When ECR scans the rebuild clean and the release is rolled out at 10:05
    scan_recorder(ecr_scan(digest=rebuilt, tags=["v1.2"], time="2026-11-20T10:00:40Z", counts={"LOW": 1}))
    rollout = at(with_images(audit_line("deployment_create.json"), f"{IMAGE}:v1.2"), "10:05:00")
    result = audit_watcher(envelope([rollout]))

    # Then the rollout is judged against the rebuild, scanned: nothing to say
    assert result["observations"] == 1 and result["alerts"] == []
    assert stack.received_alerts() == []

    # When a node reports running the first build for the tag (it pulled between the two pushes)
    stale = at(kubelet_status("api-7d9f8c6b5d-x2k9p", f"{IMAGE}:v1.2", f"{IMAGE}@{first}", "k-1"), "10:05:20")
    audit_watcher(envelope([stale]))

    # Then what runs is not what was checked: the tag named the scanned rebuild
    (mismatch,) = stack.received_alerts()
    assert (mismatch.alert.type, mismatch.alert.severity) == (AlertType.DEPLOYED_DIGEST_MISMATCH, Severity.CRITICAL)
    assert (mismatch.alert.tag, mismatch.alert.current_digest) == ("v1.2", first)


def test_a_redelivered_push_after_the_tie_changes_nothing(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    # Given the same-second tie settled by ECR, and the rebuild scanned
    first = put(ecr, "api v1.3 build 1", "v1.3")
    rebuilt = put(ecr, "api v1.3 build 1 retried", "v1.3")
    pushes = [
        ecr_image_action(tag="v1.3", digest=rebuilt, time=SECOND, event_id=LOW_ID),
        ecr_image_action(tag="v1.3", digest=first, time=SECOND, event_id=HIGH_ID),
    ]
    for event in pushes:
        push_guard(event)
    scan_recorder(ecr_scan(digest=rebuilt, tags=["v1.3"], time="2026-11-20T10:00:40Z", counts={"LOW": 1}))
    stack.received_alerts()

    # When EventBridge delivers both events again, hours later (at-least-once delivery)
    outcomes = [push_guard(event)["outcome"] for event in pushes]

    # Then both are recognised as duplicates: the pointer keeps the rebuild and its scan, and nobody is alerted
    assert outcomes == ["duplicate", "duplicate"]
    assert ledger_pointer(stack, "v1.3") == rebuilt
    assert stack.received_alerts() == []
