"""An organization's story: the same attack in the central account and in a member account of another region.

The member's ECR events arrive as the member template forwards them (on the organization bus, with the
member's `account` and `region`), its cluster's audit lines through the Logs destination's Kinesis stream.
The central functions must reach the same verdicts as for the central account's own events, each in its own
account's registry and cluster, and keep the two apart.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from tagwarden.domain.alerts import Alert

from tests.conftest import cold_start
from tests.support.audit import ECR, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.stack import REGION, Stack

CENTRAL, MEMBER, MEMBER_REGION = "111122223333", "444455556666", "eu-central-1"
A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"


def in_member(event: dict[str, Any]) -> dict[str, Any]:
    """The central sample as the member account emits it in its region (images in its own registry)."""
    text = json.dumps(event).replace(CENTRAL, MEMBER).replace(f"ecr.{REGION}.", f"ecr.{MEMBER_REGION}.")
    moved: dict[str, Any] = json.loads(text)
    if moved.get("region") == REGION:
        moved["region"] = MEMBER_REGION
    return moved


def through_stream(delivery: dict[str, Any]) -> dict[str, Any]:
    """A direct subscription delivery as the member's cluster sends it: its account as `owner`, one Kinesis
    record of the organization's audit stream (the member's cluster is in the destination's region)."""
    payload = in_member(json.loads(gzip.decompress(base64.b64decode(delivery["awslogs"]["data"]))))
    payload["owner"] = MEMBER
    [_, record] = load_event("audit_watcher/kinesis_delivery.json")["Records"]
    record["kinesis"]["data"] = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"Records": [record]}


def race(push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, place: Callable[[Any], Any]) -> None:
    """CI pushes 1.4.0 and waits for its scan; the attacker pushes over it; CI deploys 1.4.0, the kubelet runs B."""
    push_guard(place(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z")))
    push_guard(place(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:20Z")))
    scan_recorder(place(ecr_scan(digest=A, tags=[], time="2026-11-20T10:00:45Z")))
    image = f"{ECR}/shop/api:1.4.0"
    deployment = with_images(audit_line("deployment_create.json"), image)
    deployment["stageTimestamp"] = "2026-11-20T10:01:04.931085Z"
    running = kubelet_status("api-7d9f8c6b5d-x2k9p", image, f"{ECR}/shop/api@{B}")
    running["stageTimestamp"] = "2026-11-20T10:01:19.419012Z"
    for delivery in (envelope([deployment]), envelope([running])):
        result = audit_watcher(place(delivery))
        assert result.get("batchItemFailures", []) == []


def comparable(alert: Alert) -> tuple[object, ...]:
    """What must be the same wherever the attack happened: everything but where (and hence the id)."""
    summary = alert.summary.replace(f"{MEMBER}.dkr.ecr.{MEMBER_REGION}.", f"{CENTRAL}.dkr.ecr.{REGION}.")
    summary = summary.replace(f"{MEMBER}:{REGION}:prod-eks", "prod-eks")
    kubernetes = None
    if alert.kubernetes is not None:  # the cluster differs by design; the sample's user names its account
        user = (alert.kubernetes.user or "").replace(MEMBER, CENTRAL)
        kubernetes = alert.kubernetes.model_copy(update={"cluster": "-", "user": user})
    return (alert.type, alert.severity, alert.tag, alert.previous_digest, alert.current_digest,
            alert.scanned_digest, summary, kubernetes)  # fmt: skip


@pytest.fixture
def handlers(stack: Stack, lambda_context: FakeLambdaContext) -> tuple[Handler, Handler, Handler]:
    environment = {**stack.environment(), "TAGWARDEN_ACCOUNT_ID": CENTRAL, "AWS_REGION": REGION}
    return (
        cold_start("push_guard", environment, lambda_context),
        cold_start("scan_recorder", environment, lambda_context),
        cold_start("audit_watcher", environment, lambda_context),
    )


def test_a_members_attack_gets_the_same_verdicts_as_the_central_accounts_in_its_own_registry_and_cluster(
    stack: Stack, handlers: tuple[Handler, Handler, Handler]
) -> None:
    # The same story, first in the central account, then in the member (other region, same names)
    race(*handlers, place=lambda event: event)
    central = [r.alert for r in stack.received_alerts()]
    race(*handlers, place=lambda event: through_stream(event) if "awslogs" in event else in_member(event))
    member = [r.alert for r in stack.received_alerts()]

    # Then the member's alerts are the central ones, in the member's account, region, registry and cluster
    assert len(central) == len(member) == 4
    assert [comparable(alert) for alert in member] == [comparable(alert) for alert in central]
    assert {(a.account, a.region, a.registry) for a in member} == {
        (MEMBER, MEMBER_REGION, f"{MEMBER}.dkr.ecr.{MEMBER_REGION}.amazonaws.com")
    }
    assert {a.kubernetes.cluster for a in member if a.kubernetes} == {f"{MEMBER}:{REGION}:prod-eks"}
    assert {a.kubernetes.cluster for a in central if a.kubernetes} == {"prod-eks"}
    assert not {a.alert_id for a in member} & {a.alert_id for a in central}
